"""`toolbench report RUN`: one page from everything a run folder holds.

Results are found by what they are, not where they sit: every `summary.json` says which command
wrote it (its RunRecord), every trained model folder has `train_log.jsonl`, and `alpha.json`,
`grid.json`, `leaderboard.json` and `demo.json` keep their names. So the report works on a demo folder, on `toolbench
eval --ablate` output, or on a folder where a person copied results from several machines.

Out come `RUN/report/*.png`, `RUN/report.md` (links the PNGs) and `RUN/report.html`, which is
self-contained (PNGs inlined as data URIs, inline CSS, no script, nothing fetched) so it can be
mailed or archived as one file. Each section whose inputs are absent says so in one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from toolbench.app import report_plots as plots
from toolbench.app.pages import (
    Figure,
    Record,
    Section,
    Table,
    is_floor,
    model_label,
    render_html,
    render_markdown,
)
from toolbench.foundation.errors import UserError
from toolbench.foundation.io import atomic_open
from toolbench.foundation.run_folder import run_file_from
from toolbench.foundation.runinfo import now
from toolbench.foundation.summaries import (
    ClassFigures,
    EvalRun,
    EvalSummary,
    MacroFigures,
    PositionFigures,
    SpecFigures,
    SpecRun,
    SpecSummary,
)
from toolbench.pipelines.results import percent

SKIP_DIRS = {"checkpoints", "teacher-cache", "distill-cache", "__pycache__", "data"}
SPEC_ORDER = {"before": 0, "after": 1}


# ------------------------------------------------------------------- discovery


@dataclass
class Found:
    evals: list[tuple[Path, EvalRun]] = field(default_factory=list)
    scores: list[tuple[Path, EvalRun]] = field(default_factory=list)
    specs: list[tuple[Path, SpecRun]] = field(default_factory=list)
    logs: list[tuple[Path, list[dict], dict | None]] = field(default_factory=list)
    alphas: list[tuple[Path, dict]] = field(default_factory=list)
    grids: list[tuple[Path, dict]] = field(default_factory=list)
    leaderboards: list[tuple[Path, dict]] = field(default_factory=list)
    demo: dict | None = None
    records: list[tuple[Path, dict]] = field(default_factory=list)

    def empty(self) -> bool:
        return not (
            self.evals
            or self.scores
            or self.specs
            or self.logs
            or self.alphas
            or self.grids
            or self.leaderboards
            or self.demo
        )


def _json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as error:
        raise UserError(f"{path}: not valid JSON ({error})") from None


def discover(run_dir: Path) -> Found:
    found = Found()
    # summary.json by the command its run record names: the type it is read as, where it goes
    kinds: dict[str, tuple[type[EvalRun] | type[SpecRun], list]] = {
        "eval": (EvalRun, found.evals),
        "score": (EvalRun, found.scores),
        "spec": (SpecRun, found.specs),
    }
    for root, dirs, files in os.walk(run_dir):
        folder = Path(root)
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") and d not in SKIP_DIRS and not (folder == run_dir and d == "report")
        )
        if "summary.json" in files:
            data = _json(folder / "summary.json")
            run = data.get("run") if isinstance(data, dict) else None
            command = run.get("command") if isinstance(run, dict) else None
            if command in kinds and isinstance(data.get("summary"), dict):
                model, bucket = kinds[command]
                bucket.append((folder, run_file_from(data, model, folder / "summary.json")))
                found.records.append((folder, run))
        if "train_log.jsonl" in files:
            lines = _log_lines(folder / "train_log.jsonl")
            record = _json(folder / "train_record.json") if "train_record.json" in files else None
            if lines or record:
                found.logs.append((folder, lines, record))
            if record:
                found.records.append((folder, record))
        if (
            "alpha.json" in files
            and isinstance(data := _json(folder / "alpha.json"), dict)
            and "drafts" in data
        ):
            found.alphas.append((folder, data))
        if (
            "leaderboard.json" in files
            and isinstance(data := _json(folder / "leaderboard.json"), dict)
            and isinstance(data.get("leaderboard"), dict)
        ):
            found.leaderboards.append((folder, data))
            if isinstance(data.get("run"), dict):
                found.records.append((folder, data["run"]))
        if "grid.json" in files and isinstance(data := _json(folder / "grid.json"), dict):
            found.grids.append((folder, data))
            if isinstance(data.get("run"), dict):
                found.records.append((folder, data["run"]))
    if (run_dir / "demo.json").is_file() and isinstance(demo := _json(run_dir / "demo.json"), dict):
        found.demo = demo
    return found


def _log_lines(path: Path) -> list[dict]:
    """A training log's lines; one being appended right now may end in a partial line: skip it."""
    lines = []
    for raw in path.read_bytes().splitlines():
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(line, dict) and "step" in line and "loss" in line:
            lines.append(line)
    return lines


