"""Task files: load them (checked), build frozen ones from held-out templates, verify them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
from pydantic import ValidationError

from toolbench.episode import is_environment
from toolbench.errors import UserError
from toolbench.generate.engine import GenerateConfig, SampleFactory, normalise_query
from toolbench.io import describe_validation_error, iter_jsonl
from toolbench.records import Sample, Task
from toolbench.registry import get_tool, spec_index, tool_names
from toolbench.score import Scorer, flatten_state

SAMPLE_ONLY = frozenset(Sample.model_fields) - frozenset(Task.model_fields)
MAX_TASKS = 100_000  # `tasks make --n` at most: a test set, not a training set (`generate` makes those)
# The cross-tool category files, frozen in `tools/categories/<name>.jsonl` (built by
# `toolbench.categories`, which imports this module: where they live is stated here, once).
CATEGORIES = ("multi_tool", "parallel", "relevance")


@dataclass
class NumberedTask:
    line: int
    task: Task


def load_tasks(path: str | Path) -> list[NumberedTask]:
    """Every task of a file, validated: record shape, unique ids, known tools, routable names."""
    path = Path(path)
    tasks: list[NumberedTask] = []
    seen: dict[str, int] = {}
    for number, value in iter_jsonl(path):
        # a generated sample is a task plus its rendering: sample files serve as task files too
        model = Sample if isinstance(value, dict) and SAMPLE_ONLY.intersection(value) else Task
        try:
            task = model.model_validate(value)
        except ValidationError as error:
            raise UserError(f"{path}:{number}: not a task: {describe_validation_error(error)}") from None
        if task.id in seen:
            raise UserError(f"{path}:{number}: task id '{task.id}' already used on line {seen[task.id]}")
        seen[task.id] = number
        if task.functions is not None:  # its own functions (BFCL's): no registered tool to check
            tasks.append(NumberedTask(number, task))
            continue
        try:
            spec_index(tuple(task.offered_tools))
        except UserError as error:
            raise UserError(f"{path}:{number}: {error}") from None
        except ValueError as error:
            raise UserError(f"{path}:{number}: offered tools clash: {error}") from None
        environments = [name for name in task.offered_tools if is_environment(name)]
        if (task.category == "episode") != bool(environments) or len(environments) > 1:
            raise UserError(
                f"{path}:{number}: field 'category': an episode task offers exactly one environment tool "
                f"and only episode tasks offer one (category {task.category!r}, environments: "
                f"{', '.join(environments) or 'none'})"
            )
        tasks.append(NumberedTask(number, task))
    if not tasks:
        raise UserError(f"{path}: no tasks in file")
    return tasks


# The two frozen task sets of every tool. `test`: requests from the held-out templates, which no
# training data ever uses (can a model *generalise* to unseen phrasings and function sets?).
# `indist`: requests from the training templates with new slot values, kept out of the embedded
# target's training data (can it *copy* values into calls it has seen the shape of?). A model at
# 0% on both cannot copy; one high on indist and low on test cannot generalise.
TASK_SETS = ("test", "indist")
TASK_SET_SPLIT = {"test": "test", "indist": "train"}  # the templates each set is made from
TASK_SET_SEED = {"test": 20231101, "indist": 20261206}


def tool_task_files(task_set: str = "test") -> dict[str, Path]:
    """Each registered tool's frozen file of `task_set`, where it has one."""
    paths = {name: get_tool(name).tasks_file(task_set) for name in tool_names()}
    return {name: path for name, path in paths.items() if path.exists()}


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


@dataclass
class LabelProblem:
    where: str
    message: str


def verify_tasks(path: str | Path) -> tuple[int, int, list[LabelProblem]]:
    """Run every gold label through the scorer against its own task: each must succeed with
    state F1 = 1 (an episode's gold trajectory is replayed step by step and must reach reward 1),
    and all labels of a task must reach the same state. A task that carries its own functions
    (BFCL's) has no state: its labels must pass its AST checker. Returns (tasks, labels, problems)."""
    scorer = Scorer()
    problems: list[LabelProblem] = []
    n_labels = 0
    tasks = load_tasks(path)
    for numbered in tasks:
        task = numbered.task
        states = []
        for k, label in enumerate(task.labels):
            n_labels += 1
            score = scorer.score(task, label)
            where = f"{path}:{numbered.line}: task '{task.id}' label {k + 1}"
            if not score.success or score.state_f1 != 1.0:
                detail = score.errors[0].message if score.errors else f"state F1 {score.state_f1:.3f}"
                problems.append(LabelProblem(where, f"{score.error_type}: {detail}"))
            if task.functions is None:  # a task with its own functions has no state to compare
                states.append(flatten_state(scorer.gold(task)[k].execution.state))
        # Labels of a goal task may end in different worlds; each only has to reach the goal (checked above).
        if task.goal is None and any(state != states[0] for state in states[1:]):
            problems.append(
                LabelProblem(
                    f"{path}:{numbered.line}: task '{task.id}'",
                    "labels disagree: they reach different states",
                )
            )
    return len(tasks), n_labels, problems
