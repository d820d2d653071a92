"""Predictions made from gold labels: a perfect replay (the scorer must give 100%) and a
deterministically corrupted one (the scorer must give exactly the expected lower figures).
Used by the demo and the tests to show the scorer measures what it claims."""

from __future__ import annotations

from typing import Any

from toolbench.core.registry import task_formatter
from toolbench.foundation.records import Call, Prediction, Program, Task

# Cycled over the tasks in file order: a quarter of each.
CORRUPTIONS = ("intact", "wrong_value", "missing_call", "syntax")


def _formatter(task: Task, fmt: str):
    return task_formatter(task, fmt)  # a task's own functions (BFCL's) or its tools'


def gold_predictions(tasks: list[Task], fmt: str = "python") -> list[Prediction]:
    return [Prediction(id=task.id, text=_formatter(task, fmt).render(task.labels[0])) for task in tasks]


def _change_one_value(program: Program) -> Program:
    """Change the first string argument (else the first number) so the state must differ."""
    calls = [Call(name=c.name, arguments=dict(c.arguments)) for c in program]
    for kinds, change in (((str,), lambda v: v + " Springs"), ((int, float), lambda v: v + 1)):
        for call in calls:
            for key, value in call.arguments.items():
                if isinstance(value, kinds) and not isinstance(value, bool):
                    call.arguments[key] = change(value)
                    return Program(calls)
    return Program(calls[:-1])


def corrupt_predictions(tasks: list[Task], fmt: str = "python") -> list[Prediction]:
    predictions = []
    for i, task in enumerate(tasks):
        kind = CORRUPTIONS[i % len(CORRUPTIONS)]
        formatter = _formatter(task, fmt)
        label = task.labels[0]
        text: Any
        if kind == "intact":
            text = formatter.render(label)
        elif kind == "wrong_value":
            text = formatter.render(_change_one_value(label))
        elif kind == "missing_call":
            text = formatter.render(Program(list(label)[:-1]))
        else:
            text = formatter.render(label)[:-1]
        predictions.append(Prediction(id=task.id, text=text, meta={"corruption": kind}))
    return predictions
