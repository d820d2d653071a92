"""`toolbench train tokenizer|draft|target`: the embedded default's own models (no hub here).

Every command writes an ordinary HF folder (safetensors + tokenizer + chat template) beside its
`train_log.jsonl`, `loss.png` and `train_record.json`, resumes from its last checkpoint when rerun,
and runs unchanged under `accelerate launch --num_processes N -m toolbench train …`.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import typer
from rich.console import Console

from toolbench.cli.options import (
    BatchSize,
    CacheDir,
    CopyHead,
    Device,
    Draft,
    Dtype,
    LearningRate,
    MaxNewTokens,
    OldCacheDir,
    Samples,
    Seed,
    Target,
    Threads,
    Tools,
    TrainDtype,
    checked_device,
    checked_dtype,
    checked_model,
    checked_tools,
    output_folder,
    renamed,
)
from toolbench.distill.training.align import SFT_TOOLS
from toolbench.foundation.errors import UserError

console = Console(highlight=False)
train_app = typer.Typer(
    help="Train the embedded default's tokenizer, generic draft and aligned target.", no_args_is_help=True
)
MODELS = Path("runs/demo/models")

CheckpointEvery = Annotated[int, typer.Option(help="Save a resumable checkpoint every N steps.", min=1)]


def _cache(cache_dir: Path | None) -> Path:
    from toolbench.foundation.io import default_cache_dir

    return Path(cache_dir) if cache_dir else default_cache_dir()


def check_copy_prior(preset: str) -> None:
    """`--copy-prior` on a preset the circuit does not fit: one line before any data is made."""
    from toolbench.distill.training.copy_prior import check_shape, config_overrides
    from toolbench.distill.training.models import PRESETS

    spec = PRESETS[preset]
    shape = SimpleNamespace(
        **spec.model_dump(), num_key_value_heads=spec.num_attention_heads, **config_overrides()
    )
    try:
        check_shape(shape)
    except UserError as error:
        raise UserError(f"--copy-prior with --preset {preset}: {error}") from None


def _preset(value: str) -> str:
    """A model preset name, checked before any data is made or model built."""
    from toolbench.distill.training.models import PRESETS

    if value not in PRESETS:
        raise UserError(f"--preset: unknown model preset {value!r}; known: {', '.join(PRESETS)}")
    return value


def _tools(value: str) -> list[str]:
    """--tools as names (`all` for every tool), each checked."""
    names = checked_tools(value, "--tools")
    if names == ["all"]:
        from toolbench.core.registry import tool_names

        return tool_names()
    return names


def _report(what: str, out: Path, summary: dict) -> None:
    console.print(
        f"{what}: {summary['steps']} steps in {summary['seconds']:.0f} s "
        f"({summary['tokens_per_second']:,.0f} tokens/s, final loss {summary['final_loss']}) → {out}"
    )


@train_app.command("tokenizer")
def tokenizer_command(
    out: Annotated[
        Path, typer.Option(help="Tokenizer folder (PreTrainedTokenizerFast + chat template).")
    ] = MODELS / "tokenizer",
    vocab_size: Annotated[int, typer.Option(min=300)] = 4096,
    samples_per_tool: Annotated[
        int, typer.Option(help="Generated samples per tool in the corpus.", min=0)
    ] = 2000,
    tools: Tools = "all",
    seed: Seed = 0,
    cache_dir: CacheDir = None,
) -> None:
    """Byte-level BPE over generated tool data + the stdlib's docs and docstrings (offline everywhere).

    Digits are single tokens and identifiers keep their underscores; the chat template renders
    `tools` (one `name(args)` line each) and `tool_calls` (`<tool_call>{…}</tool_call>` blocks).
    """
    from toolbench.distill.training.tokenizer import TokenizerConfig, train_tokenizer

    names = None if tools == "all" else _tools(tools)
    output_folder(out)
    config = TokenizerConfig(vocab_size=vocab_size, samples_per_tool=samples_per_tool, tools=names, seed=seed)
    tokenizer = train_tokenizer(config, out, _cache(cache_dir))
    console.print(f"tokenizer: {len(tokenizer)} tokens → {out}")


@train_app.command("draft")
def draft_command(
    generic: Annotated[
        bool,
        typer.Option(
            "--generic", help="Pretrain on the generic corpus only (the distillation starting point)."
        ),
    ] = False,
    tokenizer: Annotated[Path, typer.Option(help="Tokenizer folder from `train tokenizer`.")] = MODELS
    / "tokenizer",
    out: Annotated[Path, typer.Option(help="Model folder.")] = MODELS / "draft-generic",
    preset: Annotated[str, typer.Option(help="Model size: draft, target or tiny.")] = "draft",
    steps: Annotated[int, typer.Option(help="Optimizer steps.", min=1)] = 600,
    batch_size: BatchSize = 16,
    learning_rate: LearningRate = 2e-3,
    block_size: Annotated[int, typer.Option(help="Tokens per packed block.", min=8)] = 256,
    documents: Annotated[int | None, typer.Option(help="Only the first N generic documents.", min=1)] = None,
    copy_head: CopyHead = False,
    checkpoint_every: CheckpointEvery = 100,
    seed: Seed = 0,
    fresh: Annotated[bool, typer.Option("--fresh", help="Ignore checkpoints and start over.")] = False,
    cache_dir: CacheDir = None,
    device: Device = "auto",
    dtype: TrainDtype = "auto",
) -> None:
    """A generic draft: a small model that has read English-about-code, never a tool call.

    Function-calling drafts are made from it with `toolbench distill`.
    """
    from toolbench.distill.training.pretrain import PretrainConfig, pretrain
    from toolbench.distill.training.trainer import TrainConfig

    if not generic:
        raise UserError(
            "only --generic drafts are trained here; function-calling drafts come from `toolbench distill`"
        )
    _preset(preset)
    checked_model(str(tokenizer), "--tokenizer", marker=None, what="tokenizer")
    output_folder(out)
    checked_device(device)
    train = TrainConfig(
        max_steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        checkpoint_every=checkpoint_every,
        log_every=min(10, steps),
        device=device,
        dtype=checked_dtype(dtype),
    )
    config = PretrainConfig(
        preset=preset, block_size=block_size, documents=documents, copy_head=copy_head, train=train
    )
    summary = pretrain(config, tokenizer, out, _cache(cache_dir), resume=not fresh)
    _report("generic draft", out, summary)


@train_app.command("target")
def target_command(
    tokenizer: Annotated[Path, typer.Option(help="Tokenizer folder from `train tokenizer`.")] = MODELS
    / "tokenizer",
    out: Annotated[Path, typer.Option(help="Model folder (the generic stage goes to OUT/pretrain).")] = MODELS
    / "target",
    preset: Annotated[str, typer.Option(help="Model size: target, draft or tiny.")] = "target",
    tools: Tools = ",".join(SFT_TOOLS),
    samples: Samples = 5000,
    pretrain_steps: Annotated[
        int | None,
        typer.Option(
            help="Generic pretraining steps before SFT; 0: none (SFT from a new model). Default: 0 "
            "with --copy-head or --copy-prior, else 40.",
            min=0,
        ),
    ] = None,
    copy_prior: Annotated[
        bool,
        typer.Option(
            "--copy-prior",
            help="Start from weights that already copy spans from the request (an induction circuit "
            "written into the initial weights; needs >= 3 heads, e.g. the target preset). No generic "
            "stage unless --pretrain-steps says so: generic text wears the circuit away. README "
            "'Train the embedded models'.",
        ),
    ] = False,
    copy_head: CopyHead = True,
    gate_view: Annotated[
        bool,
        typer.Option(
            "--gate-view/--no-gate-view",
            help="With the copy head: its gate also sees the source tokens a copy would bring and "
            "the one after them, which is where a copied value ends (README 'Train the embedded "
            "models'); --no-gate-view: the gate reads the last hidden state only.",
        ),
    ] = True,
    max_length: Annotated[
        int,
        typer.Option(
            help="Longest SFT conversation in tokens; longer ones are dropped (counted in the run "
            "record), so no position past it is trained, while three demos make 38% of the frozen "
            "tasks' prompts longer than 1,024 tokens (91 of 240; README 'Train the embedded models').",
            min=16,
        ),
    ] = 1024,
    own_template_demos: Annotated[
        float,
        typer.Option(
            help="Share of the conversations with demos whose demos are retrieved as `toolbench eval` "
            "retrieves them, the sample's own template allowed (an in-distribution task's demos "
            "mostly are); the rest never show their own template (a held-out task's never can). "
            "0 = other templates only. 0.5 at 1,200 steps: +9.1 / +8.3 points in distribution at "
            "k = 3 (without / with --position-skip 0.5), nothing clear at k = 0 or held out; at the "
            "demo's 159 steps more unparsable answers (README 'Train the embedded models').",
            min=0.0,
            max=1.0,
        ),
    ] = 0.0,
    position_skip: Annotated[
        float,
        typer.Option(
            help="Share of SFT rows whose positions jump ahead before one `<|user|>` turn (PoSE), so "
            "the distances of prompts longer than --max-length are trained on rows that fit it; "
            "0 = off. 0.5 at 1,200 steps: k = 3 prompts past 1,024 tokens unparsable 87% -> 30%, "
            "state F1 2 -> 30 (README 'Train the embedded models').",
            min=0.0,
            max=1.0,
        ),
    ] = 0.0,
    hold_steps: Annotated[
        int | None,
        typer.Option(
            help="With --copy-prior: SFT steps during which the circuit's weights (layers 0-1's "
            "attention) do not move; then --release-steps. Default 0: at the target preset, holding "
            "80 + releasing over 80 measured worse (README 'Train the embedded models').",
            min=0,
        ),
    ] = None,
    release_steps: Annotated[
        int | None,
        typer.Option(
            help="With --copy-prior: steps over which the circuit's learning rate then ramps from 0 "
            "to the schedule's after --hold-steps (default 0: released at once).",
            min=0,
        ),
    ] = None,
    epochs: Annotated[float, typer.Option(help="SFT epochs.", min=0.01)] = 1.0,
    sft_steps: Annotated[int | None, typer.Option(help="SFT steps (overrides --epochs).", min=1)] = None,
    batch_size: BatchSize = 16,
    learning_rate: LearningRate = 2e-3,
    sft_lr_scale: Annotated[
        float,
        typer.Option(help="SFT learning rate = lr x this; <1 for synthetic data (Hong et al.).", min=0.0),
    ] = 1.0,
    echo: Annotated[
        float,
        typer.Option(
            help="Echo conversations per sample (the assistant repeats the request): the copy task "
            "that makes a from-scratch model take argument values from the request. Pays off over "
            "many steps (README 'Train the embedded models'); 0 = off.",
            min=0.0,
        ),
    ] = 0.0,
    checkpoint_every: CheckpointEvery = 100,
    seed: Seed = 0,
    fresh: Annotated[bool, typer.Option("--fresh", help="Ignore checkpoints and start over.")] = False,
    cache_dir: CacheDir = None,
    device: Device = "auto",
    dtype: TrainDtype = "auto",
) -> None:
    """The target: a Llama with a copy head, SFT on generated tool conversations.

    The copy head lets each next token be copied from the request, the tools or the demos, which a
    from-scratch model on a CPU otherwise barely learns (--no-copy-head: a plain Llama, with 40
    generic pretraining steps first). Loss on assistant tokens only; conversations are laid out exactly like `toolbench eval --mode chat`
    asks (tools in the system turn, optional system prompt, 0-3 retrieved demos). Then:

        toolbench eval --model hf:runs/demo/models/target --mode chat --tools weather
    """
    from toolbench.distill.training.align import AlignConfig, align_target
    from toolbench.distill.training.data import ConversationConfig
    from toolbench.distill.training.pretrain import PretrainConfig
    from toolbench.distill.training.tokenizer import USER_TURN
    from toolbench.distill.training.trainer import TrainConfig

    _preset(preset)
    if copy_prior:
        check_copy_prior(preset)
    elif hold_steps is not None or release_steps is not None:
        raise UserError("--hold-steps and --release-steps hold the copy prior's circuit: add --copy-prior")
    names = _tools(tools)
    checked_model(str(tokenizer), "--tokenizer", marker=None, what="tokenizer")
    output_folder(out)
    checked_device(device)
    if pretrain_steps is None:
        pretrain_steps = 0 if copy_prior or copy_head else 40
    generic = PretrainConfig(
        train=TrainConfig(
            max_steps=max(1, pretrain_steps),
            learning_rate=learning_rate,
            batch_size=batch_size,
            seed=seed,
            device=device,
            dtype=checked_dtype(dtype),
        ),
    )
    config = AlignConfig(
        preset=preset,
        tools=names,
        samples=samples,
        copy_prior=copy_prior,
        copy_head=copy_head,
        gate_view=gate_view,
        pretrain=generic if pretrain_steps else None,
        sft=TrainConfig(
            epochs=epochs,
            max_steps=sft_steps,
            learning_rate=learning_rate,
            batch_size=batch_size,
            seed=seed,
            checkpoint_every=checkpoint_every,
            device=device,
            dtype=checked_dtype(dtype),
            hold_steps=hold_steps or 0,
            release_steps=release_steps or 0,
            position_skip=position_skip,
            skip_before=[USER_TURN] if position_skip else [],
        ),
        sft_lr_scale=sft_lr_scale,
        echo=echo,
        conversations=ConversationConfig(own_template_demos=own_template_demos, max_length=max_length),
    )
    summary = align_target(config, tokenizer, out, _cache(cache_dir), resume=not fresh)
    _report("target", out, summary)


@train_app.command("acceptance-head")
def acceptance_head_command(
    target: Target,
    draft: Draft,
    out: Annotated[Path | None, typer.Option(help="Head folder (default: DRAFT/acceptance-head).")] = None,
    tools: Tools = ",".join(SFT_TOOLS),
    samples: Samples = 600,
    seed: Annotated[
        int,
        typer.Option(
            help="Prompt seed (distillation's is 0: other slot values by default).", min=0, max=2**32 - 1
        ),
    ] = 1,
    max_new_tokens: MaxNewTokens = 128,
    width: Annotated[int, typer.Option(help="Hidden units of the head; 0: logistic regression.", min=0)] = 32,
    steps: Annotated[int, typer.Option(help="Optimizer steps.", min=1)] = 2000,
    max_budget: Annotated[
        int, typer.Option(help="Largest γ / budget considered when choosing thresholds.", min=1)
    ] = 10,
    data_cache: Annotated[
        Path | None,
        typer.Option(
            help="The head's training data, cached and resumable: target answers + draft features "
            "(default OUT/data)."
        ),
    ] = None,
    device: Device = "auto",
    dtype: Dtype = "auto",
    threads: Threads = None,
    old_cache_dir: OldCacheDir = None,
) -> None:
    """A learned acceptance head for DRAFT: predicts whether TARGET accepts each drafted token.

    The target answers training prompts (never the test tasks); the draft reads each answer once
    and every position gives (draft hidden state + probability features, accepted?), cached and
    resumable. The head trains in seconds; then greedy rounds are replayed on held-out training
    prompts, timed with costs measured on this machine, to choose the learned policy's threshold
    and budget (and the best fixed γ and confidence threshold, for comparison). Then:

        toolbench spec --target T --draft D --draft-policy learned --head D/acceptance-head
    """
    from toolbench.distill.speculative.acceptance_train import HeadTrainConfig, train_acceptance_head

    checked_model(target, "--target")
    checked_model(draft, "--draft")
    checked_device(device)
    names = _tools(tools)
    data_cache = renamed(data_cache, old_cache_dir)
    if out is None:
        if not Path(draft).is_dir():
            raise UserError(f"--draft {draft} is not a local folder; pass --out for the head")
        out = Path(draft) / "acceptance-head"
    if threads:
        import torch

        torch.set_num_threads(threads)
    config = HeadTrainConfig(
        target=target,
        draft=draft,
        tools=names,
        samples=samples,
        seed=seed,
        max_new_tokens=max_new_tokens,
        width=width,
        steps=steps,
        max_budget=max_budget,
        cache_dir=str(data_cache) if data_cache else None,
        device=device,
        dtype=checked_dtype(dtype),
    )
    summary = train_acceptance_head(config, out)
    data, valid, best = summary["data"], summary["metrics"]["validation"], summary["best"]
    console.print(
        f"data: {data['sequences']} answers, {data['positions']:,} positions, "
        f"{data['accepted_share']:.1%} accepted, {data['disk_bytes'] / 1e6:.1f} MB, {data['seconds']:.0f} s"
    )
    console.print(
        f"head on held-out training prompts: AUC {valid.get('auc')} (draft top-1 probability alone: "
        f"{valid.get('auc_top1_prob')}), log loss {valid.get('log_loss')} (base rate "
        f"{valid.get('log_loss_base_rate')})"
    )
    fixed, confidence, learned = best["fixed"], best["confidence"], best["learned"]
    console.print(
        f"predicted decode speedup on held-out training prompts (replayed rounds x measured costs, "
        f"prefill excluded): fixed γ={fixed['gamma']} "
        f"{fixed['predicted_speedup']:.2f}x, confidence {confidence['threshold']:g}/budget "
        f"{confidence['budget']} {confidence['predicted_speedup']:.2f}x, learned {learned['threshold']:g}/"
        f"budget {learned['budget']} {learned['predicted_speedup']:.2f}x → {out}"
    )