# ------------------------------------------------------------------- helpers


def _tool(summary: EvalSummary, tool: str, metric: str) -> Any:
    """One tool's figure from an eval summary; None for a tool that run did not score."""
    figures = summary.per_tool.get(tool)
    return None if figures is None else getattr(figures, metric)


def _num(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_seconds(value: float | None) -> str:
    """`12.3 s` under a minute and a half, `4 min 58 s` above (the demo prints the same)."""
    if value is None:
        return "-"
    return f"{value:.1f} s" if value < 90 else f"{int(value // 60)} min {value % 60:.0f} s"


def _duration(record: dict) -> float | None:
    try:
        start, end = (datetime.fromisoformat(record[k]) for k in ("started_at", "finished_at"))
    except (KeyError, TypeError, ValueError):
        return None
    return (end - start).total_seconds()


def _rel(path: Path, run_dir: Path) -> str:
    return str(path.relative_to(run_dir)) if path != run_dir else "."


def _model_folder(folder: Path, run_dir: Path) -> str:
    """A trained model's folder as the report names it: relative to RUN/models if inside it."""
    models = run_dir / "models"
    return _rel(folder, models) if models in folder.parents else _rel(folder, run_dir)


def setting_label(config: dict, modes: int) -> str:
    k = config.get("k_demos", 0)
    label = f"k={k}" + (f" {config.get('retriever', '')}" if k else "")
    label += ", sys " + ("on" if config.get("system_prompt") else "off")
    if config.get("task_set") == "indist":
        label += ", in distribution"
    return f"{config.get('mode', '')} {label}" if modes > 1 else label


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _flatten(v, f"{prefix}{k}.")]
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        return [(prefix.rstrip("."), f"{len(value)} items")]
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    text = " ".join(text.split())
    return [(prefix.rstrip("."), text if len(text) <= 90 else text[:88] + "…")]


