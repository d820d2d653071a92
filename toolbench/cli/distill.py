"""`toolbench distill`: train a function-calling draft for a target (any HF causal LM pair sharing
a tokenizer), and `toolbench distill eval-alpha`: score drafts by analytic α on held-out prompts.

    toolbench distill --target runs/demo/models/target --draft runs/demo/models/draft-generic \\
        --out runs/demo/models/draft-fc                       # offline, white-box, FKL, scenario II
    accelerate launch --multi_gpu --num_processes 2 -m toolbench distill …   # same run, 2 processes
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from toolbench.cli.options import (
    BatchSize,
    Device,
    Draft,
    Dtype,
    EvalPerTool,
    LearningRate,
    MaxNewTokens,
    OldCacheDir,
    OldLr,
    OldPerTool,
    OptionalDraft,
    OptionalTarget,
    Samples,
    Seed,
    Target,
    Threads,
    Tools,
    TrainDtype,
    checked_device,
    checked_dtype,
    checked_file,
    checked_model,
    checked_tools,
    output_file,
    output_folder,
    renamed,
)
from toolbench.foundation.errors import UserError
from toolbench.foundation.tables import markdown_table

console = Console(highlight=False)
distill_app = typer.Typer(
    help="Distill a generic draft into a function-calling draft for a target (speculative decoding).",
    invoke_without_command=True,
)


def _quiet(threads: int | None) -> None:
    """A command's output is its report: no weight-loading bars; optionally fewer torch threads."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if threads:
        import torch

        torch.set_num_threads(threads)


