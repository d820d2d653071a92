"""The `toolbench` command. Each step reads and writes files, so steps chain, resume, and run on
separate machines. User mistakes print one line and exit 2; they never show a traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from toolbench.errors import UserError

app = typer.Typer(
    help="Tool-use benchmark and function-calling data generator.\n\n"
    "Typical flow: `tools list` → `generate` training data → `tasks verify` the frozen test sets → "
    "`score` a model's predictions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
tools_app = typer.Typer(help="Inspect the simulated tools and their function schemas.", no_args_is_help=True)
tasks_app = typer.Typer(help="Build, verify and replay frozen test-task files.", no_args_is_help=True)
app.add_typer(tools_app, name="tools")
app.add_typer(tasks_app, name="tasks")

console = Console()
err = Console(stderr=True)


def main() -> None:
    try:
        app()
    except UserError as error:
        err.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)


# ------------------------------------------------------------------- tools


@tools_app.command("list")
def tools_list() -> None:
    """List the registered tools: built-in ones and any registered through the `toolbench.tools` entry point."""
    from toolbench.registry import get_tool, tool_names

    table = Table("tool", "functions", "test tasks", "description")
    for name in tool_names():
        sim = get_tool(name)
        tasks_file = sim.tasks_file()
        n_tasks = sum(1 for line in tasks_file.open() if line.strip()) if tasks_file.exists() else 0
        table.add_row(name, str(len(sim.specs)), str(n_tasks), sim.description)
    console.print(table)


@tools_app.command("show")
def tools_show(
    name: Annotated[str, typer.Argument(help="Tool name, as in `toolbench tools list`.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the OpenAI `tools` array instead of a summary.")
    ] = False,
) -> None:
    """Show a tool's functions with the exact JSON schemas a model sees (and the executor enforces)."""
    from toolbench.registry import get_tool

    sim = get_tool(name)
    if as_json:
        print(json.dumps([spec.openai_tool() for spec in sim.specs.values()], indent=2))
        return
    table = Table(
        "function", "arguments", "description", title=f"{sim.name}: {sim.description}", show_lines=True
    )
    for spec in sim.specs.values():
        required = set(spec.parameters.get("required", []))
        args = "\n".join(
            f"{k}{'' if k in required else '?'}: {_describe_schema(v)}"
            for k, v in spec.parameters.get("properties", {}).items()
        )
        table.add_row(spec.name, args, spec.description)
    console.print(table)
    console.print(
        f"Full JSON schemas (OpenAI tools format): toolbench tools show {name} --json", highlight=False
    )


def _describe_schema(schema: dict) -> str:
    """A compact reading of a parameter schema: type, enum, bounds."""
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    text = schema.get("type", "any")
    if text == "array" and "items" in schema:
        text = f"list[{_describe_schema(schema['items'])}]"
    bounds = [
        f"{op} {schema[key]}"
        for key, op in (("minimum", "≥"), ("maximum", "≤"), ("multipleOf", "step"))
        if key in schema
    ]
    return text + (f" ({', '.join(bounds)})" if bounds else "")


# ---------------------------------------------------------------- generate


@app.command()
def generate(
    out: Annotated[
        Path,
        typer.Option(help="Output JSONL (canonical samples; `datasets.load_dataset('json', ...)` reads it)."),
    ],
    tool: Annotated[str, typer.Option(help="Tool name, comma-separated names, or `all`.")] = "all",
    n: Annotated[int, typer.Option(help="Number of distinct samples to write.", min=1)] = 10_000,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 0,
    split: Annotated[
        str,
        typer.Option(help="Templates to use: train, test (held out) or all. Each sample records its split."),
    ] = "all",
    workers: Annotated[
        int, typer.Option(help="Worker processes; the output does not depend on it.", min=1)
    ] = 1,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run of the same command.")] = False,
    templates: Annotated[
        Path | None,
        typer.Option(
            help="Use this templates folder (laid out like the shipped `templates/`: <tool>/*.yaml, pools/) instead of the packaged one."
        ),
    ] = None,
) -> None:
    """Generate validated tool-use samples from templates.

    Every sample is rendered from one slot dict (request + gold program), parsed, validated
    against the function schemas, executed on the simulator, and kept only if it runs cleanly
    and its request is new. Example:

        toolbench generate --tool home_search --n 20000 --seed 0 --out data/home_search.jsonl
    """
    from toolbench.generate import GenerateConfig
    from toolbench.generate import generate as run_generate
    from toolbench.registry import resolve_tools

    if split not in ("all", "train", "test"):
        raise UserError(f"--split must be one of all, train, test; got {split!r}")
    config = GenerateConfig(
        tools=resolve_tools(tool),
        n=n,
        seed=seed,
        split=split,
        templates=str(templates) if templates else None,
    )
    with _progress() as progress:
        bar = progress.add_task(f"generate {', '.join(config.tools)}", total=n)
        report = run_generate(
            config,
            out,
            workers=workers,
            resume=resume,
            on_progress=lambda kept: progress.update(bar, completed=kept),
        )
    table = Table("kept", "candidates", "samples/s", "peak RSS MB", "splits", "rejects")
    table.add_row(
        str(report.kept),
        str(report.candidates),
        f"{report.samples_per_second:,.0f}",
        f"{report.peak_rss_mb:.0f}",
        ", ".join(f"{k}={v}" for k, v in report.by_split.items()),
        ", ".join(f"{k}={v}" for k, v in report.rejects.items()) or "none",
    )
    console.print(table)
    console.print(f"wrote {report.out}", highlight=False)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


