"""Making frozen task files: the generator's pipeline on a tool's held-out templates (`test`) or
its training templates with new values (`indist`); the requests they hold, which training data
leaves out; where the cross-tool category files live. Loading and verifying task files is core
(`toolbench.core.task_files`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson

from toolbench.core.task_files import SAMPLE_ONLY, TASK_SETS, load_tasks, tool_task_files
from toolbench.core.templating import normalise_query
from toolbench.foundation.errors import UserError
from toolbench.foundation.records import Task
from toolbench.pipelines.generate.engine import GenerateConfig, SampleFactory

MAX_TASKS = 100_000  # `tasks make --n` at most: a test set, not a training set (`generate` makes those)
# The cross-tool category files, frozen in `tools/categories/<name>.jsonl` (built by
# `toolbench.pipelines.categories`, which imports this module: where they live is stated here, once).
CATEGORIES = ("multi_tool", "parallel", "relevance")
TASK_SET_SPLIT = {"test": "test", "indist": "train"}  # the templates each set is made from
TASK_SET_SEED = {"test": 20231101, "indist": 20261206}


def held_queries(tools: list[str]) -> set[str]:
    """Normalised requests of the frozen task files of `tools` (both sets): training data for the
    embedded target drops samples with these requests, so `indist` stays "new values"."""
    queries: set[str] = set()
    for task_set in TASK_SETS:
        for name, path in tool_task_files(task_set).items():
            if name in tools:
                queries.update(normalise_query(n.task.query) for n in load_tasks(path))
    return queries


def categories_dir() -> Path:
    import toolbench.tools

    return Path(toolbench.tools.__path__[0]) / "categories"


def category_task_files() -> list[Path]:
    folder = categories_dir()
    return [folder / f"{name}.jsonl" for name in CATEGORIES if (folder / f"{name}.jsonl").exists()]


def builtin_task_files() -> list[Path]:
    """Every tool's frozen test file and the cross-tool category files (shown relative to the
    working folder if inside it)."""
    paths = [*tool_task_files("test").values(), *tool_task_files("indist").values(), *category_task_files()]
    return [path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path for path in paths]


STALLED_AFTER = 5_000  # candidates in a row without a new task: the held-out templates ran dry
_CHUNK = 500


def make_tasks(
    tool: str,
    n: int,
    seed: int,
    on_progress: Callable[[int, int], None] | None = None,
    task_set: str = "test",
) -> list[Task]:
    """Tasks of `task_set` (see TASK_SETS): the generator's pipeline on the tool's held-out
    templates (`test`) or its training templates (`indist`), deduped; ids `<tool>-<set>-NNNN`.

    Bounded: when STALLED_AFTER candidates in a row give no new task, the templates cannot give
    `n` distinct ones and the run stops with a UserError saying how many they gave, instead of
    searching on for minutes. `on_progress(tasks, candidates)` is called after every chunk."""
    if not 1 <= n <= MAX_TASKS:
        raise UserError(f"--n {n}: a task file holds 1 to {MAX_TASKS:,} tasks")
    if task_set not in TASK_SETS:
        raise UserError(f"--task-set {task_set!r}: known sets are {', '.join(TASK_SETS)}")
    split = TASK_SET_SPLIT[task_set]
    factory = SampleFactory(GenerateConfig(tools=[tool], n=n, seed=seed, split=split))
    tasks: list[Task] = []
    seen: set[bytes] = set()
    index = since_new = 0
    while len(tasks) < n:
        # the factory rejects a request already in `seen` before making its program (same tasks as
        # making every candidate: each has its own RNG)
        for candidate in factory.make_range(index, _CHUNK, seen):
            index = candidate.index + 1
            since_new += 1
            if candidate.line is None or candidate.key in seen:
                continue
            seen.add(candidate.key)  # type: ignore[arg-type]
            since_new = 0
            record = orjson.loads(candidate.line)
            for key in SAMPLE_ONLY:
                record.pop(key, None)
            record["id"] = f"{tool}-{task_set}-{len(tasks):04d}"
            tasks.append(Task.model_validate(record))
            if len(tasks) == n:
                break
        if on_progress is not None:
            on_progress(len(tasks), index)
        if len(tasks) < n and since_new >= STALLED_AFTER:
            raise UserError(
                f"{tool}: the {split}-split templates gave only {len(tasks)} distinct tasks in {index:,} candidates "
                f"(none new in the last {since_new:,}); ask for --n {len(tasks)} or fewer"
            )
    return tasks
