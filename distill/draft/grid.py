"""`toolbench distill grid`: the comparisons of Hong et al. (2025), DistillSpec and AdaSPEC on one
(target, draft) pair, in one resumable command, each measured margin printed next to the paper's.

Every setting starts from the same generic draft and trains the same number of optimizer steps
of the same batch size (equal compute; AdaSPEC splits its steps between the reference and the
draft, as its paper does). Offline settings of one scenario share one teacher cache. Every draft
is then scored by analytic α (mean Σ_v min(p, q), DistillSpec's acceptance) on the same held-out
prompts (the odd lines of the tools' test sets: never a distillation prompt), with the generic
draft as the "before" row.

Margins are relative: (α_a − α_b) / α_b, except "synthetic vs real", which Hong et al. state as a
ratio (α_III / α_I). Their figures come from 7B-scale pairs and real traffic; ours from a 6 M target
and a 1 M draft trained in minutes — the table says where they agree and where not.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from toolbench.distill.training.align import SFT_TOOLS
from toolbench.foundation.errors import UserError
from toolbench.foundation.summaries import Claim, GridComparison, GridRow, GridSummary, HeldoutSet
from toolbench.foundation.tables import markdown_table


class GridSetting(BaseModel):
    name: str
    question: str
    changes: dict[str, Any] = Field(default_factory=dict)
    scenario: str = "II"


SETTINGS: list[GridSetting] = [
    GridSetting(name="offline-fkl", question="baseline: offline, white-box, FKL, scenario II"),
    GridSetting(name="online-fkl", question="offline vs online", changes={"mode": "online"}),
    GridSetting(name="black", question="white vs black box", changes={"signal": "black"}),
    GridSetting(name="rkl", question="divergence", changes={"loss": "rkl"}),
    GridSetting(name="jsd", question="divergence", changes={"loss": "jsd", "beta": 0.5}),
    GridSetting(name="tvd", question="divergence", changes={"loss": "tvd"}),
    GridSetting(name="adaspec", question="AdaSPEC token selection", changes={"select": "adaspec"}),
    GridSetting(
        name="online-onpolicy", question="on-policy data (λ = 0.5)", changes={"mode": "online", "lmbda": 0.5}
    ),
    GridSetting(name="real-I", question="real vs synthetic queries", scenario="I"),
    GridSetting(name="synthetic-III", question="real vs synthetic queries", scenario="III"),
]


CLAIMS: list[Claim] = [
    Claim(
        question="offline vs online",
        better="offline-fkl",
        worse="online-fkl",
        paper="Hong et al. 2025: offline beats online by 11–25%",
        low=11,
        high=25,
    ),
    Claim(
        question="white vs black box",
        better="offline-fkl",
        worse="black",
        paper="Hong et al. 2025: white-box beats black-box by 2–10%",
        low=2,
        high=10,
    ),
    Claim(
        question="synthetic vs real queries",
        better="synthetic-III",
        worse="real-I",
        paper="Hong et al. 2025: target-written queries reach 80–93% of real-query results",
        low=80,
        high=93,
        ratio=True,
    ),
    Claim(
        question="AdaSPEC on vs off",
        better="adaspec",
        worse="offline-fkl",
        paper="AdaSPEC: up to +15% acceptance over plain distillation",
        low=0,
        high=15,
    ),
    Claim(
        question="on-policy vs target answers (online)",
        better="online-onpolicy",
        worse="online-fkl",
        paper="DistillSpec: on-policy (draft-generated) data improves alignment",
        low=0,
    ),
]


class GridConfig(BaseModel):
    target: str
    draft: str
    tools: list[str] = Field(default_factory=lambda: list(SFT_TOOLS))
    samples: int = Field(600, ge=1, description="Scenario II prompts; scenario III query attempts.")
    steps: int = Field(60, ge=2, description="Optimizer steps of every setting (equal compute).")
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(2e-3, gt=0)
    eval_per_tool: int = Field(20, ge=1, description="Held-out prompts per tool for analytic α.")
    settings: list[str] | None = Field(None, description="Only these settings (names), default all.")
    seed: int = 0
    device: str = "auto"
    dtype: str = Field("auto", description="Autocast precision while training (see TrainConfig).")


def selected_settings(config: GridConfig) -> list[GridSetting]:
    known = {s.name: s for s in SETTINGS}
    if config.settings is None:
        return list(SETTINGS)
    unknown = [name for name in config.settings if name not in known]
    if unknown:
        raise UserError(f"unknown grid setting {unknown[0]!r}; known: {', '.join(known)}")
    return [known[name] for name in config.settings]


def distill_config(config: GridConfig, setting: GridSetting, out: Path):
    from toolbench.distill.draft.distillation import DistillConfig
    from toolbench.distill.draft.scenarios import ScenarioConfig
    from toolbench.distill.training.trainer import TrainConfig

    train = TrainConfig(
        learning_rate=config.learning_rate,
        batch_size=config.batch_size,
        max_steps=config.steps,
        warmup_steps=min(10, config.steps // 4),
        log_every=5,
        checkpoint_every=25,
        seed=config.seed,
        device=config.device,
        dtype=config.dtype,
    )
    return DistillConfig(
        target=config.target,
        draft=config.draft,
        scenario=ScenarioConfig(
            scenario=setting.scenario, tools=config.tools, samples=config.samples, seed=config.seed
        ),
        cache_dir=str(out / f"cache-{setting.scenario}"),
        train=train,
        eval_per_tool=0,
        **setting.changes,
    )


def margin(claim: Claim, alphas: dict[str, float]) -> float | None:
    if claim.better not in alphas or claim.worse not in alphas or alphas[claim.worse] <= 0:
        return None
    if claim.ratio:
        return 100 * alphas[claim.better] / alphas[claim.worse]
    return 100 * (alphas[claim.better] - alphas[claim.worse]) / alphas[claim.worse]


def verdict(claim: Claim, measured: float | None) -> str:
    if measured is None:
        return "not measured"
    if claim.low is not None and measured < claim.low:
        return "below the paper" if measured >= 0 or claim.ratio else "opposite sign"
    if claim.high is not None and measured > claim.high:
        return "above the paper"
    return "within the paper's range"


def run_grid(config: GridConfig, out: Path, console: Any = None) -> GridSummary:
    """Distill every setting (resuming finished ones), score all by analytic α, write grid.json,
    grid.md and grid.png into `out`."""
    from toolbench.distill.draft.distillation import evaluate_alpha, run_distill
    from toolbench.foundation.run_folder import write_run_folder
    from toolbench.foundation.runinfo import finish_record, start_record

    record = start_record("distill-grid", config.model_dump(), seed=config.seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = selected_settings(config)
    runs: list[dict[str, Any]] = []  # each setting's run; its α comes after all have trained
    for i, setting in enumerate(settings, 1):
        if console:
            console.print(f"[bold]▶ [{i}/{len(settings)}] {setting.name}[/] ({setting.question})")
        began = time.perf_counter()
        summary = run_distill(distill_config(config, setting, out), out / setting.name, progress=True)
        runs.append(
            {
                "name": setting.name,
                "question": setting.question,
                "setting": summary["setting"],
                "steps": summary["train"]["steps"] + summary.get("reference_steps", 0),
                "train_seconds": summary["train"]["seconds"],
                "cache_seconds": (summary.get("cache") or {}).get("seconds"),
                "prompts": summary["prompts"],
                "wall_seconds": round(time.perf_counter() - began, 1),
            }
        )
    drafts = {"generic": config.draft, **{run["name"]: str(out / run["name"]) for run in runs}}
    if console:
        console.print(
            f"analytic α of {len(drafts)} drafts on {config.eval_per_tool} held-out prompts per tool"
        )
    alpha = evaluate_alpha(config.target, drafts, config.tools, config.eval_per_tool)
    rows = [
        GridRow(
            **run,
            alpha=alpha["drafts"][run["name"]]["alpha"],
            per_tool=alpha["drafts"][run["name"]]["per_tool"],
        )
        for run in runs
    ]
    alphas = {name: d["alpha"] for name, d in alpha["drafts"].items()}
    comparisons = []
    for claim in CLAIMS:
        measured = margin(claim, alphas)
        comparisons.append(
            GridComparison(
                **claim.model_dump(),
                measured_percent=None if measured is None else round(measured, 1),
                verdict=verdict(claim, measured),
            )
        )
    divergences = {name: alphas[name] for name in ("offline-fkl", "rkl", "jsd", "tvd") if name in alphas}
    result = GridSummary(
        rows=rows,
        generic_alpha=alphas["generic"],
        comparisons=comparisons,
        best_divergence=max(divergences, key=divergences.get) if divergences else None,
        heldout=HeldoutSet(prompts=alpha["prompts"], answer_tokens=alpha["answer_tokens"]),
        run=finish_record(record, settings=len(rows)),
    )
    write_run_folder(out, result, grid_markdown(result), name="grid")
    plot_grid(result, out / "grid.png")
    return result


def _measured(comparison: GridComparison) -> str:
    """A relative margin with its sign (+5.1%), a ratio without (85.0%), `-` when not measured."""
    if comparison.measured_percent is None:
        return "-"
    return (
        f"{comparison.measured_percent:.1f}%" if comparison.ratio else f"{comparison.measured_percent:+.1f}%"
    )


def grid_markdown(result: GridSummary) -> str:
    heldout = result.heldout
    settings = [
        [row.setting, row.question, str(row.steps), f"{row.train_seconds:.0f}", f"{row.alpha:.3f}"]
        for row in result.rows
    ]
    comparisons = [
        [f"{c.question} ({c.better} vs {c.worse})", _measured(c), c.paper, c.verdict]
        for c in result.comparisons
    ]
    parts = [
        f"Analytic α on {heldout.prompts} held-out prompts ({heldout.answer_tokens:,} target-answer tokens); "
        f"generic draft α = {result.generic_alpha:.3f}.",
        markdown_table(
            ["setting", "question", "steps", "train s", "α"],
            settings,
            ["left", "left", "right", "right", "right"],
        ),
        markdown_table(
            ["comparison", "measured", "paper", "verdict"], comparisons, ["left", "right", "left", "left"]
        ),
    ]
    if result.best_divergence:
        parts.append(
            f"Best divergence here: {result.best_divergence} (DistillSpec: the best choice depends on "
            "the task and the decoding strategy)."
        )
    return "\n\n".join(parts) + "\n"


def plot_grid(result: GridSummary, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from toolbench.foundation.io import atomic_open

    names = [row.name for row in result.rows]
    values = [row.alpha for row in result.rows]
    figure, axis = plt.subplots(figsize=(8, 3.6), dpi=110)
    bars = axis.bar(names, values, color="#4c72b0")
    axis.axhline(result.generic_alpha, color="#c44e52", linestyle="--", label="generic draft (before)")
    for bar, value in zip(bars, values, strict=True):
        axis.text(bar.get_x() + bar.get_width() / 2, value + 0.01, f"{value:.2f}", ha="center", fontsize=8)
    axis.set_ylabel("analytic α (held-out prompts)")
    axis.set_ylim(0, 1.05)
    axis.set_title("Distillation settings at equal steps")
    axis.legend(loc="lower right", fontsize=8)
    plt.setp(axis.get_xticklabels(), rotation=30, ha="right")
    figure.tight_layout()
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png")
    plt.close(figure)