# ------------------------------------------------------------------- tasks


@tasks_app.command("make")
def tasks_make(
    tool: Annotated[str, typer.Option(help="Tool whose held-out (split: test) templates to use.")],
    out: Annotated[
        Path, typer.Option(help="Where to write the task file (the frozen one is tools/<tool>/test.jsonl).")
    ],
    n: Annotated[int, typer.Option(help="Number of tasks.", min=1)] = 120,
    seed: Annotated[int, typer.Option(help="Seed for slot values.")] = 20231101,
) -> None:
    """Build a task file from a tool's held-out templates (each task keeps every acceptable label)."""
    from toolbench.io import write_jsonl
    from toolbench.registry import get_tool
    from toolbench.tasks import make_tasks

    get_tool(tool)
    count = write_jsonl(out, make_tasks(tool, n, seed))
    console.print(f"wrote {count} tasks to {out}", highlight=False)


@tasks_app.command("verify")
def tasks_verify(
    tasks: Annotated[
        list[Path] | None, typer.Option("--tasks", help="Task file(s); default: every tool's test.jsonl.")
    ] = None,
) -> None:
    """Execute every gold label: each must score 1.0 on its own task, and a task's labels must agree."""
    from toolbench.tasks import builtin_task_files, verify_tasks

    files = tasks or builtin_task_files()
    failed = False
    for path in files:
        n_tasks, n_labels, problems = verify_tasks(path)
        if problems:
            failed = True
            for problem in problems[:20]:
                err.print(f"{problem.where}: {problem.message}", highlight=False, soft_wrap=True)
            more = " (first 20 shown)" if len(problems) > 20 else ""
            err.print(
                f"[red]✗[/] {path}: {len(problems)} problem(s) in {n_tasks} tasks{more}", highlight=False
            )
        else:
            console.print(
                f"[green]✓[/] {path}: {n_tasks} tasks, {n_labels} labels, every label scores 1.0",
                highlight=False,
                soft_wrap=True,
            )
    if failed:
        raise typer.Exit(1)


@tasks_app.command("replay")
def tasks_replay(
    tasks: Annotated[Path, typer.Option(help="Task file to replay.")],
    out: Annotated[Path, typer.Option(help="Predictions JSONL to write.")],
    fmt: Annotated[
        str, typer.Option("--format", help="Call format of the prediction text: python or json.")
    ] = "python",
    corrupt: Annotated[
        bool, typer.Option(help="Corrupt 3 of every 4 predictions (wrong value, missing call, syntax).")
    ] = False,
) -> None:
    """Write the gold labels as predictions: a sanity check for `score` (expect 100%, or 25% with --corrupt)."""
    from toolbench.io import write_jsonl
    from toolbench.replay import corrupt_predictions, gold_predictions
    from toolbench.tasks import load_tasks

    task_list = [numbered.task for numbered in load_tasks(tasks)]
    predictions = (corrupt_predictions if corrupt else gold_predictions)(task_list, fmt)
    console.print(f"wrote {write_jsonl(out, predictions)} predictions to {out}", highlight=False)


# ------------------------------------------------------------------- score


@app.command()
def score(
    tasks: Annotated[Path, typer.Option(help="Task file, e.g. tools/home_search/test.jsonl.")],
    predictions: Annotated[
        Path, typer.Option(help='Predictions JSONL: {"id", "text"} or {"id", "calls"} per line.')
    ],
    fmt: Annotated[
        str, typer.Option("--format", help="Call format of prediction text: python or json.")
    ] = "python",
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for scores.jsonl, summary.json (with run record) and summary.md."),
    ] = None,
) -> None:
    """Score predictions by executing them and comparing the final state with every gold label.

    Success (ToolBench's rule): the best label's state F1 is 1, with a clean parse and execution.
    Also reported: AST match, and parse / tool-rule / crash error rates with their error types.
    """
    from toolbench.results import score_files

    _, summary = score_files(tasks, predictions, fmt, out)
    print_summary(summary)


def print_summary(summary: dict, title: str | None = None) -> None:
    from toolbench.results import METRIC_COLUMNS, summary_rows

    table = Table("tool", "n", *(f"{label} %" for _, label in METRIC_COLUMNS), title=title)
    for row in summary_rows(summary):
        table.add_row(*row)
    console.print(table)
    errors = summary["micro"]["error_types"]
    if errors:
        console.print("error types: " + ", ".join(f"{k}={v}" for k, v in errors.items()), highlight=False)


# -------------------------------------------------------------------- demo


@app.command()
def demo(out: Annotated[Path, typer.Option(help="Run folder.")] = Path("runs/demo")) -> None:
    """Run the product end to end on the embedded default: generate, verify tasks, score replays.

    Generates training data from templates, verifies the frozen test tasks, then scores a perfect
    and a deliberately corrupted replay of the gold labels. Steps whose output exists are skipped.
    """
    from toolbench.demo import run_demo

    run_demo(out, console)


if __name__ == "__main__":
    main()
