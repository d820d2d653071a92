"""`toolbench leaderboard RUN_DIR...`: eval runs side by side, ranked, with what is noise said.

Each run folder of `toolbench eval` holds `summary.json` (its run record: model, task selection,
prompt settings; its cost) and `scores.jsonl` (one verdict per task). The leaderboard reads both
and puts the runs in one table, as Markdown, CSV and a self-contained HTML page with a plot.

- **overall score**: the unweighted mean over categories of the category success rates (BFCL's
  way), so a category with many tasks does not drown the others: with `single` at 2/4 and
  `parallel` at 3/3 the overall score is (0.5 + 1.0) / 2 = 0.75, not 5/7.
- **within noise**: each run is compared with the leader (the highest overall score) by a paired
  bootstrap over the shared tasks: the tasks are resampled with replacement within each category
  (so every replicate keeps the categories and their sizes) and the overall-score difference is
  recomputed on the same resampled tasks for both runs. The two-sided p-value is twice the share
  of replicates on the far side of zero; a run whose difference has p >= 0.05 is within noise of
  the leader. Resampling a category's tasks is drawing the counts of (leader right, other wrong),
  (leader wrong, other right) and ties from a multinomial, which is what is done: exact, and fast
  for any number of tasks. Seeded, so the same folders give the same table.

  Why not McNemar: it tests the pooled success rate, while the ranking is by the mean of the
  category rates; the bootstrap tests the very number the table ranks by and keeps the pairing.
- **refusal**: runs are compared only when they scored the same tasks (same task ids, and the same
  task contents when both records carry `tasks_sha256`) with the same prompt settings (mode, k
  demos, retriever, system prompt, call format). Otherwise the command stops with one line naming
  the two runs and what differs, unless `allow_mixed`: then the differing columns are shown, the
  table is marked as mixed, and the paired test uses the tasks the two runs share.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from toolbench.app.pages import Figure, Section, Table, is_floor, model_label
from toolbench.app.pages import render_html as render_page
from toolbench.core.score import wilson_interval
from toolbench.foundation.errors import UserError
from toolbench.foundation.io import atomic_open, describe_validation_error
from toolbench.foundation.records import RunRecord
from toolbench.foundation.run_folder import write_run_folder
from toolbench.foundation.summaries import CostSummary
from toolbench.foundation.tables import markdown_table
from toolbench.pipelines.results import COST_HEADERS, cost_cells, percent

OUTPUT_NAMES = (
    "leaderboard.md",
    "leaderboard.csv",
    "leaderboard.html",
    "leaderboard.png",
    "leaderboard.json",
)
SIGNIFICANCE = 0.05
SHORT_LABELS = {
    "mode": "{}",
    "k_demos": "k={}",
    "retriever": "{}",
    "system_prompt": "sys {}",
    "call_format": "format {}",
}
SETTING_LABELS = {
    "mode": "mode",
    "k_demos": "k demos",
    "retriever": "retriever",
    "system_prompt": "system prompt",
    "call_format": "call format",
}


# ------------------------------------------------------------------- inputs


class PromptSettings(BaseModel):
    """The prompt settings two runs must share to be compared like for like."""

    model_config = ConfigDict(frozen=True)

    mode: str
    k_demos: int
    retriever: str = Field(description="`-` when k_demos is 0: no demos, so no retriever in play.")
    system_prompt: str = Field(description="none, default, or `custom <sha256[:8]>` of the text.")
    call_format: str

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PromptSettings:
        from toolbench.core.prompts import DEFAULT_SYSTEM_PROMPT

        text = config.get("system_prompt")
        if not text:
            prompt = "none"
        elif text == DEFAULT_SYSTEM_PROMPT:
            prompt = "default"
        else:
            prompt = "custom " + hashlib.sha256(text.encode()).hexdigest()[:8]
        k = int(config.get("k_demos", 0))
        return cls(
            mode=str(config.get("mode", "completion")),
            k_demos=k,
            retriever=str(config.get("retriever", "bm25")) if k else "-",
            system_prompt=prompt,
            call_format=str(config.get("call_format", "auto")),
        )


class TaskOutcome(BaseModel):
    id: str
    category: str
    success: bool


class RunResult(BaseModel):
    """One eval run folder, as the leaderboard reads it."""

    folder: str
    model: str
    settings: PromptSettings
    tasks_sha256: str | None = Field(None, description="From the run record (runs made before it: None).")
    outcomes: list[TaskOutcome]
    cost: CostSummary | None = None


def _read_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as error:
        raise UserError(f"{path}: not valid JSON ({error})") from None


def load_run(folder: Path) -> RunResult:
    """An eval run folder's results, or a one-line error saying why the folder is not one."""
    summary_path, scores_path = folder / "summary.json", folder / "scores.jsonl"
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    if not summary_path.is_file():
        raise UserError(f"{folder}: no summary.json (give folders written by `toolbench eval --out`)")
    data = _read_json(summary_path)
    run = data.get("run") if isinstance(data, dict) else None
    if not isinstance(run, dict) or run.get("command") != "eval":
        command = run.get("command") if isinstance(run, dict) else None
        raise UserError(
            f"{summary_path}: written by {f'`toolbench {command}`' if command else 'an unknown command'}, "
            "not `toolbench eval`; the leaderboard compares eval runs (it needs their model and prompt settings)"
        )
    if not scores_path.is_file():
        raise UserError(
            f"{folder}: no scores.jsonl beside summary.json; the paired test needs per-task scores"
        )
    outcomes, seen = [], set()
    for number, raw in enumerate(scores_path.read_bytes().splitlines(), 1):
        if not raw.strip():
            continue
        try:
            outcome = TaskOutcome.model_validate(orjson.loads(raw))
        except (orjson.JSONDecodeError, ValidationError) as error:
            detail = describe_validation_error(error) if isinstance(error, ValidationError) else str(error)
            raise UserError(f"{scores_path}: line {number}: {detail}") from None
        if outcome.id in seen:
            raise UserError(f"{scores_path}: line {number} repeats task id '{outcome.id}'")
        seen.add(outcome.id)
        outcomes.append(outcome)
    if not outcomes:
        raise UserError(f"{scores_path}: no scored tasks")
    config = run.get("config") or {}
    cost = data.get("cost")
    return RunResult(
        folder=str(folder),
        model=str(config.get("model", "?")),
        settings=PromptSettings.from_config(config),
        tasks_sha256=(run.get("counts") or {}).get("tasks_sha256"),
        outcomes=outcomes,
        cost=CostSummary.model_validate(cost) if isinstance(cost, dict) else None,
    )


