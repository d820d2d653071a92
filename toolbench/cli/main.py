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

from toolbench.cli.bfcl import import_bfcl_command
from toolbench.cli.distill import distill_app
from toolbench.cli.leaderboard import leaderboard_command
from toolbench.cli.options import (
    K_DEMOS_MAX,
    PORT_RANGE,
    SEED_MAX,
    CacheDir,
    CallFormatOption,
    Device,
    Draft,
    Dtype,
    EmbeddingModel,
    ExportFormat,
    ExportFormats,
    MaxNewTokens,
    OldFormat,
    OldFormats,
    OldMaxTokens,
    OldModel,
    OldN,
    OldTool,
    Overwrite,
    Samples,
    Seed,
    SplitParallelOption,
    Target,
    Threads,
    ToolCallIdsOption,
    Tools,
    ToolsAndCategories,
    checked_call_format,
    checked_device,
    checked_dtype,
    checked_file,
    checked_folder,
    checked_model,
    checked_tools,
    claim_output,
    config_from_options,
    output_file,
    output_folder,
    renamed,
    split_names,
)
from toolbench.cli.train import train_app
from toolbench.core.backends.base import ANSWER_TOKENS
from toolbench.foundation.errors import UserError
from toolbench.foundation.summaries import CostSummary, EvalSummary
from toolbench.foundation.tables import Align, markdown_table, rich_table
from toolbench.pipelines.export import Exporter, export_file, export_path

console = Console()
err = Console(stderr=True)


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
index_app = typer.Typer(help="Build and evaluate demo / API-doc retrieval indexes.", no_args_is_help=True)
app.add_typer(tools_app, name="tools")
app.add_typer(tasks_app, name="tasks")
app.add_typer(index_app, name="index")
app.add_typer(train_app, name="train")
app.add_typer(distill_app, name="distill")
app.command("leaderboard")(leaderboard_command)
tasks_app.command("import-bfcl")(import_bfcl_command)


def main() -> None:
    """The installed command: a UserError raised anywhere below (any subcommand) prints as one line
    on stderr and exits with status 2, never as a traceback. (Called in-process, e.g. by Typer's
    CliRunner, `app` leaves the UserError in `result.exception` instead.)"""
    try:
        app()
    except UserError as error:
        err.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)


# ------------------------------------------------------------------- tools


@tools_app.command("list")
def tools_list() -> None:
    """List the registered tools: built-in ones and any registered through the `toolbench.tools` entry point."""
    from toolbench.core.registry import get_tool, tool_names

    rows = []
    for name in tool_names():
        sim = get_tool(name)
        tasks_file = sim.tasks_file()
        n_tasks = sum(1 for line in tasks_file.open() if line.strip()) if tasks_file.exists() else 0
        rows.append([name, str(len(sim.specs)), str(n_tasks), sim.description])
    console.print(rich_table(["tool", "functions", "test tasks", "description"], rows))


@tools_app.command("show")
def tools_show(
    name: Annotated[str, typer.Argument(help="Tool name, as in `toolbench tools list`.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the OpenAI `tools` array instead of a summary.")
    ] = False,
) -> None:
    """Show a tool's functions with the exact JSON schemas a model sees (and the executor enforces)."""
    from toolbench.core.registry import get_tool

    sim = get_tool(name)
    if as_json:
        print(json.dumps([spec.openai_tool() for spec in sim.specs.values()], indent=2))
        return
    rows = []
    for spec in sim.specs.values():
        required = set(spec.parameters.get("required", []))
        args = "\n".join(
            f"{k}{'' if k in required else '?'}: {_describe_schema(v)}"
            for k, v in spec.parameters.get("properties", {}).items()
        )
        rows.append([spec.name, args, spec.description])
    header = ["function", "arguments", "description"]
    console.print(rich_table(header, rows, title=f"{sim.name}: {sim.description}", show_lines=True))
    console.print(
        f"Full JSON schemas (OpenAI tools format): toolbench tools show {name} --json", highlight=False
    )