def _generic_table(rows: list[dict]) -> Table:
    """A list of dicts as a table of the columns whose values are scalars."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k, v in row.items() if k not in keys and not isinstance(v, dict | list)]
    cells = [[_num(r[k]) if isinstance(r.get(k), float) else str(r.get(k, "-")) for k in keys] for r in rows]
    return Table(keys, cells)


# ------------------------------------------------------------------- sections


def headline(found: Found, evals: list[EvalEntry]) -> Section:
    rows = []
    trained = [e for e in evals if not e.floor]
    floors = [e for e in evals if e.floor]
    if trained:
        best = max(trained, key=lambda e: e.summary.macro.success)
        value = f"{percent(best.summary.macro.success)}%"
        if floors:
            floor = max(floors, key=lambda e: e.summary.macro.success)
            value += f" vs {percent(floor.summary.macro.success)}% for the floor ({floor.name})"
        tools = len(best.summary.per_tool)
        rows.append([f"tool success, macro over {tools} tools, best setting: {best.name}", value])
    specs = dict(_ordered_specs(found))
    if "before" in specs and "after" in specs:
        b, a = specs["before"].overall, specs["after"].overall
        rows.append(["per-token acceptance α = A/(A+R) on spec prompts", f"{b.alpha:.3f} → {a.alpha:.3f}"])
        rows.append(
            ["speedup vs target-only decoding (tokens/s ratio)", f"{b.speedup:.2f}× → {a.speedup:.2f}×"]
        )
    for _, alpha in found.alphas:
        drafts = alpha["drafts"]
        if "before" in drafts and "after" in drafts:
            rows.append(
                [
                    f"analytic α on {alpha.get('prompts', '?')} held-out prompts",
                    f"{drafts['before']['alpha']:.3f} → {drafts['after']['alpha']:.3f}",
                ]
            )
    if found.demo and found.demo.get("total_seconds") is not None:
        preset = found.demo.get("preset")
        preset = preset.get("name") if isinstance(preset, dict) else preset
        rows.append(
            [f"demo compute time, all steps (preset {preset})", format_seconds(found.demo["total_seconds"])]
        )
    section = Section("Headline figures")
    if rows:
        section.blocks.append(Table(["figure", "value (before → after)"], rows))
    else:
        section.blocks.append("No headline figures: no eval or before/after spec results in this folder.")
    return section


@dataclass
class EvalEntry:
    """One eval run as the report shows it: readable model and setting labels, its summary."""

    model: str
    floor: bool
    setting: str
    task_set: str
    base_setting: str  # the setting without its task set: held out and in distribution side by side
    folder: str
    summary: EvalSummary
    name: str = ""


def eval_entries(found: Found, run_dir: Path) -> list[EvalEntry]:
    modes = len({data.run.config.get("mode") for _, data in found.evals})
    entries = []
    for folder, data in found.evals:
        config = data.run.config
        model = config.get("model", "?")
        entries.append(
            EvalEntry(
                model=model_label(model),
                floor=is_floor(model),
                setting=setting_label(config, modes),
                task_set=config.get("task_set", "test"),
                base_setting=setting_label({**config, "task_set": "test"}, modes),
                folder=_rel(folder, run_dir),
                summary=data.summary,
            )
        )
    names = [(e.model, e.setting) for e in entries]
    for e in entries:  # two folders with the same readable label: tell them apart by folder
        e.name = f"{e.model} · {e.setting}"
        if names.count((e.model, e.setting)) > 1:
            e.name += f" ({e.folder})"
    entries.sort(key=lambda e: (e.floor, e.model, e.setting))
    return entries


def success_section(found: Found, evals: list[EvalEntry]) -> Section:
    section = Section("Tool success per tool, by setting")
    if not evals:
        section.blocks.append("No eval results (`toolbench eval` writes summary.json with its run record).")
        return section
    tools = sorted({t for e in evals for t in e.summary.per_tool})
    n = {t: max(_tool(e.summary, t, "n") or 0 for e in evals) for t in tools}
    section.blocks.append(
        "Success (ToolBench's rule): the best gold label's state F1 is 1 after a clean parse and "
        "execution. Macro = mean over tools, so each tool weighs the same. Grey hatched bars: the "
        "untrained floor. State F1 (partial credit: the share of the gold final state reached) shows "
        "progress that strict success hides."
    )
    series = [
        (
            e.name,
            [*(_tool(e.summary, t, "success") for t in tools), e.summary.macro.success],
        )
        for e in evals
    ]
    png = plots.grouped_bars(
        [*tools, "macro"],
        series,
        title="Tool success rate per tool",
        ylabel="success (% of test tasks)",
        percent=True,
        muted=frozenset(e.name for e in evals if e.floor),
    )
    section.blocks.append(Figure("success", png, "Success per tool by model and setting (%)."))
    headers = [
        "model · setting",
        *(f"{t} (n={n[t]})" for t in tools),
        "macro",
        "state F1 (macro)",
        "parse err (macro)",
    ]
    rows = [
        [
            e.name,
            *(percent(_tool(e.summary, t, "success")) for t in tools),
            percent(e.summary.macro.success),
            percent(e.summary.macro.state_f1),
            percent(e.summary.macro.parse_error_rate),
        ]
        for e in evals
    ]
    section.blocks.append(Table(headers, rows))
    both = task_set_table(evals)
    if both is not None:
        section.blocks.append(
            "Held out (the test tasks: templates no training data uses) beside in distribution (the "
            "training templates with new values, kept out of training): low on both means the model "
            "does not copy values from the request yet; high in distribution only, that it does not "
            "generalise to unseen phrasings."
        )
        section.blocks.append(both)
    categories = category_table(evals)
    if categories is not None:
        section.blocks.append(
            "Success per category (BFCL-style: single, multi_call, parallel, multi_tool, relevance, "
            "episode) by model and setting: success % with its 95% Wilson interval and the number of "
            "tasks. Overlapping intervals mean the gap may be noise; `toolbench leaderboard` tests it."
        )
        section.blocks.append(categories)
    if found.scores:
        section.blocks.append(
            "Scorer check: predictions replayed from the gold labels must score 100%; corrupted ones must not."
        )
        section.blocks.append(
            Table(
                ["replay", "tasks", "success % (macro)", "parse err %"],
                [
                    [
                        folder.name,
                        str(d.summary.micro.n),
                        percent(d.summary.macro.success),
                        percent(d.summary.macro.parse_error_rate),
                    ]
                    for folder, d in sorted(found.scores, key=lambda pair: pair[0])
                ],
            )
        )
    return section


def by_task_set(evals: list[EvalEntry]) -> dict[tuple[str, str], dict[str, MacroFigures]]:
    """Macro figures per (model, setting without its task set), then per task set: held out and
    in distribution of one setting side by side."""
    cells: dict[tuple[str, str], dict[str, MacroFigures]] = {}
    for e in evals:
        cells.setdefault((e.model, e.base_setting), {})[e.task_set] = e.summary.macro
    return cells


def task_set_table(evals: list[EvalEntry]) -> Table | None:
    """Macro success per model and setting, held out and in distribution side by side; None when
    no run used the in-distribution set."""
    if not any(e.task_set == "indist" for e in evals):
        return None
    cells = by_task_set(evals)

    def rate(macro: MacroFigures | None) -> str:
        return "-" if macro is None else f"{percent(macro.success)} (state F1 {percent(macro.state_f1)})"

    rows = [
        [f"{model} · {setting}", rate(sets.get("test")), rate(sets.get("indist"))]
        for (model, setting), sets in cells.items()
    ]
    return Table(["model · setting", "held out: success %", "in distribution: success %"], rows)


def category_table(evals: list[EvalEntry]) -> Table | None:
    """Category x setting: each eval's success per category with its Wilson interval (from the
    summaries' `per_category`); None when no summary has categories (made before they existed)."""
    categories = sorted({c for e in evals for c in e.summary.per_category})
    if not categories:
        return None
    rows = []
    for category in categories:
        row = [category]
        for e in evals:
            cell = e.summary.per_category.get(category)
            if cell is None:
                row.append("-")
                continue
            low, high = cell.ci95
            row.append(f"{percent(cell.success)} ({percent(low)}–{percent(high)}) n={cell.n}")
        rows.append(row)
    return Table(["category", *(e.name for e in evals)], rows)