# ------------------------------------------------------------------- comparability


def differences(a: RunResult, b: RunResult) -> list[tuple[str, str]]:
    """What keeps two runs from a like-for-like comparison: (column, description) pairs, the task
    set first. Empty when they scored the same tasks with the same prompt settings."""
    found = []
    ids_a, ids_b = {o.id for o in a.outcomes}, {o.id for o in b.outcomes}
    if ids_a != ids_b:
        found.append(
            ("task set", f"task set ({len(ids_a)} vs {len(ids_b)} tasks, {len(ids_a & ids_b)} shared)")
        )
    elif a.tasks_sha256 and b.tasks_sha256 and a.tasks_sha256 != b.tasks_sha256:
        found.append(
            (
                "task set",
                f"task contents (same ids, tasks_sha256 {a.tasks_sha256[:12]} vs {b.tasks_sha256[:12]})",
            )
        )
    mine, theirs = a.settings.model_dump(), b.settings.model_dump()
    for key, label in SETTING_LABELS.items():
        if mine[key] != theirs[key]:
            found.append((key, f"{label} ({mine[key]} vs {theirs[key]})"))
    return found


def check_comparable(runs: Sequence[RunResult], allow_mixed: bool = False) -> list[str]:
    """The columns in which the runs differ (task set, settings), in a fixed order. Without
    `allow_mixed`, the first run that differs from the first one stops the command in one line."""
    mixed: list[str] = []
    for other in runs[1:]:
        found = differences(runs[0], other)
        if found and not allow_mixed:
            raise UserError(
                f"{runs[0].folder} and {other.folder} differ in "
                + ", ".join(text for _, text in found)
                + "; pass --allow-mixed to compare them anyway"
            )
        mixed += [column for column, _ in found if column not in mixed]
    order = ["task set", *SETTING_LABELS]
    return sorted(mixed, key=order.index)


