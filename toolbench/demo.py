"""`toolbench demo`: each step writes into the run folder and is skipped when its output exists."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from toolbench.errors import UserError
from toolbench.generate import GenerateConfig, generate
from toolbench.io import write_jsonl
from toolbench.registry import get_tool
from toolbench.replay import corrupt_predictions, gold_predictions
from toolbench.results import score_files
from toolbench.tasks import load_tasks, verify_tasks

DEMO_TOOLS = ["home_search"]


def _step(console: Console, name: str, output: Path, run: Callable[[], None]) -> None:
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
    _step(
        console,
        "generate 5,000 samples from templates",
        data,
        lambda: generate(GenerateConfig(tools=DEMO_TOOLS, n=5000, seed=0), data),
    )
    for tool in DEMO_TOOLS:
        tasks_path = get_tool(tool).tasks_file()
        n_tasks, n_labels, problems = verify_tasks(tasks_path)
        if problems:
            raise UserError(
                f"{tasks_path}: {len(problems)} gold labels fail; run `toolbench tasks verify` for details"
            )
        console.print(
            f"[green]✓[/] verified {tasks_path.name} of {tool}: {n_tasks} tasks, {n_labels} labels",
            highlight=False,
        )
        tasks = [numbered.task for numbered in load_tasks(tasks_path)]
        for name, make in (("gold", gold_predictions), ("corrupted", corrupt_predictions)):
            predictions = out / f"{tool}.{name}.predictions.jsonl"
            _step(
                console,
                f"{name} replay of {tool}",
                predictions,
                lambda p=predictions, m=make, t=tasks: write_jsonl(p, m(t)),
            )
            _, summary = score_files(tasks_path, predictions, "python", out / f"{tool}.{name}")
            print_summary(summary, title=f"{tool}: {name} replay")