def leaderboard_section(found: Found, run_dir: Path) -> Section | None:
    """Every leaderboard in the folder (`toolbench leaderboard`, or the demo's own): its table and
    plot, as leaderboard.md shows them."""
    if not found.leaderboards:
        return None
    from pydantic import ValidationError

    from toolbench.app.leaderboard import Leaderboard, notes, plot, settings_line, table

    section = Section("Leaderboard: overall score, noise test, cost")
    for i, (folder, data) in enumerate(found.leaderboards):
        try:
            board = Leaderboard.model_validate(data["leaderboard"])
        except ValidationError:
            section.blocks.append(
                f"`{_rel(folder / 'leaderboard.json', run_dir)}`: not a leaderboard this version reads."
            )
            continue
        section.blocks.append(
            f"`{_rel(folder / 'leaderboard.md', run_dir)}`. " + settings_line(board).replace("**", "")
        )
        headers, rows = table(board)
        section.blocks.append(Table(headers, rows))
        section.blocks += notes(board)
        png = folder / "leaderboard.png"
        section.blocks.append(
            Figure(
                f"leaderboard{i or ''}",
                png.read_bytes() if png.is_file() else plot(board),
                "Success per category and overall by run; error bars: 95% intervals.",
            )
        )
    return section


def _ordered_specs(found: Found) -> list[tuple[str, SpecSummary]]:
    names = [folder.name for folder, _ in found.specs]
    runs = [
        (name if names.count(name) == 1 else str(folder), data.summary)
        for (folder, data), name in zip(found.specs, names, strict=True)
    ]
    return sorted(runs, key=lambda r: (SPEC_ORDER.get(r[0], 2), r[0]))


def _class_alpha(stat: ClassFigures) -> float | None:
    return stat.alpha if stat.accepted + stat.rejected else None