# ------------------------------------------------------------------- statistics


def category_counts(outcomes: Sequence[TaskOutcome]) -> dict[str, tuple[int, int]]:
    """(successes, tasks) per category, categories sorted."""
    counts: dict[str, list[int]] = {}
    for outcome in outcomes:
        entry = counts.setdefault(outcome.category, [0, 0])
        entry[0] += outcome.success
        entry[1] += 1
    return {category: (wins, n) for category, (wins, n) in sorted(counts.items())}


def overall_score(outcomes: Sequence[TaskOutcome]) -> float:
    """The unweighted mean over categories of the category success rates (BFCL's overall)."""
    counts = category_counts(outcomes)
    if not counts:
        return 0.0
    return sum(wins / n for wins, n in counts.values()) / len(counts)


def _quantiles(values: Any, low: float = 0.025, high: float = 0.975) -> tuple[float, float]:
    import numpy as np

    lo, hi = np.quantile(values, [low, high])
    return (float(lo), float(hi))


def overall_interval(
    outcomes: Sequence[TaskOutcome], seed: int = 0, resamples: int = 10_000
) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval of the overall score, tasks resampled within categories."""
    import numpy as np

    rng = np.random.default_rng(seed)
    total = np.zeros(resamples)
    counts = category_counts(outcomes)
    for wins, n in counts.values():
        total += rng.binomial(n, wins / n, size=resamples) / n
    return _quantiles(total / max(1, len(counts)))


class PairedTest(BaseModel):
    """The leader against one run, on the tasks both scored."""

    shared_tasks: int
    # the rest is None when the runs share no task (mixed runs): there is nothing to test
    delta: float | None = Field(description="Leader's overall score minus this run's, on the shared tasks.")
    ci95: tuple[float, float] | None = Field(description="Percentile-bootstrap 95% interval of delta.")
    p_value: float | None = Field(description="Two-sided: 2 x the share of replicates on the far side of 0.")
    within_noise: bool | None = Field(description="p >= 0.05: the difference is not significant at 95%.")


def paired_bootstrap(
    leader: Sequence[TaskOutcome], other: Sequence[TaskOutcome], seed: int = 0, resamples: int = 10_000
) -> PairedTest:
    """The paired, category-stratified bootstrap of the overall-score difference (module doc).

    Per category, each shared task is +1 (leader right, other wrong), -1 (the reverse) or 0 (both
    the same); a replicate resamples the category's tasks with replacement, i.e. draws the three
    counts from a multinomial with the observed shares, and the replicate's difference is the mean
    over categories of (plus - minus) / n."""
    import numpy as np

    theirs = {o.id: o.success for o in other}
    pairs: dict[str, list[int]] = {}  # category -> [leader alone right, other alone right, same]
    for mine in leader:
        if mine.id in theirs:
            side = 2 if mine.success == theirs[mine.id] else 0 if mine.success else 1
            pairs.setdefault(mine.category, [0, 0, 0])[side] += 1
    shared = sum(sum(c) for c in pairs.values())
    if not shared:  # mixed runs with disjoint task sets: nothing to pair
        return PairedTest(shared_tasks=0, delta=None, ci95=None, p_value=None, within_noise=None)
    rng = np.random.default_rng(seed)
    total = np.zeros(resamples)
    delta = 0.0
    for _, (plus, minus, ties) in sorted(pairs.items()):
        n = plus + minus + ties
        delta += (plus - minus) / n
        draws = rng.multinomial(n, [plus / n, minus / n, ties / n], size=resamples)
        total += (draws[:, 0] - draws[:, 1]) / n
    total /= len(pairs)
    delta /= len(pairs)
    eps = 1e-9  # a replicate that ties is 0 up to float rounding of the category means
    p_value = min(1.0, 2 * min(float(np.mean(total <= eps)), float(np.mean(total >= -eps))))
    return PairedTest(
        shared_tasks=shared,
        delta=delta,
        ci95=_quantiles(total),
        p_value=p_value,
        within_noise=p_value >= SIGNIFICANCE,
    )


# ------------------------------------------------------------------- the table


class CategoryResult(BaseModel):
    n: int
    successes: int
    success: float
    ci95: tuple[float, float] = Field(description="Wilson score interval, 95%.")


class LeaderboardRow(BaseModel):
    rank: int = Field(description="1 = best overall score; equal scores share a rank.")
    label: str
    model: str
    folder: str
    settings: PromptSettings
    n_tasks: int
    overall: float
    overall_ci95: tuple[float, float]
    categories: dict[str, CategoryResult]
    vs_leader: PairedTest | None = Field(None, description="None for the leader itself.")
    cost: CostSummary | None = None


class Leaderboard(BaseModel):
    categories: list[str]
    rows: list[LeaderboardRow]
    mixed: list[str] = Field(
        default_factory=list, description="What differs between the runs (allow_mixed); empty: like for like."
    )
    seed: int
    resamples: int


def _labels(runs: Sequence[RunResult], mixed: Sequence[str]) -> list[str]:
    """Readable names: the model's; with the differing settings when two share a model; with the
    folder when that still does not tell them apart."""

    labels = [model_label(run.model) for run in runs]
    if len(set(labels)) < len(labels):
        keys = [k for k in mixed if k in SETTING_LABELS]
        labels = [
            " · ".join(
                [
                    label,
                    *(
                        SHORT_LABELS[k].format(getattr(run.settings, k))
                        for k in keys
                        if getattr(run.settings, k) != "-"  # no retriever (k = 0): nothing to say
                    ),
                ]
            )
            for label, run in zip(labels, runs, strict=True)
        ]
    if len(set(labels)) < len(labels):
        labels = [f"{label} ({run.folder})" for label, run in zip(labels, runs, strict=True)]
    return labels


def build_leaderboard(
    runs: Sequence[RunResult], allow_mixed: bool = False, seed: int = 0, resamples: int = 10_000
) -> Leaderboard:
    """Rank the runs by overall score and test each against the leader (module doc)."""
    if len(runs) < 2:
        raise UserError("a leaderboard needs at least two run folders")
    if seed < 0 or resamples < 1:
        raise UserError(f"the bootstrap needs seed >= 0 and resamples >= 1; got {seed} and {resamples}")
    folders = [str(Path(run.folder).resolve()) for run in runs]
    if len(set(folders)) < len(folders):
        raise UserError("the same run folder is given twice")
    mixed = check_comparable(runs, allow_mixed)
    labels = _labels(runs, mixed)

    # best first; on a tie the untrained floor never leads, then by name
    scored = sorted(
        zip(runs, labels, strict=True),
        key=lambda pair: (-overall_score(pair[0].outcomes), is_floor(pair[0].model), pair[1]),
    )
    leader = scored[0][0]
    categories = sorted({o.category for run in runs for o in run.outcomes})
    rows = []
    for i, (run, label) in enumerate(scored):
        overall = overall_score(run.outcomes)
        rank = rows[-1].rank if rows and rows[-1].overall == overall else i + 1
        cells = {}
        for category, (wins, n) in category_counts(run.outcomes).items():
            cells[category] = CategoryResult(
                n=n, successes=wins, success=wins / n, ci95=wilson_interval(wins, n)
            )
        rows.append(
            LeaderboardRow(
                rank=rank,
                label=label,
                model=run.model,
                folder=run.folder,
                settings=run.settings,
                n_tasks=len(run.outcomes),
                overall=overall,
                overall_ci95=overall_interval(run.outcomes, seed, resamples),
                categories=cells,
                vs_leader=None
                if i == 0
                else paired_bootstrap(leader.outcomes, run.outcomes, seed, resamples),
                cost=run.cost,
            )
        )
    return Leaderboard(categories=categories, rows=rows, mixed=mixed, seed=seed, resamples=resamples)


# ------------------------------------------------------------------- rendering


def _interval(ci: tuple[float, float]) -> str:
    return f"{percent(ci[0])}–{percent(ci[1])}"


def _noise(row: LeaderboardRow) -> str:
    if row.vs_leader is None:
        return "leader"
    if row.vs_leader.within_noise is None:
        return "n/a (no shared task)"
    return "yes" if row.vs_leader.within_noise else "no"


def _delta(row: LeaderboardRow, resamples: int) -> str:
    if row.vs_leader is None:
        return "-"
    test = row.vs_leader
    if test.delta is None or test.ci95 is None or test.p_value is None:
        return "n/a (no shared task)"
    # p is a share of resamples: 0 means below the bootstrap's resolution, not zero
    p = f"p<{1 / resamples:.0g}" if test.p_value == 0 else f"p={test.p_value:.3f}"
    return f"{100 * test.delta:+.1f} ({100 * test.ci95[0]:+.1f} to {100 * test.ci95[1]:+.1f}), {p}"


def table(board: Leaderboard) -> tuple[list[str], list[list[str]]]:
    """The leaderboard as headers and rows of text: what the Markdown, the HTML, the report and the
    console show (the CSV has the same figures unrounded)."""
    setting_keys = [k for k in board.mixed if k in SETTING_LABELS]
    headers = [
        "rank",
        "model",
        *(SETTING_LABELS[k] for k in setting_keys),
        "overall %",
        "overall 95% CI",
        "Δ to leader, points (95% CI), p",
        "within noise",
        *(f"{c} % (95% CI)" for c in board.categories),
        "tasks",
        *COST_HEADERS,
    ]
    rows = []
    for row in board.rows:
        cells = [
            f"{percent(row.categories[c].success)} ({_interval(row.categories[c].ci95)}) n={row.categories[c].n}"
            if c in row.categories
            else "-"
            for c in board.categories
        ]
        rows.append(
            [
                str(row.rank),
                row.label,
                *(str(getattr(row.settings, k)) for k in setting_keys),
                percent(row.overall),
                _interval(row.overall_ci95),
                _delta(row, board.resamples),
                _noise(row),
                *cells,
                str(row.n_tasks),
                *cost_cells(row.cost),
            ]
        )
    return headers, rows


def settings_line(board: Leaderboard) -> str:
    """What every run shares (or the warning that they do not)."""
    first = board.rows[0].settings
    shared = [f"{SETTING_LABELS[k]} {getattr(first, k)}" for k in SETTING_LABELS if k not in board.mixed]
    if board.mixed:
        return (
            "**Mixed runs** (--allow-mixed): they differ in "
            + ", ".join(SETTING_LABELS.get(column, column) for column in board.mixed)
            + ", so this is not a like-for-like comparison; the paired test uses the tasks each run "
            "shares with the leader. Shared: " + (", ".join(shared) or "nothing") + "."
        )
    return f"All runs scored the same {board.rows[0].n_tasks} tasks with: " + ", ".join(shared) + "."


def notes(board: Leaderboard) -> list[str]:
    return [
        "Overall = the unweighted mean over categories of the category success rates (BFCL's "
        "overall), its 95% CI a bootstrap over tasks within categories. Category cells: success % "
        "with the Wilson 95% interval.",
        "Within noise = the difference from the leader is not significant at 95% (p >= 0.05) by a "
        f"paired bootstrap over the shared tasks, stratified by category ({board.resamples:,} "
        f"resamples, seed {board.seed}); Δ is the leader's overall score minus the row's, in points.",
        "Cost: backend requests (cached = served from the answer cache), prompt and completion "
        "tokens as the backend reported them (n/a: none reported), latency per request asked (cached "
        "answers are not timed).",
    ]


def render_markdown(board: Leaderboard) -> str:
    headers, rows = table(board)
    lines = ["# Leaderboard", "", settings_line(board), "", markdown_table(headers, rows)]
    lines += ["", *(f"- {note}" for note in notes(board)), "", "![success per category](leaderboard.png)"]
    return "\n".join(lines) + "\n"


def render_csv(board: Leaderboard) -> str:
    """One row per run, figures unrounded (fractions, not percent) for spreadsheets and scripts."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = [
        "rank",
        "label",
        "model",
        "folder",
        *SETTING_LABELS,
        "tasks",
        "overall",
        "overall_ci_low",
        "overall_ci_high",
        "delta_to_leader",
        "delta_ci_low",
        "delta_ci_high",
        "p_value",
        "within_noise",
        "shared_tasks",
    ]
    for category in board.categories:
        header += [f"{category}_success", f"{category}_ci_low", f"{category}_ci_high", f"{category}_n"]
    header += list(CostSummary.model_fields)
    header.append("mixed")
    writer.writerow(header)
    for row in board.rows:
        test = row.vs_leader
        line: list[Any] = [
            row.rank,
            row.label,
            row.model,
            row.folder,
            *(getattr(row.settings, k) for k in SETTING_LABELS),
            row.n_tasks,
            row.overall,
            *row.overall_ci95,
        ]
        if test is None:  # the leader
            line += [""] * 6
        else:
            low, high = test.ci95 or ("", "")
            values = (test.delta, low, high, test.p_value, test.within_noise, test.shared_tasks)
            line += ["" if value is None else value for value in values]
        for category in board.categories:
            cell = row.categories.get(category)
            line += [cell.success, *cell.ci95, cell.n] if cell else [""] * 4
        cost = row.cost.model_dump() if row.cost else {}
        line += ["" if cost.get(k) is None else cost[k] for k in CostSummary.model_fields]
        line.append(";".join(board.mixed))
        writer.writerow(line)
    return buffer.getvalue()


