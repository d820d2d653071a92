"""What every run writes, as types: the summaries of `eval` / `score`, `spec`, `distill grid` and
`demo`, and the files that carry them with their run record (`toolbench.foundation.run_folder` writes and
reads them).

The JSON keys are the files' contract (the report, the leaderboard, people's scripts read them), so
each model's fields are the keys the files have always had, in their order. Reading is lenient
where the files grew: a key added later has a default, so a summary written before it still loads
(None where a figure was not measured then, rather than a made-up 0). Keys a newer version adds are
ignored. A few keys are left out of a file, not written as null, when they do not apply (an eval's
`cost` in `score`'s file, HF assisted generation in a spec run without it), as they always were.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from toolbench.foundation.records import RunRecord


class _OmitWhenNone(BaseModel):
    """A model whose `omit_when_none` keys are left out of its JSON when None (absent, as the
    files have them, instead of null)."""

    omit_when_none: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for key in self.omit_when_none:
            if data.get(key) is None:
                data.pop(key, None)
        return data


# ------------------------------------------------------------------ eval and score


class Aggregate(BaseModel):
    """One group's scores: a tool's (`per_tool`), or every task's (`micro`). Rates are shares of
    the group's n tasks (`toolbench.core.score.aggregate` says how each is counted)."""

    n: int
    success: float
    state_f1: float
    ast_match: float
    parse_error_rate: float
    tool_error_rate: float
    crash_rate: float
    executability: float | None = None  # None: a summary from before it was measured
    lcs: float | None = None
    error_types: dict[str, int] = Field(default_factory=dict)
    no_call_rate: float | None = None  # the answer was read and held no call (right only on relevance tasks)
    reward: float | None = None  # mean over the episode tasks; None when there are none


class MacroFigures(BaseModel):
    """The mean over tools of each tool's rate (every tool weighs the same, as ToolBench reports);
    `reward` over the tools that have episode tasks."""

    success: float
    state_f1: float
    ast_match: float
    parse_error_rate: float
    no_call_rate: float | None = None
    tool_error_rate: float
    crash_rate: float
    executability: float | None = None
    lcs: float | None = None
    reward: float | None = None


class CellSummary(BaseModel):
    """One group's success rate with its 95% Wilson interval and why the failures failed."""

    n: int
    success: float
    ci95: tuple[float, float]
    diagnoses: dict[str, int] = Field(default_factory=dict)


class EvalSummary(BaseModel):
    """A scored run: per tool, the macro and micro averages, per category and per tool x category
    (`tool/category`). Summaries from before categories have none."""

    per_tool: dict[str, Aggregate]
    macro: MacroFigures
    micro: Aggregate
    per_category: dict[str, CellSummary] = Field(default_factory=dict)
    cells: dict[str, CellSummary] = Field(default_factory=dict)


class CostSummary(BaseModel):
    """What a run asked of its backend, written beside its success rates (summary.json `cost`,
    summary.md): a model that wins by 2 points at 10 times the tokens or latency is not simply
    better. Kept apart from `summary` because it is measured, not scored: a rerun from the cache
    scores the same and costs nothing."""

    requests: int = Field(
        ge=0, description="Backend requests: one per task, one per episode step, plus re-asked refusals."
    )
    cached: int = Field(ge=0, description="Of those, answered from the answer cache: not asked, not timed.")
    timed: int = Field(ge=0, description="Requests asked in this run, with a measured latency.")
    usage_reported: int = Field(ge=0, description="Answers that carried token counts (cached ones included).")
    prompt_tokens: int | None = Field(
        None, description="Sum over the answers that reported usage; None (n/a) when none did."
    )
    completion_tokens: int | None = None
    latency_p50_ms: float | None = Field(
        None, description="Median wall time per asked request (ms); None when every answer was cached."
    )
    latency_p95_ms: float | None = Field(None, description="95th percentile of the same (ms).")


class EvalRun(_OmitWhenNone):
    """summary.json of `toolbench eval` (with its cost) and of `toolbench score` (no backend, so
    no `cost` key)."""

    omit_when_none: ClassVar[tuple[str, ...]] = ("cost",)

    summary: EvalSummary
    cost: CostSummary | None = None
    run: RunRecord