def target_success(found: Found, evals: list[EvalEntry]) -> Table | None:
    """The tool success of the target(s) the spec runs decode with, held out and in distribution
    per setting: acceptance against a target that fails its tasks measures agreement on wrong
    answers, so α is read beside it. None when no eval run scored that target."""
    targets = {model_label(str(data.run.config.get("target", ""))) for _, data in found.specs}
    cells = by_task_set([e for e in evals if e.model in targets and not e.floor])
    if not cells:
        return None

    def rate(macro: MacroFigures | None) -> str:
        return "-" if macro is None else percent(macro.success)

    rows = [
        [model, setting, rate(sets.get("test")), rate(sets.get("indist"))]
        for (model, setting), sets in sorted(cells.items())
    ]
    return Table(["target", "setting", "held out: success %", "in distribution: success %"], rows)


def spec_section(found: Found, evals: list[EvalEntry]) -> Section:
    section = Section("Speculative decoding: acceptance and speed")
    runs = _ordered_specs(found)
    if not runs:
        section.blocks.append("No speculative-decoding results (`toolbench spec` writes summary.json).")
    else:
        section.blocks.append(
            "S rounds (target calls), D drafted tokens, A accepted, R rounds ended by a rejection. "
            "α = A/(A+R) per-token acceptance; A/D draft acceptance rate (vLLM); τ = 1 + A/S mean "
            "accepted length; τ(α) = (1 − α^(γ+1))/(1 − α); analytic α = mean Σ min(p, q) on the "
            "target's outputs; speedup = speculative tokens/s ÷ target-only tokens/s, same prompts, same run."
        )
        if (table := target_success(found, evals)) is not None:
            section.blocks.append(
                "The target's own tool success, beside which α is read (a draft that agrees with a "
                "target that fails its tasks is fast at being wrong):"
            )
            section.blocks.append(table)
        section.blocks += _spec_blocks(runs)
    for folder, alpha in found.alphas:
        drafts = alpha["drafts"]
        tools = sorted({t for d in drafts.values() for t in d.get("per_tool", {})})
        section.blocks.append(
            f"Analytic α of each draft on {alpha.get('prompts', '?')} held-out prompts "
            f"({alpha.get('answer_tokens', '?')} target-answer tokens; `{folder.name}/alpha.json`)."
        )
        section.blocks.append(
            Table(
                ["draft", "all", *tools],
                [
                    [name, _num(d["alpha"]), *(_num(d.get("per_tool", {}).get(t)) for t in tools)]
                    for name, d in drafts.items()
                ],
            )
        )
    return section


def _spec_blocks(runs: list[tuple[str, SpecSummary]]) -> list[Any]:
    blocks: list[Any] = []
    names = [name for name, _ in runs]
    tools = sorted({t for _, s in runs for t in s.per_tool})
    alpha_tool = [
        (n, [s.per_tool[t].alpha if t in s.per_tool else None for t in tools] + [s.overall.alpha])
        for n, s in runs
    ]
    blocks.append(
        Figure(
            "alpha_by_tool",
            plots.grouped_bars(
                [*tools, "all"],
                alpha_tool,
                title="Per-token acceptance α by tool",
                ylabel="α = A / (A + R)",
                percent=False,
            ),
            "α by tool for each draft (same prompts).",
        )
    )
    classes = list(dict.fromkeys(c for _, s in runs for c in s.overall.by_class))
    alpha_class = [
        (n, [_class_alpha(s.overall.by_class[c]) if c in s.overall.by_class else None for c in classes])
        for n, s in runs
    ]
    blocks.append(
        Figure(
            "alpha_by_class",
            plots.grouped_bars(
                classes,
                alpha_class,
                title="Per-token acceptance α by token class",
                ylabel="α = A / (A + R)",
                percent=False,
            ),
            "α by the class of the output token (JSON syntax, function names, argument keys and values, free text).",
        )
    )
    position = [
        (n, [p.position for p in s.by_position], [p.rate if p.drafted else None for p in s.by_position])
        for n, s in runs
    ]
    blocks.append(
        Figure(
            "acceptance_by_position",
            plots.position_lines(position, title="Acceptance by draft position"),
            "Share of rounds whose first i proposals were all accepted, among rounds that drafted at least i.",
        )
    )
    columns = list(SPEC_COLUMNS)
    if any(s.overall.assisted_tokens_per_s is not None for _, s in runs):
        columns.append(("HF assisted tok/s", lambda f: _num(f.assisted_tokens_per_s, 1)))
    rows = [[name, *(cell(s.overall) for _, cell in columns)] for name, s in runs]
    blocks.append(Table(["draft", *(header for header, _ in columns)], rows))
    delta = "before" in names and "after" in names
    by_tool = []
    for i, tool in enumerate([*tools, "all"]):
        row = [tool, *(_num(values[i]) for _, values in alpha_tool)]
        if delta:
            b, a = (dict(alpha_tool)[k][i] for k in ("before", "after"))
            row.append("-" if a is None or b is None else f"{a - b:+.3f}")
        by_tool.append(row)
    blocks.append(
        Table(["tool", *(f"α {n}" for n in names), *(["Δ after − before"] if delta else [])], by_tool)
    )
    by_class = [[c, *(_class_cell(s.overall.by_class.get(c)) for _, s in runs)] for c in classes]
    blocks.append(Table(["token class", *(f"α {n} (A / A+R)" for n in names)], by_class))
    depth = max(len(p) for _, p, _ in position)
    by_position = [[str(i + 1), *(_position_cell(s.by_position, i) for _, s in runs)] for i in range(depth)]
    blocks.append(Table(["draft position", *(f"{n}: accepted / drafted" for n in names)], by_position))
    return blocks


