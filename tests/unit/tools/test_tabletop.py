"""tabletop: rules and their error types, setup and default scene, deterministic state, and goal
scoring (success is the goal holding, not equality with one gold state)."""

from __future__ import annotations

import pytest

from toolbench.core.calls import PythonFormat
from toolbench.core.executor import execute
from toolbench.core.score import Scorer
from toolbench.foundation.errors import ToolError
from toolbench.foundation.records import Task
from toolbench.tools.tabletop import POSITIONS, TOOL, Tabletop

PY = PythonFormat(TOOL.format_context())
SCENE = {
    "blocks": ["red", "green", "blue"],
    "bowls": ["red", "yellow"],
    "place": [["green block", "middle"], ["blue block", "green block"]],
}


def run(text: str, setup: dict | None = None):
    return execute(PY.parse(text), ["tabletop"], {"tabletop": setup} if setup is not None else None)


def state(text: str, setup: dict | None = None) -> dict:
    result = run(text, setup)
    assert result.ok, result.errors
    return result.state["tabletop"]


# ---------------------------------------------------------------------------- scenes


def test_default_scene_without_setup():
    assert Tabletop().state() == {
        "on": {
            "red bowl": "top left corner",
            "green bowl": "top right corner",
            "blue bowl": "bottom left corner",
            "red block": "bottom right corner",
            "green block": "middle",
            "blue block": "top side",
        },
        "said": [],
    }


def test_setup_places_rows_and_fills_free_positions_in_order():
    sim = Tabletop(SCENE)
    assert sim.state()["on"] == {
        "red bowl": "top left corner",
        "yellow bowl": "top right corner",
        "red block": "bottom left corner",
        "green block": "middle",
        "blue block": "green block",
    }
    assert sim.get_obj_names() == ["red bowl", "yellow bowl", "red block", "green block", "blue block"]
    assert sim.get_obj_pos("Blue  Block") == {
        "object": "blue block",
        "on": "green block",
        "position": "middle",
        "height": 1,
    }


@pytest.mark.parametrize(
    "setup",
    [
        {"blocks": ["red", "red"]},
        {"blocks": ["red"], "place": [["green block", "middle"]]},
        {"blocks": ["red"], "place": [["red block", "shelf"]]},
    ],
)
def test_bad_setup_is_a_template_bug(setup):
    with pytest.raises(ValueError, match="tabletop setup"):
        Tabletop(setup)


def test_state_is_deterministic_and_json_plain():
    program = 'API.put_first_on_second("red block", "yellow bowl")\nAPI.say("ok")'
    first, second = state(program, SCENE), state(program, SCENE)
    assert first == second
    assert first["on"]["red block"] == "yellow bowl" and first["said"] == ["ok"]
    assert all(type(k) is str and type(v) is str for k, v in first["on"].items())


# ----------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    ("text", "error_type", "fragment"),
    [
        ('API.put_first_on_second("purple block", "red bowl")', "tabletop:not_found", "'purple block'"),
        ('API.put_first_on_second("red block", "shelf")', "tabletop:not_found", "'shelf'"),
        ('API.put_first_on_second("red block", "top middle")', "tabletop:not_found", "table position"),
        ('API.get_obj_pos("cyan bowl")', "tabletop:not_found", "'cyan bowl'"),
        ('API.stack_objects(["red block", "pink block"])', "tabletop:not_found", "'pink block'"),
        ('API.put_first_on_second("red bowl", "red block")', "tabletop:invalid", "bowl goes on a table"),
        ('API.put_first_on_second("red bowl", "yellow bowl")', "tabletop:invalid", "bowl goes on a table"),
        ('API.put_first_on_second("red block", "red block")', "tabletop:invalid", "on itself"),
        ('API.stack_objects(["red block", "red block"])', "tabletop:invalid", "same object twice"),
        ('API.put_first_on_second("green block", "red bowl")', "tabletop:blocked", "blue block is on top"),
        ('API.put_first_on_second("red block", "green block")', "tabletop:blocked", "already on it"),
        (
            'API.put_first_on_second("red block", "red bowl")\nAPI.put_first_on_second("red bowl", "middle")',
            "tabletop:blocked",
            "red block is on top",
        ),
        ('API.stack_objects(["red block"])', "schema:minItems", "is too short"),
        ('API.say("")', "schema:minLength", "should be non-empty"),
        ('API.put_first_on_second("red block")', "schema:required", "'obj2' is a required property"),
        ("API.get_obj_pos(obj=3)", "schema:type", "3 is not of type 'string'"),
    ],
)
def test_rules_give_exact_error_types(text, error_type, fragment):
    program = PY.parse(text)
    result = execute(program, ["tabletop"], {"tabletop": SCENE})
    assert [e.error_type for e in result.errors] == [error_type]
    assert fragment in result.errors[0].message
    assert result.errors[0].call_index == len(program) - 1