# ------------------------------------------------------------------ spec


class ClassFigures(BaseModel):
    """α for one token class, and where the draft tokens went (`spec_eval.drafts_by_class`)."""

    accepted: int
    rejected: int
    alpha: float
    drafted: int = 0
    wasted: int = 0
    policy_stops: int = 0


class PositionFigures(BaseModel):
    """Draft position i: rounds that proposed at least i tokens, those whose first i were accepted."""

    position: int
    drafted: int
    accepted: int
    rate: float


class SpecFigures(_OmitWhenNone):
    """One group of prompts (all, or one tool's): counts, the acceptance metrics of
    `toolbench.distill.speculative.acceptance` (names and formulas there), speed, and HF assisted generation's
    figures when it ran (greedy runs that asked for it)."""

    omit_when_none: ClassVar[tuple[str, ...]] = (
        "assisted_tokens_per_s",
        "spec_vs_assisted",
        "assisted_equal_target",
    )

    prompts: int
    tokens: int
    gamma: int
    rounds: int
    drafted: int
    accepted: int
    rejected: int
    alpha: float
    draft_acceptance_rate: float
    mean_accepted_length: float
    expected_tau: float
    analytic_alpha: float | None
    target_tokens_per_s: float
    spec_tokens_per_s: float
    target_calls_per_token: float
    wasted_draft_tokens_per_call: float
    speedup: float
    spec_equal_target: str | None = Field(description="`equal/compared` greedy outputs; None when sampling.")
    assisted_tokens_per_s: float | None = None
    spec_vs_assisted: float | None = None
    assisted_equal_target: str | None = None
    by_class: dict[str, ClassFigures]


class SpecRunConfig(BaseModel):
    """The draft policy as it ran (γ and threshold resolved: a learned head's own when not given)."""

    policy: str
    gamma: int
    threshold: float | None = None
    head: str | None = None
    temperature: float
    device: str
    assisted: bool


class SpecSummary(BaseModel):
    overall: SpecFigures
    per_tool: dict[str, SpecFigures]
    by_position: list[PositionFigures]
    config: SpecRunConfig


class SpecRun(BaseModel):
    """summary.json of `toolbench spec`."""

    summary: SpecSummary
    run: RunRecord


# ------------------------------------------------------------------ distill grid


class Claim(BaseModel):
    """A paper's claim the grid measures: `better` beats `worse` by `low`–`high` %."""

    question: str
    better: str
    worse: str
    paper: str
    low: float | None = None
    high: float | None = None
    ratio: bool = Field(False, description="Measured as α_better / α_worse (%), not a relative gain.")


class GridComparison(Claim):
    measured_percent: float | None = Field(description="None when a setting of the pair did not run.")
    verdict: str


class GridRow(BaseModel):
    """One distillation setting: its run and the analytic α of the draft it made."""

    name: str
    question: str
    setting: str
    steps: int
    train_seconds: float
    cache_seconds: float | None = None
    prompts: dict[str, Any] = Field(default_factory=dict)
    wall_seconds: float
    alpha: float
    per_tool: dict[str, float] = Field(default_factory=dict)


class HeldoutSet(BaseModel):
    prompts: int
    answer_tokens: int


class GridSummary(BaseModel):
    """grid.json of `toolbench distill grid`: the summary with its run record beside the rows."""

    rows: list[GridRow]
    generic_alpha: float
    comparisons: list[GridComparison]
    best_divergence: str | None = None
    heldout: HeldoutSet
    run: RunRecord


# ------------------------------------------------------------------ demo


class DemoStep(BaseModel):
    name: str
    seconds: float | None = Field(None, description="None: skipped and never timed in this folder.")
    skipped: bool = False


class DemoSummary(_OmitWhenNone):
    """demo.json of `toolbench demo`, rewritten after every step: the preset, each step's time,
    the total of first runs and, at the end, the last run's wall time. Demos from before the run
    record have no `run`."""

    omit_when_none: ClassVar[tuple[str, ...]] = ("total_seconds", "last_run_seconds", "run")

    preset: dict[str, Any]
    steps: list[DemoStep] = Field(default_factory=list)
    total_seconds: float | None = None
    last_run_seconds: float | None = None
    run: RunRecord | None = None