SPEC_COLUMNS: tuple[tuple[str, Callable[[SpecFigures], str]], ...] = (
    ("prompts", lambda f: str(f.prompts)),
    ("tokens", lambda f: str(f.tokens)),
    ("γ", lambda f: str(f.gamma)),
    ("α", lambda f: _num(f.alpha)),
    ("A/D", lambda f: _num(f.draft_acceptance_rate)),
    ("τ = 1+A/S", lambda f: _num(f.mean_accepted_length, 2)),
    ("τ(α)", lambda f: _num(f.expected_tau, 2)),
    ("analytic α", lambda f: _num(f.analytic_alpha)),
    ("target tok/s", lambda f: _num(f.target_tokens_per_s, 1)),
    ("spec tok/s", lambda f: _num(f.spec_tokens_per_s, 1)),
    ("speedup", lambda f: f"{f.speedup:.2f}×"),
    ("greedy = target", lambda f: f.spec_equal_target or "-"),
)


def _class_cell(stat: ClassFigures | None) -> str:
    if not stat or not stat.accepted + stat.rejected:
        return "-"
    return f"{stat.alpha:.3f} ({stat.accepted}/{stat.accepted + stat.rejected})"


def _position_cell(positions: list[PositionFigures], i: int) -> str:
    if i >= len(positions) or not positions[i].drafted:
        return "-"
    p = positions[i]
    return f"{p.rate:.3f} ({p.accepted}/{p.drafted})"


def loss_section(found: Found, run_dir: Path) -> Section:
    section = Section("Training loss")
    grid_folders = [folder for folder, _ in found.grids]
    logs = [log for log in found.logs if not any(g in log[0].parents for g in grid_folders)]
    if not logs:
        section.blocks.append("No training logs (trained model folders hold train_log.jsonl).")
        return section
    curves, rows = [], []
    # in order of training; a stage in a subfolder (the target's `pretrain/`) came first
    order = sorted(
        logs, key=lambda log: ((log[2] or {}).get("started_at") or "~", -len(log[0].parts), log[0])
    )
    for folder, lines, record in order:
        where = _model_folder(folder, run_dir)
        stage = (record or {}).get("command", "").removeprefix("train ") or "in progress"
        label = f"{where} ({stage})"
        if lines:
            curves.append((label, [x["step"] for x in lines], [x["loss"] for x in lines]))
        counts = (record or {}).get("counts", {})
        last = lines[-1] if lines else {}
        rows.append(
            [
                label,
                str(counts.get("steps", last.get("step", "-"))),
                _num(lines[0]["loss"]) if lines else "-",
                _num(counts.get("final_loss", last.get("loss"))),
                format_seconds(counts.get("seconds", last.get("seconds"))),
                _num(counts.get("tokens_per_second", last.get("tokens_per_second")), 0),
            ]
        )
    section.blocks.append(
        "Pretraining and SFT log next-token cross-entropy; distillation logs its divergence (or "
        "cross-entropy for black-box runs), so compare shapes across kinds, not heights."
    )
    if curves:
        section.blocks.append(
            Figure(
                "loss",
                plots.loss_curves(curves, title="Training loss by model and stage"),
                "Logged loss by step.",
            )
        )
    section.blocks.append(
        Table(["model (stage)", "steps", "first loss", "final loss", "time", "tokens/s"], rows)
    )
    return section