def _describe_schema(schema: dict) -> str:
    """A compact reading of a parameter schema: type, enum, bounds."""
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    text = schema.get("type", "any")
    if isinstance(text, list):
        text = " | ".join(text)
    if "anyOf" in schema:
        text = " | ".join(_describe_schema(option) for option in schema["anyOf"])
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
    tools: Tools = "all",
    samples: Samples = 10_000,
    seed: Seed = 0,
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
    distractors: Annotated[
        int,
        typer.Option(
            help="Offer this many other tools with each sample (multi_tool training data); at most the "
            "number of other single-shot tools (an error says the range).",
            min=0,
        ),
    ] = 0,
    relevance: Annotated[
        float,
        typer.Option(
            help="Fraction of samples offered only unrelated tools; their gold answer is no call.",
            min=0,
            max=1,
        ),
    ] = 0.0,
    export_formats: ExportFormats = None,
    multi_turn: Annotated[
        bool, typer.Option(help="Exports include tool results and a final assistant reply.")
    ] = False,
    tool_call_ids: ToolCallIdsOption = "auto",
    split_parallel: SplitParallelOption = False,
    overwrite: Overwrite = False,
    old_tool: OldTool = None,
    old_n: OldN = None,
    old_format: OldFormats = None,
) -> None:
    """Generate validated tool-use samples from templates.

    Every sample is rendered from one slot dict (request + gold program), parsed, validated
    against the function schemas, executed on the simulator, and kept only if it runs cleanly
    and its request is new. Example:

        toolbench generate --tools home_search --samples 20000 --seed 0 --out data/home_search.jsonl
    """
    from toolbench.core.registry import resolve_tools
    from toolbench.pipelines.generate import GenerateConfig
    from toolbench.pipelines.generate import generate as run_generate

    if split not in ("all", "train", "test"):
        raise UserError(f"--split must be one of all, train, test; got {split!r}")
    n = renamed(samples, old_n)
    fmt = renamed(export_formats, old_format)
    output_file(out)
    names = resolve_tools(checked_tools(renamed(tools, old_tool), "--tools"))
    if templates is not None:
        checked_folder(templates, "--templates")
    # check the export options before the long run
    exporters = [Exporter(name, multi_turn, None, tool_call_ids, split_parallel) for name in fmt or []]
    if not resume:
        claim_output(out, overwrite)
    config = config_from_options(
        GenerateConfig,
        tools=names,
        n=n,
        seed=seed,
        split=split,
        templates=str(templates) if templates else None,
        distractors=distractors,
        relevance=relevance,
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
    row = [
        str(report.kept),
        str(report.candidates),
        f"{report.samples_per_second:,.0f}",
        f"{report.peak_rss_mb:.0f}",
        ", ".join(f"{k}={v}" for k, v in report.by_split.items()),
        ", ".join(f"{k}={v}" for k, v in report.rejects.items()) or "none",
    ]
    console.print(rich_table(["kept", "candidates", "samples/s", "peak RSS MB", "splits", "rejects"], [row]))
    console.print(f"wrote {report.out}", highlight=False)
    for exporter in exporters:
        target = export_path(report.out, exporter.fmt)
        count = export_file(
            report.out,
            target,
            exporter.fmt,
            split="train",
            multi_turn=multi_turn,
            tool_call_ids=tool_call_ids,
            split_parallel=split_parallel,
        )
        console.print(f"wrote {count} {exporter.fmt} records to {target}", highlight=False)


@app.command()
def export(
    source: Annotated[Path, typer.Argument(help="Canonical samples from `toolbench generate`.")],
    out: Annotated[Path, typer.Option(help="Where to write the export (JSONL).")],
    export_format: ExportFormat = "openai",
    split: Annotated[str, typer.Option(help="Export only train, only test, or all samples.")] = "train",
    multi_turn: Annotated[
        bool, typer.Option(help="Include tool results as tool messages and a final assistant reply.")
    ] = False,
    system_prompt: Annotated[
        str | None, typer.Option(help="System prompt text to put first ('default' for the built-in one).")
    ] = None,
    tool_call_ids: ToolCallIdsOption = "auto",
    split_parallel: SplitParallelOption = False,
    overwrite: Overwrite = False,
    old_format: OldFormat = None,
) -> None:
    """Convert generated samples into a training format.

    openai: OpenAI fine-tuning chat format (messages with tool_calls, tools). hf-chat: messages +
    tools for `apply_chat_template(..., tools=...)` and TRL's SFTTrainer (arguments as objects, as
    chat templates want them; train TRL on this one, not on openai, whose arguments are JSON
    strings that templates print double-encoded). sharegpt: LLaMA-Factory's
    conversations with function_call/observation turns. toolbench: prompt/completion with the
    ToolBench scaffold. Every export loads with `datasets.load_dataset("json", data_files=...)`.
    """
    from toolbench.core.prompts import DEFAULT_SYSTEM_PROMPT

    fmt = renamed(export_format, old_format)
    if split not in ("all", "train", "test"):
        raise UserError(f"--split must be one of all, train, test; got {split!r}")
    checked_file(source, "SOURCE")
    output_file(out)
    Exporter(fmt, multi_turn, None, tool_call_ids, split_parallel)  # bad options: refused before any work
    claim_output(out, overwrite, inputs=(source,))
    prompt = DEFAULT_SYSTEM_PROMPT if system_prompt == "default" else system_prompt
    with _progress() as progress:
        bar = progress.add_task(f"export {fmt}", total=source.stat().st_size)
        count = export_file(
            source,
            out,
            fmt,
            split=split,
            multi_turn=multi_turn,
            system_prompt=prompt,
            tool_call_ids=tool_call_ids,
            split_parallel=split_parallel,
            on_progress=lambda done: progress.update(bar, completed=done),
        )
    console.print(f"wrote {count} {fmt} records to {out}", highlight=False)


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
    out: Annotated[
        Path,
        typer.Option(
            help="Task file to write (frozen ones: tools/<tool>/test.jsonl, tools/<tool>/indist.jsonl, "
            "tools/categories/<category>.jsonl)."
        ),
    ],
    tool: Annotated[
        str | None, typer.Option(help="Tool whose templates to use (held-out ones for --task-set test).")
    ] = None,
    category: Annotated[
        str | None,
        typer.Option(
            help="Or a cross-tool category built from the tools' test files: multi_tool, parallel, relevance."
        ),
    ] = None,
    n: Annotated[int, typer.Option(help="Number of tasks to make (1 to 100,000).", min=1)] = 120,
    task_set: Annotated[
        str,
        typer.Option(
            help="test: from the held-out templates; indist: from the training templates (new values)."
        ),
    ] = "test",
    seed: Annotated[
        int | None,
        typer.Option(
            help="Seed (default: the frozen files' own, 20231101 test / 20261206 indist).",
            min=0,
            max=SEED_MAX,
        ),
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Build a task file from a tool's templates (held-out or training ones), or a cross-tool category file."""
    from toolbench.core.task_files import TASK_SETS
    from toolbench.foundation.io import write_jsonl
    from toolbench.pipelines.categories import CATEGORIES, make_category_tasks
    from toolbench.pipelines.tasks import MAX_TASKS, TASK_SET_SEED, make_tasks

    if (
        n > MAX_TASKS
    ):  # checked here, not by typer: the limit lives in toolbench.pipelines.tasks (loaded only now)
        raise UserError(f"--n {n}: a task file holds 1 to {MAX_TASKS} tasks")
    if task_set not in TASK_SETS:
        raise UserError(f"--task-set must be one of {', '.join(TASK_SETS)}; got {task_set!r}")
    if category is not None and task_set != "test":
        raise UserError("--category files are built from held-out tasks; --task-set applies to --tool")
    if seed is None:
        seed = TASK_SET_SEED[task_set]
    if (tool is None) == (category is None):
        raise UserError("give exactly one of --tool or --category")
    if tool is not None:
        if len(checked_tools(tool)) != 1 or tool == "all":
            raise UserError(f"--tool {tool!r}: give one tool; a task file is made from one tool's templates")
    elif category not in CATEGORIES:
        raise UserError(f"--category: unknown category {category!r}; known: {', '.join(CATEGORIES)}")
    output_file(out)
    claim_output(out, overwrite)
    with _progress() as progress:
        bar = progress.add_task(f"tasks {tool or category}", total=n)
        if tool is not None:
            tasks = make_tasks(
                tool,
                n,
                seed,
                on_progress=lambda kept, _: progress.update(bar, completed=kept),
                task_set=task_set,
            )
        else:
            tasks = make_category_tasks(category, n, seed)  # type: ignore[arg-type]
    count = write_jsonl(out, tasks)
    console.print(f"wrote {count} tasks to {out}", highlight=False)


@tasks_app.command("verify")
def tasks_verify(
    tasks: Annotated[
        list[Path] | None, typer.Option("--tasks", help="Task file(s); default: every tool's test.jsonl.")
    ] = None,
) -> None:
    """Execute every gold label: each must score 1.0 on its own task, and a task's labels must agree."""
    from toolbench.core.task_files import verify_tasks
    from toolbench.pipelines.tasks import builtin_task_files

    files = [checked_file(path, "--tasks") for path in tasks] if tasks else builtin_task_files()
    failed = False
    with _progress() as progress:  # a progress line per file: a BFCL import holds thousands of tasks
        bar = progress.add_task("verify", total=len(files))
        checked = []
        for path in files:
            progress.update(bar, description=f"verify {path.name}")
            checked.append((path, verify_tasks(path)))
            progress.advance(bar)
    for path, (n_tasks, n_labels, problems) in checked:
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
        str,
        typer.Option("--call-format", help="Call format to write the gold programs in (see `score --help`)."),
    ] = "python",
    corrupt: Annotated[
        bool, typer.Option(help="Corrupt 3 of every 4 predictions (wrong value, missing call, syntax).")
    ] = False,
    overwrite: Overwrite = False,
    old_format: OldFormat = None,
) -> None:
    """Write the gold labels as predictions: a sanity check for `score` (expect 100%, or 25% with --corrupt)."""
    from toolbench.core.replay import corrupt_predictions, gold_predictions
    from toolbench.core.task_files import load_tasks
    from toolbench.foundation.io import write_jsonl

    checked_file(tasks, "--tasks")
    output_file(out)
    call_format = checked_call_format(renamed(fmt, old_format))
    claim_output(out, overwrite, inputs=(tasks,))
    task_list = [numbered.task for numbered in load_tasks(tasks)]
    predictions = (corrupt_predictions if corrupt else gold_predictions)(task_list, call_format)
    console.print(f"wrote {write_jsonl(out, predictions)} predictions to {out}", highlight=False)