@distill_app.callback()
def distill(
    ctx: typer.Context,
    target: OptionalTarget = None,
    draft: OptionalDraft = None,
    out: Annotated[Path, typer.Option(help="Output HF folder of the distilled draft.")] = Path(
        "runs/distill/draft"
    ),
    scenario: Annotated[
        Literal["I", "II", "III"],
        typer.Option(help="Prompts: I real (--prompts), II template, III target-written."),
    ] = "II",
    teacher_mode: Annotated[
        Literal["offline", "online"],
        typer.Option(help="offline: cache the target's answers once; online: run the target while training."),
    ] = "offline",
    signal: Annotated[
        Literal["white", "black"], typer.Option(help="white: logit divergence; black: target text only.")
    ] = "white",
    loss: Annotated[Literal["fkl", "rkl", "jsd", "tvd"], typer.Option(help="White-box divergence.")] = "fkl",
    beta: Annotated[float, typer.Option(help="JSD(β): 0 → FKL, 1 → RKL.", min=0.0, max=1.0)] = 0.5,
    select: Annotated[Literal["none", "adaspec"], typer.Option(help="AdaSPEC token selection.")] = "none",
    adaspec_fraction: Annotated[
        float, typer.Option(help="AdaSPEC: share of tokens kept.", min=0.01, max=1.0)
    ] = 0.4,
    on_policy: Annotated[
        float,
        typer.Option(
            "--on-policy", help="λ: share of draft-sampled steps (--teacher-mode online).", min=0.0, max=1.0
        ),
    ] = 0.0,
    prompts: Annotated[
        Path | None, typer.Option(help="Scenario I: JSONL of tasks (default: even test lines).")
    ] = None,
    tools: Tools = "cat_api,home_search,spreadsheet,trip_booking,weather",
    samples: Samples = 2000,
    top_k: Annotated[int, typer.Option(help="Teacher log-probs cached per position.", min=1)] = 20,
    max_new_tokens: MaxNewTokens = 320,
    shard_size: Annotated[
        int, typer.Option(help="Cached answers per shard (unit of resumption).", min=1)
    ] = 256,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps (overrides --epochs).", min=1)] = None,
    epochs: Annotated[float, typer.Option(min=0.01)] = 1.0,
    batch_size: BatchSize = 16,
    learning_rate: LearningRate = 2e-3,
    seed: Seed = 0,
    teacher_cache: Annotated[
        Path | None,
        typer.Option(
            help="The target's cached answers (top-k log-probs) and the prompts; share one across "
            "settings (default OUT/teacher-cache)."
        ),
    ] = None,
    checkpoint_every: Annotated[int, typer.Option(min=1)] = 50,
    eval_per_tool: Annotated[
        int, typer.Option(help="Held-out prompts per tool for α before/after (0: skip).", min=0)
    ] = 10,
    device: Device = "auto",
    dtype: TrainDtype = "auto",
    threads: Threads = None,
    plan_only: Annotated[
        bool, typer.Option("--plan", help="Print the resolved configuration and stop.")
    ] = False,
    fresh: Annotated[bool, typer.Option("--fresh", help="Ignore checkpoints and start over.")] = False,
    old_lr: OldLr = None,
    old_cache_dir: OldCacheDir = None,
    old_mode: Annotated[Literal["offline", "online"] | None, typer.Option("--mode", hidden=True)] = None,
) -> None:
    """Distill DRAFT towards TARGET (default: offline, white-box, FKL, scenario II).

    Writes OUT as an HF folder (AutoModelForCausalLM loads it; vLLM serves it as a draft with
    `vllm serve TARGET --speculative-config '{"method": "draft_model", "model": "OUT", "num_speculative_tokens": 5}'`),
    with train_log.jsonl, loss.png, train_record.json and alpha.json (α before/after).
    """
    if ctx.invoked_subcommand is not None:
        return
    if target is None or draft is None:
        raise UserError("toolbench distill needs --target and --draft (see --help)")
    from toolbench.distill.draft.distillation import DistillConfig, plan, run_distill
    from toolbench.distill.draft.scenarios import ScenarioConfig
    from toolbench.distill.draft.teacher_cache import CacheConfig
    from toolbench.distill.training.trainer import TrainConfig

    learning_rate = renamed(learning_rate, old_lr)
    teacher_cache = renamed(teacher_cache, old_cache_dir)
    if scenario != "I" and prompts is not None:
        raise UserError("--prompts is scenario I's input; add --scenario I")
    # everything --plan shows is checked: a plan that names missing models is no plan
    checked_model(target, "--target")
    checked_model(draft, "--draft")
    if prompts is not None:
        checked_file(prompts, "--prompts")
    output_folder(out)
    checked_device(device)
    names = checked_tools(tools, "--tools")
    config = DistillConfig(
        target=target,
        draft=draft,
        scenario=ScenarioConfig(
            scenario=scenario,
            tools=names,
            prompts=str(prompts) if prompts else None,
            samples=samples,
            seed=seed,
        ),
        mode=renamed(teacher_mode, old_mode),
        signal=signal,
        loss=loss,
        beta=beta,
        select=select,
        adaspec_fraction=adaspec_fraction,
        lmbda=on_policy,
        cache=CacheConfig(top_k=top_k, max_new_tokens=max_new_tokens, shard_size=shard_size, seed=seed),
        cache_dir=str(teacher_cache) if teacher_cache else None,
        train=TrainConfig(
            learning_rate=learning_rate,
            batch_size=batch_size,
            epochs=epochs,
            max_steps=steps,
            seed=seed,
            warmup_steps=10,
            log_every=5,
            checkpoint_every=checkpoint_every,
            device=device,
            dtype=checked_dtype(dtype),
        ),
        eval_per_tool=eval_per_tool,
    )
    if plan_only:
        console.print_json(json.dumps(plan(config, out)))
        return
    _quiet(threads)
    if fresh:
        import shutil

        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    summary = run_distill(config, out, resume=not fresh)
    train = summary["train"]
    console.print(
        f"distill {summary['setting']}: {train['steps']} steps in {train['seconds']:.0f} s "
        f"({train['tokens_per_second']:,.0f} tokens/s, final loss {train['final_loss']}) → {out}"
    )
    if "cache" in summary:
        c = summary["cache"]
        console.print(
            f"teacher cache: {c['sequences']} answers, {c['response_tokens']:,} tokens, top-{c['top_k']}: "
            f"{c['disk_bytes'] / 1e6:.1f} MB on disk, {c['topk_memory_bytes'] / 1e6:.1f} MB in memory, "
            f"{c['seconds']:.0f} s to build"
        )
    if "alpha" in summary:
        drafts = summary["alpha"]["drafts"]
        console.print(
            f"analytic α on {summary['alpha']['prompts']} held-out prompts: "
            f"{drafts['before']['alpha']:.3f} before → {drafts['after']['alpha']:.3f} after"
        )


