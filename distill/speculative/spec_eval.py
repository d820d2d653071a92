"""`toolbench spec`: score a (target, draft) pair by speculative acceptance and real speedup on
function-calling prompts built exactly like `toolbench eval --mode chat`.

For every prompt, in one run and on one machine: target-only decoding (the baseline), speculative
decoding with the chosen draft policy, and (greedy) HF assisted generation. Out come per-prompt
records (`samples.jsonl`), `summary.json` with the run record, `summary.md` and `acceptance.png`
(acceptance by draft position and by token class). Every acceptance figure is named and defined in
`toolbench.distill.speculative.acceptance`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from toolbench.core.generation import stop_ids
from toolbench.distill.draft.alpha import analytic_alpha
from toolbench.distill.speculative.acceptance import (
    AcceptanceStats,
    ClassStat,
    PositionStat,
    acceptance_by_class,
    acceptance_by_position,
)
from toolbench.distill.speculative.decoding import (
    Generation,
    hf_decode,
    make_policy,
    speculative_decode,
    target_decode,
)
from toolbench.distill.speculative.token_classes import CLASSES, token_classes
from toolbench.foundation.devices import resolve_device
from toolbench.foundation.errors import UserError
from toolbench.foundation.io import atomic_open, write_jsonl
from toolbench.foundation.run_folder import write_run_folder
from toolbench.foundation.runinfo import finish_record, start_record
from toolbench.foundation.summaries import (
    ClassFigures,
    PositionFigures,
    SpecFigures,
    SpecRun,
    SpecRunConfig,
    SpecSummary,
)
from toolbench.foundation.tables import markdown_table


class SpecConfig(BaseModel):
    target: str
    draft: str
    tools: list[str] = Field(default_factory=lambda: ["all"])
    tasks: list[str] | None = Field(None, description="Task files instead of the tools' own test sets.")
    gamma: int | None = Field(
        None,
        description="γ, the budget: most draft tokens per round (vLLM's num_speculative_tokens); "
        "None: 5, or the learned head's budget chosen on training prompts.",
    )
    policy: str = Field("fixed", description="A draft policy name (decoding.POLICIES).")
    threshold: float | None = Field(
        None,
        description="confidence: least top probability to keep drafting (None: 0.5); learned: least "
        "predicted probability that the round so far is accepted (None: the head's, chosen on training prompts).",
    )
    head: str | None = Field(
        None, description="Learned policy: a folder from `toolbench train acceptance-head`."
    )
    temperature: float = Field(0.0, ge=0.0, description="0: greedy; > 0: exact rejection sampling.")
    max_tokens: int = Field(128, ge=1)
    limit: int | None = Field(None, description="Only the first N tasks of each file.")
    k_demos: int = Field(0, ge=0, description="Retrieved demonstrations per prompt, as in eval.")
    retriever: Literal["bm25", "dense", "hybrid"] = "bm25"
    system_prompt: str | None = None
    demos: str | None = None
    cache_dir: str | None = None
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    threads: int | None = Field(None, description="torch CPU threads; None keeps torch's default.")
    assisted: bool = Field(True, description="Also run HF assisted generation (greedy runs only).")


class SpecSample(BaseModel):
    """One prompt's outcome: the three decodes' speed, the speculative rounds and token classes."""

    id: str
    tool: str
    prompt_tokens: int
    text: str
    tokens: list[int]
    classes: list[str]
    rounds: list[tuple[int, int, int]] = Field(description="(position, drafted, accepted) per round.")
    target_seconds: float
    target_tokens: int
    spec_seconds: float
    spec_equal_target: bool | None = Field(description="Greedy runs: spec output == target output.")
    assisted_seconds: float | None = None
    assisted_tokens: int | None = None
    assisted_equal_target: bool | None = None
    analytic_alpha: float | None = None


def load_pair(target: str, draft: str, device: str, dtype: str = "auto") -> tuple[Any, Any, Any]:
    """(target model, draft model, tokenizer), both models in eval mode on `device` (resolved) in
    `dtype` (`toolbench.foundation.devices`); a draft whose vocabulary differs from the target's, or a folder
    that is not a causal LM, is a UserError."""
    from toolbench.distill.training.models import check_same_vocabulary, load_causal_lm, load_tokenizer
    from toolbench.foundation.devices import resolve_dtype

    torch_dtype = resolve_dtype(dtype, device)
    target_model = load_causal_lm(target, "target", torch_dtype)
    draft_model = load_causal_lm(draft, "draft", torch_dtype)
    tokenizer = load_tokenizer(target)
    check_same_vocabulary(tokenizer, load_tokenizer(draft), target, draft)
    return target_model.to(device).eval(), draft_model.to(device).eval(), tokenizer


def prompt_config(config: SpecConfig):
    """The `toolbench eval --mode chat` setting whose prompts a spec run decodes: which tasks, which
    demos, which system prompt (also how the CLI counts the prompts for its progress bar)."""
    from toolbench.pipelines.evaluate import EvalConfig

    return EvalConfig(
        model=f"hf:{config.target}",
        tools=config.tools,
        tasks=config.tasks,
        mode="chat",
        k_demos=config.k_demos,
        retriever=config.retriever,
        system_prompt=config.system_prompt,
        demos=config.demos,
        limit=config.limit,
        cache_dir=config.cache_dir,
    )


def chat_prompts(config: SpecConfig, tokenizer: Any) -> tuple[list[Any], list[list[int]]]:
    """(tasks, prompt ids): `toolbench eval --mode chat` prompts, rendered with the target's chat
    template (tools offered, generation prompt added)."""
    from toolbench.foundation.io import default_cache_dir
    from toolbench.pipelines.evaluate import demo_index, select_tasks
    from toolbench.retriever.prompt import PromptBuilder

    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"target {config.target} has no chat template; spec prompts are chat prompts")
    eval_config = prompt_config(config)
    tasks = select_tasks(eval_config)
    if not tasks:
        raise UserError("no tasks selected")
    cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    demos = demo_index(eval_config, cache_dir) if config.k_demos else None
    builder = PromptBuilder(demos, config.k_demos, config.system_prompt)
    prompts = []
    for task in tasks:
        messages, tools = builder.chat(task)
        text = tokenizer.apply_chat_template(
            messages, tools=tools or None, tokenize=False, add_generation_prompt=True
        )
        prompts.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    return tasks, prompts


def run_spec(config: SpecConfig, out: Path, progress: Callable[[], None] | None = None) -> SpecSummary:
    """Decode every prompt three ways, measure, write the results folder, return the summary."""
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a command's output is its report, not loading bars
    hf_logging.set_verbosity_error()  # assisted generation warns about its own internal call
    policy = make_policy(
        config.policy, config.gamma, threshold=config.threshold, head=config.head, draft=config.draft
    )
    if config.threads:
        torch.set_num_threads(config.threads)  # on a shared CPU, oversubscribed threads spin and stall
    record = start_record("spec", config.model_dump(), seed=config.seed)
    device = resolve_device(config.device)
    target, draft, tokenizer = load_pair(config.target, config.draft, device, config.dtype)
    tasks, prompts = chat_prompts(config, tokenizer)
    stops = stop_ids(target, tokenizer)
    greedy = config.temperature == 0
    assisted = config.assisted and greedy

    def generator(i: int) -> torch.Generator:
        return torch.Generator(device).manual_seed(config.seed + i)

    def decode_target(ids: list[int], budget: int, i: int = 0) -> Generation:
        return target_decode(
            target, ids, budget, temperature=config.temperature, stop_ids=stops, generator=generator(i)
        )

    def decode_spec(ids: list[int], budget: int, i: int = 0) -> Generation:
        return speculative_decode(
            target,
            draft,
            ids,
            budget,
            policy,
            temperature=config.temperature,
            stop_ids=stops,
            generator=generator(i),
        )

    def decode_assisted(ids: list[int], budget: int, i: int = 0) -> Generation:
        return hf_decode(
            target,
            ids,
            budget,
            draft=draft,
            gamma=policy.max_draft,
            stop_ids=stops,
            pad_id=tokenizer.pad_token_id,
        )

    for warm in (decode_target, decode_spec, *((decode_assisted,) if assisted else ())):
        warm(prompts[0][-16:], 4)  # first calls pay for allocation and lazy init, not decoding
    samples: list[SpecSample] = []
    target_runs, spec_runs = [], []
    for i, task in enumerate(tasks):
        base = decode_target(prompts[i], config.max_tokens, i)
        spec = decode_spec(prompts[i], config.max_tokens, i)
        helper = decode_assisted(prompts[i], config.max_tokens, i) if assisted else None
        target_runs.append(base)
        spec_runs.append(spec)
        samples.append(
            SpecSample(
                id=task.id,
                tool=task.tool,
                prompt_tokens=len(prompts[i]),
                text=tokenizer.decode(spec.tokens, skip_special_tokens=True),
                tokens=spec.tokens,
                classes=token_classes(tokenizer, spec.tokens),
                rounds=[(r.position, r.drafted, r.accepted) for r in spec.rounds],
                target_seconds=base.seconds,
                target_tokens=len(base.tokens),
                spec_seconds=spec.seconds,
                spec_equal_target=(spec.tokens == base.tokens) if greedy else None,
                assisted_seconds=helper.seconds if helper else None,
                assisted_tokens=len(helper.tokens) if helper else None,
                assisted_equal_target=(helper.tokens == base.tokens) if helper else None,
            )
        )
        if progress:
            progress()
    overlaps = analytic_alpha(
        target,
        draft,
        [prompt + run.tokens for prompt, run in zip(prompts, target_runs, strict=True)],
        [len(prompt) for prompt in prompts],
        temperature=config.temperature if config.temperature > 0 else 1.0,
        pad_id=tokenizer.pad_token_id or 0,
    )
    for sample, values in zip(samples, overlaps.per_sequence, strict=True):
        sample.analytic_alpha = float(values.double().mean()) if values.numel() else None
    run_config = SpecRunConfig(
        policy=config.policy,
        gamma=policy.max_draft,
        threshold=getattr(policy, "threshold", None),
        head=config.head,
        temperature=config.temperature,
        device=device,
        assisted=assisted,
    )
    summary = summarize_spec(samples, spec_runs, overlaps.per_sequence, run_config)
    finish_record(record, prompts=len(samples))
    write_outputs(out, samples, SpecRun(summary=summary, run=record))
    return summary


def _group_figures(
    samples: list[SpecSample], runs: list[Generation], gamma: int, overlaps: list[Any]
) -> SpecFigures:
    """The figures of one group of prompts (all of them, or one tool's)."""
    stats = AcceptanceStats(gamma=gamma)
    for run in runs:
        stats.add(run.rounds)
    target_s = sum(s.target_seconds for s in samples)
    spec_s = sum(s.spec_seconds for s in samples)
    target_tokens = sum(s.target_tokens for s in samples)
    spec_tokens = sum(len(s.tokens) for s in samples)
    positions = sum(int(v.numel()) for v in overlaps)
    target_rate = target_tokens / target_s if target_s else 0.0
    spec_rate = spec_tokens / spec_s if spec_s else 0.0
    equal = [s.spec_equal_target for s in samples if s.spec_equal_target is not None]
    assisted: dict[str, Any] = {}
    helped = [s for s in samples if s.assisted_seconds is not None]
    if helped:
        rate = sum(s.assisted_tokens or 0 for s in helped) / sum(s.assisted_seconds or 0.0 for s in helped)
        assisted = {
            "assisted_tokens_per_s": rate,
            "spec_vs_assisted": spec_rate / rate if rate else 0.0,
            "assisted_equal_target": f"{sum(bool(s.assisted_equal_target) for s in helped)}/{len(helped)}",
        }
    classes = [s.classes for s in samples]
    drafts = drafts_by_class(runs, classes, gamma)
    return SpecFigures(
        prompts=len(samples),
        tokens=spec_tokens,
        **stats.model_dump(),
        analytic_alpha=float(sum(float(v.double().sum()) for v in overlaps) / positions)
        if positions
        else None,
        target_tokens_per_s=target_rate,
        spec_tokens_per_s=spec_rate,
        target_calls_per_token=stats.rounds / spec_tokens if spec_tokens else 0.0,
        wasted_draft_tokens_per_call=(stats.drafted - stats.accepted) / stats.rounds if stats.rounds else 0.0,
        speedup=spec_rate / target_rate if target_rate else 0.0,
        spec_equal_target=f"{sum(equal)}/{len(equal)}" if equal else None,
        **assisted,
        by_class={
            name: ClassFigures(**stat.model_dump(), **drafts.get(name, {}))
            for name, stat in _ordered(acceptance_by_class(runs, classes)).items()
        },
    )


def drafts_by_class(
    runs: list[Generation], classes: list[list[str]], gamma: int
) -> dict[str, dict[str, int]]:
    """Where draft tokens go, by the class of the output token at the proposal's position: `drafted`
    proposals, `wasted` = drafted − accepted (the rejected one and those after it), and
    `policy_stops`: rounds the policy ended before its budget γ whose last proposal is there.
    Proposals past the end of the output are left out (they have no output token to class)."""
    table: dict[str, dict[str, int]] = {}
    for run, labels in zip(runs, classes, strict=True):
        end = len(labels)
        for r in run.rounds:
            for i in range(r.drafted):
                if r.position + i >= end:
                    break
                row = table.setdefault(labels[r.position + i], {"drafted": 0, "wasted": 0, "policy_stops": 0})
                row["drafted"] += 1
                row["wasted"] += i >= r.accepted
            last = r.position + r.drafted - 1
            if 0 < r.drafted < gamma and last < end:
                table.setdefault(labels[last], {"drafted": 0, "wasted": 0, "policy_stops": 0})[
                    "policy_stops"
                ] += 1
    return table


def _ordered(stats: dict[str, ClassStat]) -> dict[str, ClassStat]:
    return {name: stats[name] for name in CLASSES if name in stats}


def summarize_spec(
    samples: list[SpecSample], runs: list[Generation], overlaps: list[Any], config: SpecRunConfig
) -> SpecSummary:
    """Overall and per-tool figures, acceptance by draft position and by token class."""
    gamma = config.gamma
    by_tool: dict[str, list[int]] = defaultdict(list)
    for i, sample in enumerate(samples):
        by_tool[sample.tool].append(i)
    per_tool = {
        tool: _group_figures(
            [samples[i] for i in rows], [runs[i] for i in rows], gamma, [overlaps[i] for i in rows]
        )
        for tool, rows in sorted(by_tool.items())
    }
    positions: list[PositionStat] = acceptance_by_position(runs, gamma)
    return SpecSummary(
        overall=_group_figures(samples, runs, gamma, overlaps),
        per_tool=per_tool,
        by_position=[PositionFigures(**p.model_dump()) for p in positions],
        config=config,
    )


SPEC_HEADER = (
    "tool",
    "prompts",
    "tokens",
    "α = A/(A+R)",
    "A/D",
    "τ = 1+A/S",
    "τ from α",
    "analytic α",
    "wasted (D−A)/S",
    "calls S/tokens",
    "target tok/s",
    "spec tok/s",
    "speedup",
    "greedy equal",
)
DEFINITIONS = (
    "S rounds (target calls), D drafted tokens (γ·S at fixed γ: A/D is vLLM's draft acceptance rate), "
    "A accepted, R rounds ended by a rejection; τ from α = (1 − α^(γ+1)) / (1 − α); "
    "analytic α = mean Σ_v min(p, q) on the target's own outputs; wasted = drafted tokens not "
    "accepted per target call; calls = target calls per generated token."
)


def _analytic(figures: SpecFigures) -> str:
    return "-" if figures.analytic_alpha is None else f"{figures.analytic_alpha:.3f}"


def spec_row(name: str, f: SpecFigures) -> list[str]:
    """One group's row of summary.md's first table (SPEC_HEADER)."""
    return [
        name,
        str(f.prompts),
        str(f.tokens),
        f"{f.alpha:.3f}",
        f"{f.draft_acceptance_rate:.3f}",
        f"{f.mean_accepted_length:.2f}",
        f"{f.expected_tau:.2f}",
        _analytic(f),
        f"{f.wasted_draft_tokens_per_call:.2f}",
        f"{f.target_calls_per_token:.3f}",
        f"{f.target_tokens_per_s:.1f}",
        f"{f.spec_tokens_per_s:.1f}",
        f"{f.speedup:.2f}×",
        f.spec_equal_target or "-",
    ]


def console_rows(summary: SpecSummary) -> tuple[list[str], list[list[str]]]:
    """`toolbench spec`'s console table: the acceptance figures per tool and for all prompts."""
    header = [
        "tool",
        "prompts",
        "α",
        "A/D",
        "τ=1+A/S",
        "τ(α)",
        "analytic α",
        "wasted/call",
        "calls/token",
        "speedup",
    ]
    rows = [
        [
            tool,
            str(f.prompts),
            f"{f.alpha:.3f}",
            f"{f.draft_acceptance_rate:.3f}",
            f"{f.mean_accepted_length:.2f}",
            f"{f.expected_tau:.2f}",
            _analytic(f),
            f"{f.wasted_draft_tokens_per_call:.2f}",
            f"{f.target_calls_per_token:.3f}",
            f"{f.speedup:.2f}×",
        ]
        for tool, f in [*summary.per_tool.items(), ("all", summary.overall)]
    ]
    return header, rows


def markdown_report(summary: SpecSummary) -> str:
    """The summary as Markdown tables, each metric's formula in its header."""
    config, overall = summary.config, summary.overall
    policy = f"Draft policy: {config.policy}, γ (budget) = {config.gamma}"
    if config.threshold is not None:
        policy += f", threshold = {config.threshold:g}"
    groups = [*summary.per_tool.items(), ("**all**", overall)]
    by_class = [
        [
            name,
            str(c.accepted),
            str(c.rejected),
            f"{c.alpha:.3f}",
            str(c.drafted),
            str(c.wasted),
            str(c.policy_stops),
        ]
        for name, c in overall.by_class.items()
    ]
    by_position = [
        [str(p.position), str(p.drafted), str(p.accepted), f"{p.rate:.3f}"] for p in summary.by_position
    ]
    parts = [
        policy,
        markdown_table(SPEC_HEADER, [spec_row(name, f) for name, f in groups], ["left", *["right"] * 13]),
        DEFINITIONS,
        markdown_table(
            ["token class", "accepted", "rejected", "α", "drafted", "wasted", "policy stops"],
            by_class,
            ["left", *["right"] * 6],
        ),
        markdown_table(["draft position", "drafted", "accepted", "rate"], by_position, "right"),
    ]
    if overall.assisted_tokens_per_s is not None:
        parts.append(
            f"HF assisted generation (greedy, γ = {config.gamma}): "
            f"{overall.assisted_tokens_per_s:.1f} tok/s; ours {overall.spec_tokens_per_s:.1f} tok/s "
            f"({overall.spec_vs_assisted:.2f}×); outputs equal to target greedy: {overall.assisted_equal_target}."
        )
    return "\n\n".join(parts) + "\n"


def plot_acceptance(summary: SpecSummary, path: Path) -> None:
    """Two panels: acceptance rate by draft position, α by token class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5), dpi=110)
    positions = summary.by_position
    left.bar([p.position for p in positions], [p.rate for p in positions], color="#4c72b0")
    left.set_xlabel("draft position i")
    left.set_ylabel("accepted / drafted at i")
    left.set_ylim(0, 1)
    left.set_title("acceptance by draft position")
    classes = summary.overall.by_class
    right.bar(range(len(classes)), [c.alpha for c in classes.values()], color="#55a868")
    right.set_xticks(range(len(classes)), [name.replace("_", "\n") for name in classes], fontsize=8)
    right.set_ylabel("α = A / (A + R)")
    right.set_ylim(0, 1)
    right.set_title("acceptance by token class")
    for axis in (left, right):
        axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    with atomic_open(path) as handle:
        figure.savefig(handle, format="png")
    plt.close(figure)


def write_outputs(out: Path, samples: list[SpecSample], run: SpecRun) -> None:
    """samples.jsonl, the run folder (summary.json with the run record, summary.md) and acceptance.png."""
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "samples.jsonl", samples)
    write_run_folder(out, run, markdown_report(run.summary))
    plot_acceptance(run.summary, out / "acceptance.png")