def plot(board: Leaderboard) -> bytes:
    """Success per category (and overall) per run, with the 95% intervals as error bars."""
    from toolbench.app import report_plots

    groups = [*board.categories, "overall"]
    series = []
    for row in board.rows:
        values: list[float | None] = [
            row.categories[c].success if c in row.categories else None for c in board.categories
        ]
        intervals: list[tuple[float, float] | None] = [
            row.categories[c].ci95 if c in row.categories else None for c in board.categories
        ]
        series.append((row.label, [*values, row.overall], [*intervals, row.overall_ci95]))
    return report_plots.interval_bars(
        groups,
        series,
        title="Success per category (error bars: 95% intervals)",
        ylabel="success (% of tasks)",
        muted=frozenset(row.label for row in board.rows if is_floor(row.model)),
        separate_last=True,
    )


def render_html(board: Leaderboard, png: bytes) -> str:
    """A self-contained page (the plot inlined, inline CSS, no script), as `toolbench report`'s."""

    headers, rows = table(board)
    section = Section(
        "Runs side by side",
        [settings_line(board).replace("**", ""), Table(headers, rows), *notes(board)],
    )
    figure = Section(
        "Success per category",
        [Figure("leaderboard", png, "Success per category and overall, 95% intervals.")],
    )
    meta = f"{len(board.rows)} eval runs; seed {board.seed}."
    return render_page("toolbench leaderboard", meta, [section, figure])


