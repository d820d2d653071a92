"""`toolbench demo`: each step writes into the run folder and is skipped when its output exists."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from toolbench.errors import UserError
from toolbench.export import export_file, export_path
from toolbench.generate import GenerateConfig, generate
from toolbench.io import write_jsonl
from toolbench.registry import tool_names
from toolbench.replay import corrupt_predictions, gold_predictions
from toolbench.results import score_files
from toolbench.tasks import builtin_task_files, load_tasks, verify_tasks


def _step(console: Console, name: str, output: Path, run: Callable[[], object]) -> None:
    if output.exists():
        console.print(f"[dim]· {name}: {output} exists, skipped[/]", highlight=False)
        return
    started = time.perf_counter()
    run()
    console.print(f"[green]✓[/] {name} ({time.perf_counter() - started:.1f} s)", highlight=False)


def run_demo(out: Path, console: Console) -> None:
    from toolbench.cli import print_summary

    out.mkdir(parents=True, exist_ok=True)
    data = out / "data.jsonl"
    config = GenerateConfig(tools=tool_names(), n=10_000, seed=0, distractors=1, relevance=0.05)
    _step(
        console,
        f"generate 10,000 samples over {len(config.tools)} tools",
        data,
        lambda: generate(config, data),
    )
    openai = export_path(data, "openai")
    _step(
        console,
        "export the train split in the OpenAI fine-tuning format",
        openai,
        lambda: export_file(data, openai, "openai", split="train", multi_turn=True),
    )

    task_files = builtin_task_files()
    for path in task_files:
        n_tasks, n_labels, problems = verify_tasks(path)
        if problems:
            raise UserError(
                f"{path}: {len(problems)} gold labels fail; run `toolbench tasks verify` for details"
            )
    console.print(
        f"[green]✓[/] verified {len(task_files)} frozen task files: every gold label scores 1.0",
        highlight=False,
    )

    tasks_path = out / "tasks.jsonl"
    tasks = [numbered.task for path in task_files for numbered in load_tasks(path)]
    _step(console, f"collect {len(tasks)} test tasks", tasks_path, lambda: write_jsonl(tasks_path, tasks))
    for name, make in (("gold", gold_predictions), ("corrupted", corrupt_predictions)):
        predictions = out / f"{name}.predictions.jsonl"
        _step(console, f"{name} replay", predictions, lambda p=predictions, m=make: write_jsonl(p, m(tasks)))
        _, summary = score_files(tasks_path, predictions, "python", out / name)
        print_summary(summary, title=f"{name} replay of the gold labels")
    console.print(
        "The corrupted replay keeps 1 of every 4 answers intact and breaks the others (a wrong value, a "
        "missing call, a cut-off text); tasks whose right answer is no call stay right when emptied, and a "
        "webshop search query with one extra word still finds the product.",
        highlight=False,
    )