# whole values right (copy probe) at which the report says copying has appeared: whole values, not
# value tokens, since a copy head continues a span it has started from step 1 (half the tokens)
COPYING_AT = 0.25


def copying_step(lines: list[dict]) -> int | None:
    """The first probed step at which COPYING_AT of the whole values are right, or None."""
    return next((x["step"] for x in lines if x.get("copy_value_acc", 0.0) >= COPYING_AT), None)


def copy_section(found: Found, run_dir: Path) -> Section | None:
    """The copy probe's learning curve (distill/training/copy_probe.py): when a target starts to
    copy argument values from the request, which its loss hardly shows."""
    probed = [(folder, [x for x in lines if "copy_token_acc" in x]) for folder, lines, _ in found.logs]
    probed = [(folder, lines) for folder, lines in probed if lines]
    if not probed:
        return None  # optional: only a target's SFT runs the probe
    section = Section("When copying appears")
    section.blocks.append(
        "The copy probe, run while the target trains: on frozen in-distribution tasks (training "
        "templates, new values), teacher-forced, the share of argument-value tokens the model "
        "predicts right, of values with every token right and, where the probe measured it, of "
        "values right and closed (the next token ends the value instead of copying on past it: "
        "what a call needs). "
        f"Copying counts as appeared at the first probed step with {COPYING_AT:.0%} of whole values right."
    )
    curves, rows = [], []
    for folder, lines in probed:
        where = _model_folder(folder, run_dir)
        steps = [x["step"] for x in lines]
        curves.append((f"{where}: value tokens", steps, [x["copy_token_acc"] for x in lines]))
        curves.append((f"{where}: whole values", steps, [x.get("copy_value_acc", 0.0) for x in lines]))
        closed = "copy_span_acc" in lines[-1]
        if closed:
            curves.append((f"{where}: values closed", steps, [x.get("copy_span_acc", 0.0) for x in lines]))
        best = max(lines, key=lambda x: x.get("copy_value_acc", 0.0))
        appeared = copying_step(lines)
        rows.append(
            [
                where,
                f"step {appeared}"
                if appeared is not None
                else f"not yet ({len(lines)} probes, to step {steps[-1]})",
                f"{best.get('copy_value_acc', 0.0):.1%} (step {best['step']})",
                f"{lines[-1]['copy_token_acc']:.1%} / {lines[-1].get('copy_value_acc', 0.0):.1%} / "
                + (f"{lines[-1]['copy_span_acc']:.1%}" if closed else "–"),
            ]
        )
    section.blocks.append(
        Figure(
            "copying",
            plots.step_curves(
                curves,
                title="Copy probe by step",
                ylabel="right (teacher-forced, in distribution)",
                share=True,
                mark_at=COPYING_AT,
            ),
            f"Value tokens, whole values and closed values right by step; the dotted line is {COPYING_AT:.0%}.",
        )
    )
    section.blocks.append(
        Table(
            [
                "model",
                "copying appears",
                "best whole values",
                "last: value tokens / whole values / closed values",
            ],
            rows,
        )
    )
    return section


def grid_section(found: Found, run_dir: Path) -> Section | None:
    if not found.grids:
        return None  # optional: `toolbench distill grid` is not part of every run
    section = Section("Distillation grid")
    for i, (folder, grid) in enumerate(found.grids):
        rows = grid.get("rows", grid if isinstance(grid, list) else [])
        section.blocks.append(
            f"`{_rel(folder, run_dir)}`: analytic α of each setting on held-out prompts; generic draft "
            f"α = {_num(grid.get('generic_alpha'))}."
        )
        if (folder / "grid.png").is_file():
            section.blocks.append(
                Figure(f"grid{i or ''}", (folder / "grid.png").read_bytes(), "α by distillation setting.")
            )
        if rows:
            section.blocks.append(_generic_table(rows))
        if grid.get("comparisons"):
            section.blocks.append(_generic_table(grid["comparisons"]))
    return section