class LeaderboardRun(BaseModel):
    """leaderboard.json: the table's rows with the run record."""

    leaderboard: Leaderboard
    run: RunRecord


def write_leaderboard(board: Leaderboard, out: Path, record: RunRecord) -> list[Path]:
    """leaderboard.png, .csv and .html, then the run folder's leaderboard.md and .json (the rows
    with the run record), each written atomically into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    png = plot(board)
    paths = [out / name for name in OUTPUT_NAMES]
    with atomic_open(out / "leaderboard.png") as handle:
        handle.write(png)
    for name, text in (("leaderboard.csv", render_csv(board)), ("leaderboard.html", render_html(board, png))):
        with atomic_open(out / name, "w") as handle:
            handle.write(text)
    write_run_folder(
        out, LeaderboardRun(leaderboard=board, run=record), render_markdown(board), name="leaderboard"
    )
    return paths


def make_leaderboard(
    run_dirs: Sequence[Path], out: Path, allow_mixed: bool = False, seed: int = 0, resamples: int = 10_000
) -> Leaderboard:
    """Read the run folders, build the table, write it with its run record: the command's work,
    also called by `toolbench demo` on its own eval runs."""
    from toolbench.foundation.runinfo import finish_record, start_record

    record = start_record(
        "leaderboard",
        {
            "runs": [str(d) for d in run_dirs],
            "out": str(out),
            "allow_mixed": allow_mixed,
            "resamples": resamples,
        },
        seed=seed,
    )
    board = build_leaderboard([load_run(Path(d)) for d in run_dirs], allow_mixed, seed, resamples)
    finish_record(record, runs=len(board.rows), mixed=board.mixed)
    write_leaderboard(board, out, record)
    return board