# ------------------------------------------------------------------- score


@app.command()
def score(
    tasks: Annotated[Path, typer.Option(help="Task file, e.g. tools/home_search/test.jsonl.")],
    predictions: Annotated[
        Path, typer.Option(help='Predictions JSONL: {"id", "text"} or {"id", "calls"} per line.')
    ],
    fmt: CallFormatOption = "auto",
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for scores.jsonl, summary.json (with run record) and summary.md."),
    ] = None,
    ignore_extra: Annotated[
        bool, typer.Option(help="Skip predictions for tasks not in the task file instead of refusing them.")
    ] = False,
    overwrite: Overwrite = False,
    old_format: OldFormat = None,
) -> None:
    """Score predictions by executing them and comparing the final state with every gold label.

    Success (ToolBench's rule): the best label's state F1 is 1, with a clean parse and execution.
    Also reported: AST match, and parse / tool-rule / crash error rates with their error types.
    """
    from toolbench.foundation.io import iter_jsonl
    from toolbench.pipelines.results import score_files

    checked_file(tasks, "--tasks")
    checked_file(predictions, "--predictions")
    call_format = checked_call_format(renamed(fmt, old_format))
    if next(iter_jsonl(predictions), None) is None:
        raise UserError(f"--predictions {predictions}: no predictions in the file (it is empty)")
    if out is not None:
        if out.is_file():
            raise UserError(f"--out {out} is a file; give a folder for scores.jsonl and the summaries")
        claim_output(out, overwrite)
    _, summary = score_files(tasks, predictions, call_format, out, ignore_extra)
    print_summary(summary)


def print_summary(summary: EvalSummary, title: str | None = None) -> None:
    """summary.md's tables on the console, then the error types."""
    from toolbench.pipelines.results import CELL_HEADERS, cell_rows, summary_header, summary_rows

    header = summary_header(summary)
    align: list[Align] = ["left", *["right"] * (len(header) - 1)]
    console.print(rich_table(header, summary_rows(summary), align, title=title, no_wrap_first=True))
    if summary.cells:
        console.print(rich_table(CELL_HEADERS, cell_rows(summary)))
    errors = summary.micro.error_types
    if errors:
        console.print("error types: " + ", ".join(f"{k}={v}" for k, v in errors.items()), highlight=False)


