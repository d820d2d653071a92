"""The `toolbench` command as a user runs it: real files, real subprocesses, exact figures."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from tests.conftest import HOME_TASKS, run_cli

pytestmark = pytest.mark.e2e


def test_tools_list_and_show():
    listing = run_cli("tools", "list", check=True).stdout
    assert "home_search" in listing and "120" in listing
    tools = json.loads(run_cli("tools", "show", "home_search", "--json", check=True).stdout)
    assert [t["function"]["name"] for t in tools][:2] == ["set_location", "set_buy_or_rent"]
    assert tools[0]["type"] == "function" and tools[0]["function"]["parameters"]["required"] == ["value"]


def test_tasks_verify_passes_on_the_shipped_tasks():
    result = run_cli("tasks", "verify", check=True)
    assert "120 tasks, 240 labels, every label scores 1.0" in result.stdout


def test_tasks_verify_fails_clearly_on_a_broken_label(tmp_path):
    lines = HOME_TASKS.read_text().splitlines()
    task = json.loads(lines[4])
    task["labels"][1] = task["labels"][1][1:]  # drop set_location: the order rule breaks
    lines[4] = json.dumps(task)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(lines) + "\n")
    result = run_cli("tasks", "verify", "--tasks", str(broken))
    assert result.returncode == 1
    assert f"{broken}:5: task '{task['id']}' label 2: home_search:order" in result.stderr
    assert f"{broken}:5: task '{task['id']}': labels disagree" in result.stderr
    assert "2 problem(s) in 120 tasks" in result.stderr
    assert "Traceback" not in result.stderr


def score_cli(predictions: Path, *options: str, check: bool = False):
    return run_cli(
        "score", "--tasks", str(HOME_TASKS), "--predictions", str(predictions), *options, check=check
    )


def _summary(folder: Path) -> dict:
    return orjson.loads((folder / "summary.json").read_bytes())


def test_score_gold_replay_is_perfect_and_corrupted_replay_is_exactly_a_quarter(tmp_path):
    gold, bad = tmp_path / "gold.jsonl", tmp_path / "bad.jsonl"
    run_cli("tasks", "replay", "--tasks", str(HOME_TASKS), "--out", str(gold), check=True)
    run_cli("tasks", "replay", "--tasks", str(HOME_TASKS), "--out", str(bad), "--corrupt", check=True)

    score_cli(gold, "--out", str(tmp_path / "g"), check=True)
    perfect = _summary(tmp_path / "g")["summary"]["micro"]
    assert (perfect["n"], perfect["success"], perfect["state_f1"], perfect["ast_match"]) == (
        120,
        1.0,
        1.0,
        1.0,
    )

    shown = score_cli(bad, "--out", str(tmp_path / "b"), check=True)
    summary = _summary(tmp_path / "b")
    micro = summary["summary"]["micro"]
    assert micro["success"] == 0.25 and micro["ast_match"] == 0.25 and micro["parse_error_rate"] == 0.25
    assert micro["tool_error_rate"] == 0.0 and micro["crash_rate"] == 0.0
    assert micro["error_types"] == {"parse:syntax": 30, "state:mismatch": 60}
    assert summary["run"]["config"]["format"] == "auto" and summary["run"]["packages"]["toolbench"]
    scores = [orjson.loads(line) for line in (tmp_path / "b" / "scores.jsonl").read_bytes().splitlines()]
    assert [s["success"] for s in scores[:4]] == [True, False, False, False]
    assert "| home_search | 120 | 25.0 |" in (tmp_path / "b" / "summary.md").read_text()
    assert "25.0" in shown.stdout


def test_score_in_json_format(tmp_path):
    gold = tmp_path / "gold.jsonl"
    run_cli(
        "tasks", "replay", "--tasks", str(HOME_TASKS), "--out", str(gold), "--call-format", "json", check=True
    )
    score_cli(gold, "--call-format", "json", "--out", str(tmp_path / "s"), check=True)
    assert _summary(tmp_path / "s")["summary"]["micro"]["success"] == 1.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"id": "home_search-test-0000", "text": "API.search()"}\n{"id": oops}\n',
            "predictions.jsonl:2: not valid JSON",
        ),
        ('{"text": "API.search()"}\n', "predictions.jsonl:1: not a Prediction: field 'id': Field required"),
        ('{"id": "nope", "text": ""}\n', "prediction 1 is for task 'nope', which is not in the task file"),
    ],
)
def test_bad_predictions_name_the_line_without_a_traceback(tmp_path, content, message):
    path = tmp_path / "predictions.jsonl"
    path.write_text(content)
    result = score_cli(path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_unknown_tool_lists_the_known_ones(tmp_path):
    result = run_cli("generate", "--tools", "nope", "--samples", "5", "--out", str(tmp_path / "x.jsonl"))
    assert result.returncode == 2
    assert "unknown tool 'nope'; known tools: " in result.stderr and "home_search" in result.stderr
    assert "Traceback" not in result.stderr


def test_template_with_undefined_slot_is_a_one_line_error(tmp_path):
    folder = tmp_path / "templates" / "home_search"
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text(
        "tool: home_search\nentries:\n  - id: mine\n    split: train\n    slots:\n      city: {pool: us_cities}\n"
        '    queries:\n      - "Homes in {{ city }}"\n      - "Homes in {{ town }}, please"\n'
        "    action: |\n      API.set_location({{ city | py }})\n"
    )
    result = run_cli(
        "generate",
        "--tools",
        "home_search",
        "--samples",
        "5",
        "--out",
        str(tmp_path / "x.jsonl"),
        "--templates",
        str(tmp_path / "templates"),
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: {folder / 'mine.yaml'}:9: entry 'mine' query 2 uses undefined slot 'town'; declared slots: city"
    )
    assert not (tmp_path / "x.jsonl").exists()


def test_generate_from_the_cli_reports_and_writes(tmp_path):
    out = tmp_path / "a.jsonl"
    result = run_cli(
        "generate", "--tools", "home_search", "--samples", "500", "--seed", "0", "--out", str(out), check=True
    )
    assert len(out.read_bytes().splitlines()) == 500
    assert "500" in result.stdout and f"wrote {out}" in result.stdout


def test_renamed_options_keep_their_old_spelling_hidden(tmp_path):
    """README "CLI vocabulary": a renamed option still reads its old spelling (scripts keep working),
    and --help shows only the new one."""
    old = tmp_path / "old.jsonl"
    run_cli("generate", "--tool", "weather", "--n", "5", "--format", "openai", "--out", str(old), check=True)
    new = tmp_path / "new.jsonl"
    run_cli(
        "generate",
        "--tools",
        "weather",
        "--samples",
        "5",
        "--export-format",
        "openai",
        "--out",
        str(new),
        check=True,
    )
    assert old.read_bytes() == new.read_bytes()
    assert (tmp_path / "old.openai.jsonl").read_bytes() == (tmp_path / "new.openai.jsonl").read_bytes()
    gold = tmp_path / "gold.jsonl"
    run_cli("tasks", "replay", "--tasks", str(HOME_TASKS), "--out", str(gold), "--format", "json", check=True)
    score_cli(gold, "--format", "json", "--out", str(tmp_path / "s"), check=True)
    assert _summary(tmp_path / "s")["summary"]["micro"]["success"] == 1.0
    shown = run_cli("generate", "--help", check=True).stdout
    assert "--tools" in shown and "--samples" in shown and "--export-format" in shown
    assert not any(name in shown.split() for name in ("--tool", "--n", "--format"))
