"""The two frozen task sets: `test` (held-out templates) and `indist` (training templates, new
values), and the embedded target's training data kept clear of both."""

from __future__ import annotations

import orjson
import pytest

from toolbench.core.registry import get_tool, tool_names
from toolbench.core.task_files import load_tasks, tool_task_files
from toolbench.core.templating import TemplateSet, normalise_query
from toolbench.distill.training.align import drop_held_requests
from toolbench.foundation.errors import UserError
from toolbench.pipelines.evaluate import EvalConfig, select_tasks
from toolbench.pipelines.tasks import TASK_SET_SEED, held_queries, make_tasks


def _split_of_templates(tool: str) -> dict[str, str]:
    return {e.entry.id: e.entry.split for e in TemplateSet(tool, get_tool(tool).templates_dir()).entries}


@pytest.mark.parametrize("tool", tool_names())
def test_every_tool_ships_both_sets_from_the_right_templates(tool):
    splits = _split_of_templates(tool)
    for task_set, split in (("test", "test"), ("indist", "train")):
        tasks = [n.task for n in load_tasks(get_tool(tool).tasks_file(task_set))]
        assert len(tasks) == 120
        assert {splits[t.meta["template"]] for t in tasks} == {split}, task_set
        assert all(t.id.startswith(f"{tool}-{task_set}-") for t in tasks)


@pytest.mark.parametrize("tool", sorted(tool_task_files("indist")))
def test_the_frozen_indist_file_is_what_tasks_make_builds(tool):
    """A change to a tool's training templates changes its `indist` set: remake the file with
    `toolbench tasks make --tool TOOL --task-set indist --n 120 --seed 20261206`."""
    frozen = [n.task for n in load_tasks(get_tool(tool).tasks_file("indist"))]
    assert make_tasks(tool, 120, TASK_SET_SEED["indist"], task_set="indist") == frozen


def test_indist_requests_are_new_to_each_other_and_to_the_test_set():
    for tool in ("weather", "home_search"):
        indist = {normalise_query(n.task.query) for n in load_tasks(get_tool(tool).tasks_file("indist"))}
        test = {normalise_query(n.task.query) for n in load_tasks(get_tool(tool).tasks_file("test"))}
        assert len(indist) == 120 and not indist & test


def test_training_data_drops_requests_of_either_frozen_set(tmp_path):
    held_task = load_tasks(get_tool("weather").tasks_file("indist"))[5].task
    rows = [
        {"query": held_task.query.upper() + "  ", "tool": "weather"},  # the same request, normalised
        {"query": "What is the weather in a city no frozen task names?", "tool": "weather"},
    ]
    source, out = tmp_path / "raw.jsonl", tmp_path / "kept.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    assert drop_held_requests(source, out, ["weather"]) == 1
    assert [orjson.loads(line)["query"] for line in out.read_bytes().splitlines()] == [rows[1]["query"]]
    assert normalise_query(held_task.query) in held_queries(["weather"])
    assert normalise_query(held_task.query) not in held_queries(["cat_api"])


def test_eval_selects_the_asked_set_and_refuses_categories_for_indist():
    indist = select_tasks(EvalConfig(model="replay:x", tools=["weather"], task_set="indist"))
    test = select_tasks(EvalConfig(model="replay:x", tools=["weather"]))
    assert indist[0].id == "weather-indist-0000" and test[0].id == "weather-test-0000"
    with pytest.raises(UserError, match="categories have held-out tasks only"):
        select_tasks(EvalConfig(model="replay:x", tools=["weather", "parallel"], task_set="indist"))