def print_cost(cost: CostSummary | None) -> None:
    """One line under the table: what the run cost (requests, tokens, latency; summary.json's `cost`)."""
    from toolbench.pipelines.results import COST_HEADERS, cost_cells

    cells = cost_cells(cost)
    console.print(
        "cost: " + ", ".join(f"{h} {c}" for h, c in zip(COST_HEADERS, cells, strict=True)), highlight=False
    )


# ---------------------------------------------------------------------- eval


def _system_prompt(value: str) -> str | None:
    from toolbench.core.prompts import DEFAULT_SYSTEM_PROMPT

    if value == "default":
        return DEFAULT_SYSTEM_PROMPT
    if value == "none":
        return None
    path = Path(value)
    if path.is_dir():
        raise UserError(f"--system-prompt {value}: is a folder; give default, none or a text file")
    if not path.is_file():
        raise UserError(f"--system-prompt takes default, none or a text file; {value!r} is none of them")
    try:
        return path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as error:
        raise UserError(
            f"--system-prompt {value}: not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None


def _task_selection(tools: str, tasks: list[Path] | None) -> dict:
    """--tools (comma-separated) and --tasks as config fields: eval and spec pick tasks alike.
    Each name and file is checked here, before any model loads."""
    return {
        "tools": checked_tools(tools, "--tools", categories=True),
        "tasks": [str(checked_file(t, "--tasks")) for t in tasks] if tasks else None,
    }


def _checked_model_spec(model: str, base_url: str | None) -> None:
    """eval's --model, checked by its form before anything loads: the backend prefix, a replay
    file that exists, an HF folder that holds a model, an openai model with its --base-url."""
    from toolbench.core.backends import PREFIXES

    prefix, sep, rest = model.partition(":")
    if not sep or not rest or prefix not in PREFIXES:
        raise UserError(
            f"--model: unknown model spec {model!r}: write hf:PATH_OR_ID, openai:MODEL (with --base-url) "
            "or replay:PREDICTIONS.jsonl"
        )
    if prefix == "replay":
        checked_file(Path(rest), "--model replay:")
    elif prefix == "hf":
        checked_model(rest, "--model hf:")


@app.command("eval")
def eval_command(
    model: Annotated[
        str, typer.Option(help="hf:PATH_OR_ID, openai:MODEL (with --base-url) or replay:PREDICTIONS.jsonl.")
    ],
    out: Annotated[
        Path, typer.Option(help="Run folder: predictions, scores, summary.json (+ run record), summary.md.")
    ] = Path("runs/eval"),
    base_url: Annotated[
        str | None,
        typer.Option(
            help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (vLLM, SGLang, llama.cpp, toolbench serve)."
        ),
    ] = None,
    tools: ToolsAndCategories = "all",
    tasks: Annotated[
        list[Path] | None, typer.Option("--tasks", help="Task files instead of the tools' test sets.")
    ] = None,
    task_set: Annotated[
        str,
        typer.Option(
            help="The tools' frozen tasks: test (held-out templates), indist (training templates, new "
            "values) or both (each run twice, into OUT/test and OUT/indist; the --ablate grid shows "
            "both columns). Low on both: the model cannot copy values; high on indist only: it "
            "cannot generalise."
        ),
    ] = "test",
    mode: Annotated[
        str,
        typer.Option(
            help="completion (ToolBench scaffold, python calls) or chat (messages + tools, tool_calls)."
        ),
    ] = "completion",
    k_demos: Annotated[
        int, typer.Option(help="Retrieved demonstrations per prompt (0 to 20).", min=0, max=K_DEMOS_MAX)
    ] = 3,
    retriever: Annotated[str, typer.Option(help="bm25, dense or hybrid.")] = "bm25",
    system_prompt: Annotated[str, typer.Option(help="default, none, or a text file.")] = "default",
    demos: Annotated[
        Path | None,
        typer.Option(help="Generated samples whose train split are the demos (default: made once, cached)."),
    ] = None,
    max_new_tokens: MaxNewTokens = ANSWER_TOKENS,
    temperature: Annotated[float, typer.Option(min=0.0)] = 0.0,
    seed: Seed = 0,
    concurrency: Annotated[int, typer.Option(help="Parallel requests (openai backend).", min=1)] = 8,
    batch_size: Annotated[int, typer.Option(help="Prompts per forward pass (hf backend).", min=1)] = 8,
    timeout: Annotated[
        float, typer.Option(help="Seconds per request (openai backend), more than 0.", min=0.001)
    ] = 60.0,
    retries: Annotated[int, typer.Option(help="Retries on 429/5xx/timeouts (openai backend).", min=0)] = 4,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Ask the model again instead of reusing cached answers.")
    ] = False,
    limit: Annotated[int | None, typer.Option(help="Only the first N tasks of each file.", min=1)] = None,
    max_steps: Annotated[
        int | None,
        typer.Option(help="Step limit of episode tasks (default: the environment's, 15 for webshop).", min=1),
    ] = None,
    cache_dir: CacheDir = None,
    call_format: CallFormatOption = "auto",
    device: Device = "auto",
    dtype: Dtype = "auto",
    overwrite: Overwrite = False,
    ablate: Annotated[
        bool,
        typer.Option(
            help="Run ToolBench's grid: system prompt on/off x k in {0, 3} x BM25/dense; one table."
        ),
    ] = False,
    ablate_retrievers: Annotated[
        str, typer.Option(help="Retrievers the --ablate grid tries for k = 3 (comma-separated).")
    ] = "bm25,dense",
    guided: Annotated[
        bool,
        typer.Option(
            "--guided",
            help="Guided decoding (hf: models, chat mode): every step masks the tokens that cannot "
            "continue an answer that parses and fits the offered tools (function names, argument "
            "keys, types, enums), as a server's guided decoding does. Separates a model's choices "
            "from its syntax; scored apart (the setting's name ends in -guided).",
        ),
    ] = False,
    old_max_tokens: OldMaxTokens = None,
    old_format: OldFormat = None,
) -> None:
    """Measure a model's tool success rate per tool, ToolBench-style.

    Builds prompts (system prompt + k retrieved demos), asks the backend, parses the calls, executes
    them and compares the resulting state with the gold labels. Answers are cached on disk by
    (backend, prompt, params): an interrupted run resumes, a rerun is free. Example:

        toolbench eval --model openai:my-model --base-url http://127.0.0.1:8000/v1 --tools weather --mode chat
    """
    from toolbench.pipelines.evaluate import (
        GUIDED_WHERE,
        EvalConfig,
        guided_runs_here,
        run_eval,
        select_tasks,
        setting_name,
    )

    if mode not in ("completion", "chat"):
        raise UserError(f"--mode must be completion or chat; got {mode!r}")
    if retriever not in ("bm25", "dense", "hybrid"):
        raise UserError(f"--retriever must be bm25, dense or hybrid; got {retriever!r}")
    if out.is_file():
        raise UserError(f"--out {out} is a file; give a folder for the run")
    _checked_model_spec(model, base_url)
    if guided and not guided_runs_here(model, mode):
        raise UserError(GUIDED_WHERE)
    if demos is not None:
        checked_file(demos, "--demos")
    if cache_dir is not None:
        output_folder(cache_dir, "--cache-dir")
    kinds = split_names(ablate_retrievers, "--ablate-retrievers") if ablate else []
    for kind in kinds:
        if kind not in ("bm25", "dense", "hybrid"):
            raise UserError(f"--ablate-retrievers: unknown retriever {kind!r}; known: bm25, dense, hybrid")
    selection = _task_selection(tools, tasks)
    if task_set not in ("test", "indist", "both"):
        raise UserError(f"--task-set must be test, indist or both; got {task_set!r}")
    if task_set != "test" and tasks:
        raise UserError("--task-set picks the tools' frozen files; it does not apply to --tasks")
    task_sets = ["test", "indist"] if task_set == "both" else [task_set]
    prompt = _system_prompt(system_prompt)
    call_format = checked_call_format(renamed(call_format, old_format))
    checked_device(device)
    checked_dtype(dtype)
    claim_output(out, overwrite)
    base = config_from_options(
        EvalConfig,
        model=model,
        base_url=base_url,
        **selection,
        mode=mode,
        k_demos=k_demos,
        retriever=retriever,
        system_prompt=prompt,
        demos=str(demos) if demos else None,
        max_tokens=renamed(max_new_tokens, old_max_tokens),
        temperature=temperature,
        seed=seed,
        concurrency=concurrency,
        batch_size=batch_size,
        timeout=timeout,
        retries=retries,
        use_cache=not no_cache,
        limit=limit,
        max_steps=max_steps,
        cache_dir=str(cache_dir) if cache_dir else None,
        call_format=call_format,
        device=device,
        dtype=dtype,
        guided=guided,
    )
    configs = [base]
    if ablate:
        configs = []
        for prompt in (_system_prompt("default"), None):
            configs.append(base.model_copy(update={"system_prompt": prompt, "k_demos": 0}))
            for kind in kinds:
                configs.append(
                    base.model_copy(update={"system_prompt": prompt, "k_demos": 3, "retriever": kind})
                )
    results: dict[tuple, dict[str, EvalSummary]] = {}
    for config in configs:
        for each in task_sets:
            config = config.model_copy(update={"task_set": each})
            name = setting_name(config)
            folder = out / name if ablate else out
            folder = folder / each if len(task_sets) > 1 else folder
            with _progress() as progress:
                # one advance per answered request: the task count (episodes ask once per step)
                tasks = select_tasks(config)
                bar = progress.add_task(f"eval {name} ({each})", total=len(tasks))
                run = run_eval(config, folder, lambda p=progress, b=bar: p.advance(b), tasks)
            key = (
                config.system_prompt is not None,
                config.k_demos,
                config.retriever if config.k_demos else "-",
            )
            results.setdefault(key, {})[each] = run.summary
            if not ablate:
                print_summary(run.summary, title=f"{model}: {name} ({each} tasks)")
                print_cost(run.cost)
    if ablate:
        _print_ablation(results, out, task_sets)
    console.print(f"results in {out}", highlight=False)


