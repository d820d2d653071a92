"""Task files: load them (every record checked), find each tool's frozen ones, verify their gold
labels by scoring them. Making task files runs the generator, so it is a pipeline
(`toolbench.pipelines.tasks`); everything that only reads them is here, below the pipelines that
read them (results, evaluate, distill's scenarios)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from toolbench.core.episode import is_environment
from toolbench.core.registry import get_tool, spec_index, tool_names
from toolbench.core.score import Scorer, flatten_state
from toolbench.foundation.errors import UserError
from toolbench.foundation.io import describe_validation_error, iter_jsonl
from toolbench.foundation.records import Sample, Task

SAMPLE_ONLY = frozenset(Sample.model_fields) - frozenset(Task.model_fields)
# The two frozen task sets of every tool. `test`: requests from the held-out templates, which no
# training data ever uses (can a model *generalise* to unseen phrasings and function sets?).
# `indist`: requests from the training templates with new slot values, kept out of the embedded
# target's training data (can it *copy* values into calls it has seen the shape of?). A model at
# 0% on both cannot copy; one high on indist and low on test cannot generalise.
TASK_SETS = ("test", "indist")


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


def tool_task_files(task_set: str = "test") -> dict[str, Path]:
    """Each registered tool's frozen file of `task_set`, where it has one."""
    paths = {name: get_tool(name).tasks_file(task_set) for name in tool_names()}
    return {name: path for name, path in paths.items() if path.exists()}


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
