"""Scoring files: predictions JSONL in, per-sample scores + summary + Markdown table out; and the
rows of an eval summary's tables (summary.md, the console, the leaderboard's cost columns).

A predictions line is `{"id": TASK_ID, "text": "..."}` (parsed with the chosen call format) or
`{"id": TASK_ID, "calls": [{"name": ..., "arguments": {...}}]}` (already structured, e.g. from
OpenAI `tool_calls`).
"""

from __future__ import annotations

from pathlib import Path

from toolbench.core.registry import task_formatter
from toolbench.core.score import Scorer, summarize
from toolbench.foundation.errors import CallParseError, UserError
from toolbench.foundation.io import read_records, write_jsonl
from toolbench.foundation.records import Prediction, Program, Score, Task
from toolbench.foundation.run_folder import write_run_folder
from toolbench.foundation.runinfo import finish_record, start_record
from toolbench.foundation.summaries import CostSummary, EvalRun, EvalSummary
from toolbench.foundation.tables import markdown_table


def load_predictions(
    path: str | Path, task_ids: set[str] | None = None, ignore_extra: bool = False
) -> dict[str, Prediction]:
    """Predictions by task id. A prediction for a task that is not in the task file is an error
    (misaligned files are the silent bug of benchmarks) unless `ignore_extra` (scoring one tool's
    tasks out of a predictions file for all of them)."""
    predictions: dict[str, Prediction] = {}
    for number, prediction in enumerate(read_records(path, Prediction), 1):
        if prediction.id in predictions:
            raise UserError(f"{path}: prediction {number} repeats task id '{prediction.id}'")
        if task_ids is not None and prediction.id not in task_ids:
            if ignore_extra:
                continue
            raise UserError(
                f"{path}: prediction {number} is for task '{prediction.id}', which is not in the task file "
                "(pass --ignore-extra to score a subset)"
            )
        if prediction.text is None and prediction.calls is None:
            raise UserError(f"{path}: prediction {number} ('{prediction.id}') has neither 'text' nor 'calls'")
        predictions[prediction.id] = prediction
    return predictions


def parse_prediction(task: Task, prediction: Prediction | None, fmt: str) -> Program | CallParseError | None:
    if prediction is None:
        return None
    if prediction.calls is not None:
        return Program(prediction.calls)
    try:
        return task_formatter(task, fmt).parse(prediction.text or "")
    except CallParseError as error:
        return error


def score_text(task: Task, text: str, fmt: str = "auto", scorer: Scorer | None = None) -> Score:
    """Score one raw model answer against one task (parse errors are scored, not raised)."""
    return (scorer or Scorer()).score(task, parse_prediction(task, Prediction(id=task.id, text=text), fmt))


def score_all(
    tasks: list[Task], predictions: dict[str, Prediction], fmt: str = "python", scorer: Scorer | None = None
) -> list[Score]:
    scorer = scorer or Scorer()
    return [scorer.score(task, parse_prediction(task, predictions.get(task.id), fmt)) for task in tasks]


METRIC_COLUMNS = (
    ("success", "success"),
    ("state_f1", "state F1"),
    ("ast_match", "AST match"),
    ("parse_error_rate", "parse err"),
    ("no_call_rate", "no call"),
    ("tool_error_rate", "tool err"),
    ("crash_rate", "crash"),
)
CELL_HEADERS = ("tool / category", "n", "success %", "95% CI (Wilson)", "failures")
COST_HEADERS = (
    "requests",
    "cached",
    "prompt tokens",
    "completion tokens",
    "latency p50 ms",
    "latency p95 ms",
)


def metric_columns(summary: EvalSummary) -> tuple[tuple[str, str], ...]:
    """The table's metrics; mean episode reward too when some tool was scored by episodes."""
    if summary.macro.reward is None:
        return METRIC_COLUMNS
    return (*METRIC_COLUMNS, ("reward", "reward"))


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def summary_header(summary: EvalSummary) -> list[str]:
    """The per-tool table's header: tool, n, then each metric in percent."""
    return ["tool", "n"] + [f"{label} %" for _, label in metric_columns(summary)]