@distill_app.command("eval-alpha")
def eval_alpha(
    target: Target,
    draft: Annotated[
        list[str],
        typer.Option(help="Draft model (HF folder or hub id), or NAME=FOLDER; repeatable, one row each."),
    ],
    tools: Tools = "cat_api,home_search,spreadsheet,trip_booking,weather",
    eval_per_tool: EvalPerTool = 20,
    max_new_tokens: MaxNewTokens = 320,
    out: Annotated[Path | None, typer.Option(help="Also write the results as JSON here.")] = None,
    threads: Threads = None,
    device: Device = "auto",
    dtype: Dtype = "auto",
    old_per_tool: OldPerTool = None,
) -> None:
    """Analytic α = mean Σ_v min(p_target, p_draft) over the target's greedy answers to held-out
    function-calling prompts (the odd lines of the tools' test sets: never a distillation prompt)."""
    from toolbench.distill.draft.distillation import evaluate_alpha
    from toolbench.foundation.io import write_json

    checked_model(target, "--target")
    named = {}
    for item in draft:
        name, _, path = item.rpartition("=") if "=" in item else (item, "", item)
        if not name:
            raise UserError(f"--draft {item!r}: the name before '=' is empty; write NAME=FOLDER")
        named[name] = checked_model(path, "--draft")
    names = checked_tools(tools, "--tools")
    checked_device(device)
    if out is not None:
        output_file(out)
    _quiet(threads)
    per_tool = renamed(eval_per_tool, old_per_tool)
    result = evaluate_alpha(target, named, names, per_tool, max_new_tokens, device, checked_dtype(dtype))
    tool_names = sorted(next(iter(result["drafts"].values()))["per_tool"])
    console.print(
        f"analytic α on {result['prompts']} held-out prompts ({result['answer_tokens']} answer tokens)"
    )
    rows = [
        [name, f"{figures['alpha']:.3f}", *(f"{figures['per_tool'][t]:.3f}" for t in tool_names)]
        for name, figures in result["drafts"].items()
    ]
    console.print(
        markdown_table(["draft", "α", *tool_names], rows, ["left", *["right"] * (len(tool_names) + 1)])
    )
    if out:
        write_json(out, result)


@distill_app.command("grid")
def grid(
    target: Target = "runs/demo/models/target",
    draft: Draft = "runs/demo/models/draft-generic",
    out: Annotated[Path, typer.Option(help="One draft folder per setting + grid.json/md/png.")] = Path(
        "runs/demo/grid"
    ),
    steps: Annotated[int, typer.Option(help="Optimizer steps of every setting (equal compute).", min=2)] = 60,
    samples: Samples = 600,
    batch_size: BatchSize = 16,
    eval_per_tool: EvalPerTool = 20,
    settings: Annotated[
        str | None, typer.Option(help="Only these settings (comma-separated names; default all).")
    ] = None,
    seed: Seed = 0,
    threads: Threads = None,
    device: Device = "auto",
    dtype: TrainDtype = "auto",
) -> None:
    """Hong et al., DistillSpec and AdaSPEC's comparisons on one pair, margins next to the papers'.

    Settings (all from the same generic draft, same steps): offline-fkl (baseline), online-fkl,
    black, rkl, jsd, tvd, adaspec, online-onpolicy (λ = 0.5), real-I, synthetic-III. Each is a
    resumable `toolbench distill` run under OUT; rerunning skips finished settings. About 20
    minutes on 2 CPU cores with the embedded pair.
    """
    from toolbench.distill.draft.grid import GridConfig, grid_markdown, run_grid, selected_settings

    checked_model(target, "--target")
    checked_model(draft, "--draft")
    output_folder(out)
    checked_device(device)
    config = GridConfig(
        target=target,
        draft=draft,
        steps=steps,
        samples=samples,
        batch_size=batch_size,
        eval_per_tool=eval_per_tool,
        settings=[s.strip() for s in settings.split(",") if s.strip()] if settings else None,
        seed=seed,
        device=device,
        dtype=checked_dtype(dtype),
    )
    selected_settings(config)  # an unknown name fails here, before any model loads
    _quiet(threads)
    result = run_grid(config, out, console)
    console.print(grid_markdown(result))
    console.print(f"results in {out}/grid.json, grid.md, grid.png")
