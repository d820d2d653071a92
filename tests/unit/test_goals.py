"""Goal predicates: operators on paths into the state, and scoring by goal instead of gold state."""

from __future__ import annotations

import pytest

from toolbench.core.calls import PythonFormat
from toolbench.core.score import Scorer
from toolbench.foundation.goals import Predicate, holds, unmet
from toolbench.foundation.records import Task
from toolbench.tools.home_search import HomeSearch

STATE = {"w": {"on": {"red block": "blue bowl", "cube": None}, "said": ["done", "hi"], "n": 3}}


@pytest.mark.parametrize(
    ("predicate", "expected"),
    [
        ({"path": "w.on.red block", "value": "blue bowl"}, True),
        ({"path": "w.on.red block", "op": "ne", "value": "blue bowl"}, False),
        ({"path": "w.n", "op": "in", "value": [1, 2, 3]}, True),
        ({"path": "w.said", "op": "contains", "value": "hi"}, True),
        ({"path": "w.said", "op": "contains", "value": "bye"}, False),
        ({"path": "w.on.green block", "op": "exists"}, False),
        ({"path": "w.on.green block", "op": "absent"}, True),
        ({"path": "w.on.cube", "op": "absent"}, True),
        ({"path": "w.on.green block", "value": None}, False),  # a missing path fails eq, even with null
        ({"path": "w.n.deeper", "value": 3}, False),
    ],
)
def test_operators(predicate, expected):
    assert holds(Predicate.model_validate(predicate), STATE) is expected


PY = PythonFormat(HomeSearch.format_context())
GOLD = 'API.set_location("Reno, NV")\nAPI.set_buy_or_rent("rent")\nAPI.set_num_beds(2)\nAPI.search()'
GOAL = [
    {"path": "home_search.criteria.location", "value": "reno, nv"},
    {"path": "home_search.criteria.num_beds", "op": "in", "value": [2, 3]},
    {"path": "home_search.searched", "value": True},
]
TASK = Task(id="g", tool="home_search", query="2+ bed rentals in Reno", labels=[PY.parse(GOLD)], goal=GOAL)


def test_a_goal_task_accepts_any_program_reaching_the_goal():
    other = PY.parse(GOLD.replace("set_num_beds(2)", "set_num_beds(3)"))  # another state, same goal
    result = Scorer().score(TASK, other)
    assert result.success and result.goal_satisfied and result.state_f1 < 1.0


def test_a_missed_goal_names_the_failing_predicates():
    result = Scorer().score(TASK, PY.parse(GOLD.replace("set_num_beds(2)", "set_num_beds(1)")))
    assert not result.success and result.goal_satisfied is False and result.error_type == "goal:unmet"
    assert "home_search.criteria.num_beds in [2, 3]" in result.errors[0].message
    assert len(unmet([Predicate.model_validate(p) for p in GOAL], {})) == 3


def test_execution_errors_come_before_goals():
    result = Scorer().score(TASK, PY.parse("API.set_num_beds(2)"))
    assert result.error_type == "home_search:order" and result.goal_satisfied is False


def test_verify_accepts_goal_labels_that_end_in_different_worlds(tmp_path):
    from toolbench.core.task_files import verify_tasks
    from toolbench.foundation.io import write_jsonl

    two_ways = TASK.model_copy(update={"labels": [PY.parse(GOLD), PY.parse(GOLD.replace("(2)", "(3)"))]})
    write_jsonl(tmp_path / "t.jsonl", [two_ways])
    assert verify_tasks(tmp_path / "t.jsonl")[2] == []
    plain = two_ways.model_copy(update={"goal": None})
    write_jsonl(tmp_path / "p.jsonl", [plain])
    assert [p.message for p in verify_tasks(tmp_path / "p.jsonl")[2]] == [
        "labels disagree: they reach different states"
    ]


def test_a_refused_setup_is_an_execution_error():
    from toolbench.core.executor import execute
    from toolbench.foundation.records import Program

    result = execute(Program([]), ["home_search"], {"home_search": {"criteria": 5}})
    assert [e.error_type for e in result.errors] == ["exec:setup"]