def summary_rows(summary: EvalSummary) -> list[list[str]]:
    """One row per tool, then the macro average (its n: every task)."""
    columns = metric_columns(summary)
    rows = []
    for tool, agg in summary.per_tool.items():
        rows.append([tool, str(agg.n)] + [percent(getattr(agg, key)) for key, _ in columns])
    rows.append(
        ["macro", str(summary.micro.n)] + [percent(getattr(summary.macro, key)) for key, _ in columns]
    )
    return rows


def cell_rows(summary: EvalSummary) -> list[list[str]]:
    """Success per category, then per tool x category, each with its interval and the failures
    by diagnosis (`toolbench.core.score.diagnose`), most common first."""
    rows = []
    groups = [(f"all / {c}", v) for c, v in summary.per_category.items()]
    groups += list(summary.cells.items())
    for name, cell in groups:
        low, high = cell.ci95
        reasons = sorted(cell.diagnoses.items(), key=lambda item: (-item[1], item[0]))
        rows.append(
            [
                name,
                str(cell.n),
                percent(cell.success),
                f"{percent(low)}–{percent(high)}",
                ", ".join(f"{k} {v}" for k, v in reasons) or "-",
            ]
        )
    return rows


def summary_markdown(summary: EvalSummary) -> str:
    """summary.md's success tables: per tool, then per category and tool x category."""
    text = markdown_table(summary_header(summary), summary_rows(summary)) + "\n"
    if summary.cells:
        text += "\n" + markdown_table(CELL_HEADERS, cell_rows(summary)) + "\n"
    return text


def cost_cells(cost: CostSummary | None) -> list[str]:
    """The cost figures as table cells (COST_HEADERS' order): "n/a" where the backend reported
    nothing (no `usage` from the endpoint; no latency when every answer came from the cache), and
    the share of answers behind a token sum when only some reported usage."""
    if cost is None:
        return ["n/a"] * len(COST_HEADERS)

    def tokens(value: int | None) -> str:
        if value is None:
            return "n/a"
        partial = cost.usage_reported < cost.requests
        return f"{value:,}" + (f" ({cost.usage_reported} of {cost.requests} reported)" if partial else "")

    def ms(value: float | None) -> str:  # 3 significant digits below 100 ms: a replay takes 0.0123
        if value is None:
            return "n/a"
        return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"

    return [
        str(cost.requests),
        str(cost.cached),
        tokens(cost.prompt_tokens),
        tokens(cost.completion_tokens),
        ms(cost.latency_p50_ms),
        ms(cost.latency_p95_ms),
    ]


def cost_markdown(cost: CostSummary) -> str:
    """summary.md's cost table: one row, the note on what is counted."""
    table = markdown_table(COST_HEADERS, [cost_cells(cost)], align="right")
    note = (
        f"Cost: {cost.requests} backend requests ({cost.cached} served from the answer cache). Tokens "
        "as the backend reported them (cached answers included); latency per request over the "
        f"{cost.timed} requests asked in this run (cached ones are not timed)."
    )
    return f"{table}\n\n{note}\n"


def run_markdown(run: EvalRun) -> str:
    """summary.md of an eval (success tables, then the cost) or a score run (no cost)."""
    text = summary_markdown(run.summary)
    return text if run.cost is None else text + "\n" + cost_markdown(run.cost)


def score_files(
    tasks_path: Path, predictions_path: Path, fmt: str, out: Path | None, ignore_extra: bool = False
) -> tuple[list[Score], EvalSummary]:
    from toolbench.core.task_files import load_tasks

    record = start_record(
        "score", {"tasks": str(tasks_path), "predictions": str(predictions_path), "format": fmt}
    )
    tasks = [numbered.task for numbered in load_tasks(tasks_path)]
    predictions = load_predictions(predictions_path, {task.id for task in tasks}, ignore_extra)
    scores = score_all(tasks, predictions, fmt)
    summary = summarize(scores)
    if out is not None:
        write_jsonl(out / "scores.jsonl", scores)
        run = EvalRun(
            summary=summary, run=finish_record(record, tasks=len(tasks), predictions=len(predictions))
        )
        write_run_folder(out, run, run_markdown(run))
    return scores, summary