TASK_SET_TITLES = {"test": "held out", "indist": "in distribution"}


def _print_ablation(results: dict[tuple, dict[str, EvalSummary]], out: Path, task_sets: list[str]) -> None:
    """The grid: one row per setting; with both task sets each cell is "held out / in distribution"."""
    from toolbench.foundation.io import atomic_open

    tools = sorted({t for by_set in results.values() for s in by_set.values() for t in s.per_tool})
    unit = " / ".join(TASK_SET_TITLES[s] for s in task_sets)
    header = ["system prompt", "k", "retriever", *tools, "macro"]

    def cell(by_set: dict[str, EvalSummary], tool: str | None) -> str:
        values = []
        for each in task_sets:
            summary = by_set[each]
            score = summary.macro if tool is None else summary.per_tool.get(tool)
            values.append("-" if score is None else f"{100 * score.success:.1f}")
        return " / ".join(values)

    rows = [
        ["on" if prompt else "off", str(k), kind, *(cell(by_set, t) for t in tools), cell(by_set, None)]
        for (prompt, k, kind), by_set in results.items()
    ]
    console.print(rich_table(header, rows, title=f"success % (ToolBench ablation; {unit})"))
    with atomic_open(out / "ablation.md", "w") as handle:
        handle.write(f"Success % per setting; cells: {unit}.\n\n{markdown_table(header, rows)}\n")