def test_allowed_moves():
    after = state(
        'API.put_first_on_second("blue block", "red bowl")\n'
        'API.put_first_on_second("red block", "red bowl")\n'  # a bowl holds several blocks
        'API.put_first_on_second("yellow bowl", "middle")\n'  # positions are not exclusive
        'API.put_first_on_second("red block", "red bowl")',  # putting it where it is: no-op
        SCENE,
    )
    assert after["on"] == {
        **Tabletop(SCENE).state()["on"],
        **{
            "blue block": "red bowl",
            "red block": "red bowl",
            "yellow bowl": "middle",
        },
    }


def test_stack_objects_is_put_chain_and_atomic():
    chain = 'API.put_first_on_second("green block", "red block")\nAPI.put_first_on_second("blue block", "green block")'
    setup = {"blocks": ["red", "green", "blue"]}
    assert state('API.stack_objects(["red block", "green block", "blue block"])', setup) == state(
        chain, setup
    )
    sim = Tabletop(SCENE)  # the blue block moves onto the red one, then the bowl fails: no change
    with pytest.raises(ToolError, match="bowl goes on a table"):
        sim.stack_objects(["red block", "blue block", "red bowl"])
    assert sim.state() == Tabletop(SCENE).state()


def test_functions_and_positions():
    assert sorted(TOOL.specs) == [
        "get_obj_names",
        "get_obj_pos",
        "put_first_on_second",
        "say",
        "stack_objects",
    ]
    assert len(POSITIONS) == 9 and "top left corner" in POSITIONS


# ---------------------------------------------------------------------------- scorer

SORT_SETUP = {"tabletop": {"blocks": ["red", "blue"], "bowls": ["blue", "red"]}}
GOLD = 'API.put_first_on_second("red block", "red bowl")\nAPI.put_first_on_second("blue block", "blue bowl")\nAPI.say("Done.")'
TASK = Task.model_validate(
    {
        "id": "tabletop-t1",
        "tool": "tabletop",
        "category": "multi_call",
        "query": 'Put every block in the bowl of its colour (red and blue), then say "Done."',
        "labels": [PY.parse(GOLD)],
        "setup": SORT_SETUP,
        "goal": [
            {"path": "tabletop.on.red block", "op": "eq", "value": "red bowl"},
            {"path": "tabletop.on.blue block", "op": "eq", "value": "blue bowl"},
            {"path": "tabletop.said", "op": "contains", "value": "Done."},
        ],
    }
)


def score(text: str):
    return Scorer().score(TASK, PY.parse(text))


def test_gold_succeeds():
    result = score(GOLD)
    assert result.success and result.goal_satisfied and result.ast_match and result.state_f1 == 1.0


def test_other_order_reaching_the_goal_succeeds():
    other = (
        'API.say("Done.")\nAPI.get_obj_names()\n'
        'API.put_first_on_second("blue block", "blue bowl")\nAPI.put_first_on_second("red block", "red bowl")'
    )
    result = score(other)
    assert result.success and result.goal_satisfied is True and not result.ast_match


def test_wrong_placement_is_goal_unmet():
    result = score(GOLD.replace('"red block", "red bowl"', '"red block", "blue bowl"'))
    assert not result.success and result.goal_satisfied is False
    assert result.error_type == "goal:unmet"
    assert "tabletop.on.red block eq 'red bowl'" in result.errors[0].message


def test_unknown_object_and_schema_violation():
    missing = score(GOLD.replace('"red block", "red bowl"', '"red cube", "red bowl"'))
    assert not missing.success and missing.error_type == "tabletop:not_found"
    bad = score('API.stack_objects("red block")')
    assert not bad.success and bad.error_type == "schema:type"
    extra = score('API.say(message="Done.", volume=3)')
    assert not extra.success and extra.error_type == "schema:additionalProperties"
