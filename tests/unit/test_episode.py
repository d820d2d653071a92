"""The episode core: trajectory files, replay policies, step limits and how episodes are scored
and summarised (the environment here is webshop; the rules live in toolbench.core.episode)."""

from __future__ import annotations

import json

import pytest

from tests.unit.tools.test_webshop import GOLD, PY, TASK
from toolbench.core.episode import ReplayPolicy, load_trajectories, run_episode, single_shot_tools
from toolbench.core.registry import tool_names
from toolbench.core.score import Scorer, summarize
from toolbench.foundation.errors import UserError
from toolbench.pipelines.results import score_files


def test_trajectory_file_replays_by_task_id(tmp_path):
    path = tmp_path / "trajectories.jsonl"
    calls = [c.model_dump() for c in PY.parse(GOLD)]
    path.write_text(
        json.dumps({"id": TASK.id, "calls": calls}) + "\n\n" + json.dumps({"id": "other", "calls": []}) + "\n"
    )
    policies = load_trajectories(path)
    assert sorted(policies) == ["other", TASK.id]
    result = run_episode(TASK.offered_tools, TASK.setup, policies[TASK.id], TASK.query)
    assert result.success and result.actions == list(PY.parse(GOLD))
    stopped = run_episode(TASK.offered_tools, TASK.setup, policies["other"])
    assert stopped.end == "stopped" and stopped.trajectory == [] and stopped.reward == 0.0


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([{"id": "a", "text": "API.buy()"}], ":1: field 'calls' is missing"),
        ([{"id": "a", "calls": []}, {"id": "a", "calls": []}], ":2: task id 'a' has a trajectory already"),
        ([{"calls": []}], ":1: not a trajectory"),
    ],
)
def test_bad_trajectory_files_name_the_line(tmp_path, lines, message):
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(UserError, match=message):
        load_trajectories(path)


def test_a_shorter_step_limit():
    result = run_episode(TASK.offered_tools, TASK.setup, ReplayPolicy(PY.parse(GOLD)), max_steps=3)
    assert result.end == "step_limit" and len(result.trajectory) == 3
    assert [e.error_type for e in result.errors] == ["episode:step_limit"]


def test_score_file_of_trajectories_reports_reward_per_tool(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    wrong = TASK.model_copy(update={"id": "webshop-t2"})
    tasks.write_text(TASK.model_dump_json() + "\n" + wrong.model_dump_json() + "\n")
    predictions = tmp_path / "p.jsonl"
    predictions.write_text(
        json.dumps({"id": TASK.id, "text": GOLD})
        + "\n"
        + json.dumps({"id": "webshop-t2", "text": GOLD.replace('"size", "12"', '"size", "9"')})
        + "\n"
    )
    scores, summary = score_files(tasks, predictions, "python", tmp_path / "out")
    assert [s.reward for s in scores] == [1.0, pytest.approx(0.8)]
    webshop = summary.per_tool["webshop"]
    assert webshop.success == 0.5 and webshop.reward == pytest.approx(0.9)
    assert webshop.error_types == {"episode:reward": 1} and webshop.tool_error_rate == 0.0
    stored = [json.loads(line) for line in (tmp_path / "out" / "scores.jsonl").read_text().splitlines()]
    assert stored[0]["steps"] == 5 and len(stored[0]["trajectory"]) == 5


def test_single_shot_scores_and_summaries_keep_their_shape(home_tasks):
    score = Scorer().score(home_tasks[0], home_tasks[0].labels[0])
    assert score.reward is None and score.steps is None and score.trajectory is None
    assert summarize([score]).per_tool["home_search"].reward is None


def test_environments_are_the_only_tools_outside_single_shot():
    assert set(tool_names()) - set(single_shot_tools()) == {"webshop"}