@app.command()
def serve(
    model: Annotated[str, typer.Option(help="HF model folder or id to serve.")],
    host: Annotated[
        str, typer.Option(help="127.0.0.1 keeps it on this machine; 0.0.0.0 exposes it to the network.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="TCP port, 1 to 65535.", min=PORT_RANGE[0], max=PORT_RANGE[1])
    ] = 8000,
    max_tokens_limit: Annotated[
        int, typer.Option(help="Largest max_tokens a request may ask for.", min=1)
    ] = 1024,
    max_request_bytes: Annotated[
        int, typer.Option(help="Largest request body accepted (bigger gets 413).", min=1)
    ] = 1_000_000,
    max_batch: Annotated[
        int,
        typer.Option(help="Waiting greedy requests with the same settings generated as one batch.", min=1),
    ] = 16,
    max_batch_tokens: Annotated[
        int, typer.Option(help="Most padded prompt tokens in one batch.", min=1)
    ] = 16384,
    max_queue: Annotated[
        int, typer.Option(help="Requests waiting beyond this are refused with 503 (Retry-After).", min=1)
    ] = 256,
    request_timeout: Annotated[
        float, typer.Option(help="Seconds a request may wait and run before it gets 504.", min=0.001)
    ] = 120.0,
    access_log: Annotated[bool, typer.Option(help="Log every request (uvicorn's access log).")] = True,
    device: Device = "auto",
    dtype: Dtype = "auto",
) -> None:
    """Serve a local HF model behind an OpenAI-compatible API (/v1/models, /v1/chat/completions with
    tools -> tool_calls, /v1/completions), e.g. for `toolbench eval --model openai:NAME --base-url ...`.

    Waiting greedy requests are generated together in batches; a full queue answers 503 and a
    request past --request-timeout 504. Tool calls are read from the answer in any family's form."""
    from toolbench.app.server import run_server

    # every option is checked before the model loads (which takes a while)
    checked_model(model, "--model")
    checked_device(device)
    checked_dtype(dtype)
    if not host.strip():
        raise UserError("--host is empty; give an address such as 127.0.0.1 or 0.0.0.0")
    run_server(
        model,
        host=host,
        port=port,
        access_log=access_log,
        max_tokens_limit=max_tokens_limit,
        max_request_bytes=max_request_bytes,
        max_batch=max_batch,
        max_batch_tokens=max_batch_tokens,
        max_queue=max_queue,
        request_timeout=request_timeout,
        load_options={"device": device, "dtype": dtype},
    )


# ------------------------------------------------------------------ retrieval


@index_app.command("build")
def index_build(
    out: Annotated[
        Path, typer.Option(help="Index folder to write (an existing index is replaced with --overwrite).")
    ],
    demos: Annotated[
        Path | None,
        typer.Option(help="Generated samples (`toolbench generate`) whose train split become demos."),
    ] = None,
    api_docs: Annotated[
        str | None, typer.Option(help="Or index API docs (one per function) of these tools: names or `all`.")
    ] = None,
    retriever: Annotated[
        str, typer.Option(help="bm25, dense or hybrid (reciprocal-rank fusion of both).")
    ] = "bm25",
    embedding_model: EmbeddingModel = None,
    overwrite: Overwrite = False,
    old_model: OldModel = None,
) -> None:
    """Build a retrieval index over demos or API docs and save it to a folder."""
    import time

    from toolbench.core.registry import resolve_tools
    from toolbench.retriever import api_documents, demo_documents, file_sha256, make_retriever

    if (demos is None) == (api_docs is None):
        raise UserError("give exactly one of --demos FILE or --api-docs TOOLS")
    if retriever not in ("bm25", "dense", "hybrid"):
        raise UserError(f"--retriever must be bm25, dense or hybrid; got {retriever!r}")
    if demos is not None:
        checked_file(demos, "--demos")
    else:
        checked_tools(api_docs, "--api-docs")  # type: ignore[arg-type]
    output_folder(out)
    if out.is_dir() and any(out.iterdir()) and not (out / "meta.json").is_file():
        # saving replaces the whole folder: never one that holds anything but an index
        raise UserError(
            f"--out {out} holds files that are not a toolbench index; choose an empty or new folder"
        )
    claim_output(out, overwrite)
    if demos is not None:
        documents, source = (
            demo_documents(demos),
            {"path": str(demos.resolve()), "sha256": file_sha256(demos)},
        )
    else:
        documents, source = api_documents(resolve_tools(api_docs)), {"api_docs": api_docs}
    started = time.perf_counter()
    index = make_retriever(retriever, renamed(embedding_model, old_model)).build(documents)
    index.save(out, source)
    console.print(
        f"indexed {len(documents)} documents with {retriever} in {time.perf_counter() - started:.1f} s → {out}",
        highlight=False,
    )


@index_app.command("evaluate")
def index_evaluate(
    demos: Annotated[Path, typer.Option(help="Generated samples whose train split are the demos.")],
    retriever: Annotated[str, typer.Option(help="bm25, dense, hybrid, or all.")] = "all",
    k: Annotated[int, typer.Option(help="Demos retrieved per query.", min=1)] = 3,
    tasks: Annotated[
        list[Path] | None, typer.Option("--tasks", help="Task files; default: every tool's own test.jsonl.")
    ] = None,
    embedding_model: EmbeddingModel = None,
    old_model: OldModel = None,
) -> None:
    """recall@k of demo retrieval on test queries: a top-k demo uses the gold label's function set."""
    from toolbench.core.task_files import load_tasks, tool_task_files
    from toolbench.retriever import RETRIEVERS, demo_documents, make_retriever
    from toolbench.retriever.quality import recall_at_k

    model = renamed(embedding_model, old_model)
    if retriever != "all" and retriever not in RETRIEVERS:
        raise UserError(f"--retriever must be {', '.join(RETRIEVERS)} or all; got {retriever!r}")
    checked_file(demos, "--demos")
    for path in tasks or []:
        checked_file(path, "--tasks")
    kinds = list(RETRIEVERS) if retriever == "all" else [retriever]
    # Default: each tool's own test queries (a cross-tool parallel task has no single-demo match).
    files = tasks or list(tool_task_files().values())
    task_list = [n.task for path in files for n in load_tasks(path)]
    documents = demo_documents(demos)
    results = {
        kind: recall_at_k(make_retriever(kind, model).build(documents), task_list, k) for kind in kinds
    }
    rows = [[tool, *(f"{100 * results[kind][tool]:.1f}" for kind in kinds)] for tool in results[kinds[0]]]
    header = ["tool", *(f"{kind} recall@{k} %" for kind in kinds)]
    console.print(rich_table(header, rows, title=f"{len(documents)} demos"))


@app.command()
def retrieve(
    query: Annotated[str, typer.Argument(help="The request to find demonstrations for.")],
    index: Annotated[Path, typer.Option(help="Index folder from `toolbench index build`.")],
    k: Annotated[int, typer.Option(help="How many results.", min=1)] = 3,
    tool: Annotated[str | None, typer.Option(help="Only results of this tool.")] = None,
) -> None:
    """Show the top-k demos (or API docs) an index returns for a query."""
    from toolbench.core.registry import tool_names
    from toolbench.retriever import open_index

    if not query.strip():
        raise UserError("QUERY is empty; give the request to find demonstrations for")
    checked_folder(index, "--index")
    if not (index / "meta.json").is_file():
        raise UserError(
            f"--index {index}: not an index folder (no meta.json); build one with `toolbench index build`"
        )
    if tool is not None and tool not in tool_names():
        raise UserError(f"--tool: unknown tool {tool!r}; known tools: {', '.join(tool_names())}")
    hits = open_index(index).search(query, k, (lambda doc: doc.payload.get("tool") == tool) if tool else None)
    if not hits:
        console.print("no results" + (f" for tool {tool}" if tool else ""))
    for hit in hits:
        body = hit.document.payload.get("action") or hit.document.payload.get("doc", "")
        console.print(f"[bold]{hit.rank + 1}.[/] ({hit.score:.3f}) {hit.document.text}", highlight=False)
        if body and body != hit.document.text:
            console.print("   " + body.replace("\n", "\n   "), highlight=False, style="dim")


# -------------------------------------------------------------------- spec


@app.command()
def spec(
    target: Target,
    draft: Draft,
    out: Annotated[
        Path,
        typer.Option(
            help="Run folder: samples.jsonl, summary.json (+ run record), summary.md, acceptance.png."
        ),
    ] = Path("runs/spec"),
    tools: ToolsAndCategories = "all",
    tasks: Annotated[
        list[Path] | None, typer.Option("--tasks", help="Task files instead of the tools' test sets.")
    ] = None,
    gamma: Annotated[
        int | None,
        typer.Option(
            "--gamma",
            "--budget",
            help="γ: draft tokens per round; for adaptive policies the most (the budget). "
            "Default 5, or the learned head's budget chosen on training prompts.",
        ),
    ] = None,
    draft_policy: Annotated[
        str,
        typer.Option(
            help="fixed (always γ), confidence (stop once the draft's top probability < --threshold) or "
            "learned (stop once the --head's predicted chance that the round is accepted < --threshold)."
        ),
    ] = "fixed",
    threshold: Annotated[
        float | None,
        typer.Option(help="Adaptive policies' threshold (default: confidence 0.5, learned the head's own)."),
    ] = None,
    head: Annotated[
        Path | None, typer.Option(help="Learned policy: a folder from `toolbench train acceptance-head`.")
    ] = None,
    temperature: Annotated[
        float,
        typer.Option(help="0: greedy (output must equal the target's); > 0: rejection sampling.", min=0.0),
    ] = 0.0,
    max_new_tokens: MaxNewTokens = 128,
    limit: Annotated[int | None, typer.Option(help="Only the first N tasks of each file.", min=1)] = None,
    k_demos: Annotated[
        int, typer.Option(help="Retrieved demonstrations per prompt (0 to 20).", min=0, max=K_DEMOS_MAX)
    ] = 0,
    system_prompt: Annotated[str, typer.Option(help="default, none, or a text file.")] = "default",
    seed: Annotated[
        int, typer.Option(help="Sampling seed (per prompt: seed + index).", min=0, max=SEED_MAX)
    ] = 0,
    device: Device = "auto",
    dtype: Dtype = "auto",
    threads: Threads = None,
    assisted: Annotated[
        bool, typer.Option(help="Also time HF assisted generation on the same prompts (greedy only).")
    ] = True,
    old_max_tokens: OldMaxTokens = None,
) -> None:
    """Score a draft for a target by speculative decoding on eval's chat prompts.

    Reports per-token acceptance α = A/(A+R), draft acceptance rate A/(γ·S), mean accepted length
    1 + A/S, the τ expected from α, the analytic α (mean Σ min(p, q) on the target's outputs),
    wasted draft tokens per target call, target calls per token, wall-clock tokens/s of
    speculative vs target-only decoding (same prompts, same run), α and drafts by token class and
    per tool, and HF assisted generation for comparison. Examples:

        toolbench spec --target runs/demo/models/target --draft runs/demo/models/draft --tools home_search --limit 20
        toolbench spec … --draft-policy learned --head runs/demo/models/draft/acceptance-head [--budget 8]
    """
    from toolbench.distill.speculative.decoding import make_policy
    from toolbench.distill.speculative.spec_eval import SpecConfig, console_rows, prompt_config, run_spec

    # bad models, tasks, γ / policy / head: one line, before loading models
    checked_model(target, "--target")
    checked_model(draft, "--draft")
    if head is not None:
        checked_folder(head, "--head")
    output_folder(out)
    checked_device(device)
    policy = make_policy(draft_policy, gamma, threshold=threshold, head=head, draft=draft)
    config = config_from_options(
        SpecConfig,
        target=target,
        draft=draft,
        **_task_selection(tools, tasks),
        gamma=gamma,
        policy=draft_policy,
        threshold=threshold,
        head=str(head) if head else None,
        temperature=temperature,
        max_tokens=renamed(max_new_tokens, old_max_tokens),
        limit=limit,
        k_demos=k_demos,
        system_prompt=_system_prompt(system_prompt),
        seed=seed,
        device=device,
        dtype=checked_dtype(dtype),
        threads=threads,
        assisted=assisted,
    )
    from toolbench.pipelines.evaluate import select_tasks

    prompts = select_tasks(prompt_config(config))
    with _progress() as progress:  # one advance per prompt: target, speculative (and assisted) runs
        bar = progress.add_task("spec", total=len(prompts))
        summary = run_spec(config, out, lambda: progress.advance(bar))
    overall = summary.overall
    title = f"{draft_policy}, γ = {policy.max_draft}" + (
        f", threshold {policy.threshold:g}" if hasattr(policy, "threshold") else ""
    )
    console.print(rich_table(*console_rows(summary), title=title, no_wrap_first=True))
    console.print(
        "α by token class: " + ", ".join(f"{k}={v.alpha:.3f}" for k, v in overall.by_class.items()),
        highlight=False,
    )
    line = f"tokens/s: target {overall.target_tokens_per_s:.1f}, speculative {overall.spec_tokens_per_s:.1f}"
    if overall.assisted_tokens_per_s is not None:
        line += f", HF assisted {overall.assisted_tokens_per_s:.1f}"
    if overall.spec_equal_target:
        line += f"; greedy output equal to target: {overall.spec_equal_target}"
    console.print(line, highlight=False)
    console.print(f"results in {out}", highlight=False)


# ------------------------------------------------------------------ report


@app.command()
def report(
    run_dir: Annotated[
        Path,
        typer.Argument(
            metavar="RUN_DIR",
            help="A run folder: `toolbench demo --out`, or any folder holding eval, spec or training results.",
        ),
    ],
) -> None:
    """Write RUN_DIR/report.md and a self-contained RUN_DIR/report.html (plots inlined, no scripts).

    Results are found by what they are, wherever they sit in the folder: eval summaries (success
    per tool by setting; a model named random/untrained/floor is the floor), spec summaries (α by
    tool and token class, acceptance by draft position, speedup; folders named before/after are
    compared), train_log.jsonl of every trained model (loss curves), alpha.json, grid.json,
    demo.json (step timings) and every run record. The PNGs also land in RUN_DIR/report/.
    It reads results and rewrites only the report, so rerun it any time. Example:

        toolbench report runs/demo
    """
    from toolbench.app.report import build_report

    checked_folder(run_dir, "RUN_DIR")
    md, html = build_report(run_dir)
    console.print(f"wrote {md}\nwrote {html}", highlight=False, soft_wrap=True)


# -------------------------------------------------------------------- demo


@app.command()
def demo(
    out: Annotated[
        Path, typer.Option(help="Run folder; rerun to resume, finished steps are skipped.")
    ] = Path("runs/demo"),
    preset: Annotated[
        str,
        typer.Option(
            help="quick (fits 15 minutes on 2 cores) or full (`train target` sizes, all 120 test tasks per tool)."
        ),
    ] = "quick",
    cache_dir: CacheDir = None,
) -> None:
    """The whole product on the embedded default, from templates to a distilled draft.

    Generates training data from templates, checks the scorer on gold and corrupted replays, trains
    a tokenizer, a generic draft and a target, measures the target's tool success rate (k = 0/3
    demos, system prompt on/off, against an untrained model), distills the generic draft into a
    function-calling draft, times speculative decoding before and after, and writes
    OUT/report.html. Steps whose output exists are skipped; training resumes from checkpoints.
    """
    from toolbench.app.demo import PRESETS, run_demo

    if preset not in PRESETS:
        raise UserError(f"--preset must be one of {', '.join(PRESETS)}; got {preset!r}")
    output_folder(out)
    if cache_dir is not None:
        output_folder(cache_dir, "--cache-dir")
    run_demo(out, console, preset, cache_dir=cache_dir)


if __name__ == "__main__":
    main()