def steps_section(found: Found) -> Section | None:
    if not found.demo:
        return None
    rows = [
        [
            s.get("name", "?"),
            format_seconds(s.get("seconds")),
            "skipped (done earlier)" if s.get("skipped") else "ran",
        ]
        for s in found.demo.get("steps", [])
    ]
    rows.append(["total (every step, first runs)", format_seconds(found.demo.get("total_seconds")), ""])
    blocks: list[str | Table | Figure | Record] = []
    timed = [s for s in found.demo.get("steps", []) if isinstance(s.get("seconds"), int | float)]
    total = sum(s["seconds"] for s in timed)
    if total > 0:  # where the time goes: what to make faster first
        slowest = sorted(timed, key=lambda s: -s["seconds"])[:2]
        blocks.append(
            "Slowest steps: "
            + "; ".join(
                f"{s.get('name', '?')} ({format_seconds(s['seconds'])}, {100 * s['seconds'] / total:.0f}%)"
                for s in slowest
            )
            + "."
        )
    blocks.append(Table(["step", "time", "status"], rows))
    return Section("Demo steps and timings", blocks)


def records_section(found: Found, run_dir: Path) -> Section:
    section = Section("Run records")
    records = sorted(found.records, key=lambda r: (r[1].get("started_at") or "", str(r[0])))
    summary = []
    for folder, record in records:
        label = f"{_rel(folder, run_dir)} — {record.get('command', '?')}"
        revision = record.get("git_revision") or "-"
        summary.append(
            [
                label,
                str(record.get("seed", "-")),
                revision[:12] + ("+dirty" if "dirty" in revision else ""),
                record.get("started_at") or "-",
                format_seconds(_duration(record)),
            ]
        )
        run = [
            ["command", str(record.get("command"))],
            ["seed", str(record.get("seed"))],
            ["git revision", revision],
            ["started", str(record.get("started_at"))],
            ["finished", str(record.get("finished_at"))],
            *([k, v] for k, v in _flatten(record.get("machine", {}), "machine.")),
        ]
        tables = [
            ("run", Table(["field", "value"], run)),
            ("config", Table(["field", "value"], [list(x) for x in _flatten(record.get("config", {}))])),
            ("counts", Table(["field", "value"], [list(x) for x in _flatten(record.get("counts", {}))])),
            (
                "packages",
                Table(["package", "version"], [[k, str(v)] for k, v in record.get("packages", {}).items()]),
            ),
        ]
        raw = orjson.dumps(record, option=orjson.OPT_INDENT_2).decode()
        section.blocks.append(Record(label, [(t, tab) for t, tab in tables if tab.rows], raw))
    if summary:
        section.blocks.insert(0, Table(["result", "seed", "git revision", "started", "took"], summary))
    else:
        section.blocks.append("No run records.")
    return section


# ------------------------------------------------------------------- entry point


def build_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write RUN/report/*.png, RUN/report.md and a self-contained RUN/report.html; return the two
    documents' paths."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such folder")
    found = discover(run_dir)
    if found.empty():
        raise UserError(
            f"{run_dir}: no results found (expected eval/, spec/, models/*/train_log.jsonl, "
            "alpha.json, grid.json or demo.json)"
        )
    evals = eval_entries(found, run_dir)
    sections = [
        headline(found, evals),
        success_section(found, evals),
        *(s for s in (leaderboard_section(found, run_dir),) if s is not None),
        spec_section(found, evals),
        loss_section(found, run_dir),
        *(
            s
            for s in (copy_section(found, run_dir), grid_section(found, run_dir), steps_section(found))
            if s is not None
        ),
        records_section(found, run_dir),
    ]
    title = f"toolbench report: {run_dir.resolve().name}"
    meta = f"Run folder `{run_dir}`, report written {now()}. The run records at the end say how each result was made."
    figures = [b for s in sections for b in s.blocks if isinstance(b, Figure)]
    folder = run_dir / "report"
    folder.mkdir(exist_ok=True)
    for figure in figures:
        with atomic_open(folder / f"{figure.name}.png") as handle:
            handle.write(figure.png)
    for stale in set(folder.glob("*.png")) - {folder / f"{f.name}.png" for f in figures}:
        stale.unlink()  # a section that is gone must not leave its old plot behind
    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    with atomic_open(md_path, "w") as handle:
        handle.write(render_markdown(title, meta, sections))
    with atomic_open(html_path, "w") as handle:
        handle.write(render_html(title, meta, sections))
    return md_path, html_path
