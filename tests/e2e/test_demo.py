"""`toolbench demo` end to end on the smoke preset (tiny models): every step runs, leaves its output,
writes its timing to demo.json and a report; a second run skips everything; a run folder made with
another preset is refused in one line."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.timeout(900)  # three runs of the CLI, each allowed 300 s by run_cli; ~90 s on 2 busy cores
def test_demo_runs_every_step_then_resumes_in_seconds(tmp_path, generic_cache):
    out = tmp_path / "demo"
    first = run_cli("demo", "--preset", "smoke", "--out", str(out), "--cache-dir", str(generic_cache))
    assert first.returncode == 0, first.stderr[-2000:]
    log = json.loads((out / "demo.json").read_text())
    names = [step["name"] for step in log["steps"]]
    assert len(names) == 16 and not any(step["skipped"] for step in log["steps"])
    for folder in ("tokenizer", "draft-generic", "target", "random", "draft"):
        assert (out / "models" / folder / "config.json").exists() or folder == "tokenizer"
    assert (out / "models" / "tokenizer" / "tokenizer.json").exists()
    assert len(list((out / "eval").glob("*/*/summary.json"))) == 5  # 4 target settings + the floor
    indist = sorted((out / "eval-indist" / "target").glob("*/summary.json"))  # the second column: k = 0, 3
    assert len(indist) == 2
    assert json.loads(indist[0].read_text())["run"]["config"]["task_set"] == "indist"
    report = (out / "report.md").read_text()
    assert "in distribution: success %" in report and "leaderboard" in report.lower()
    for name in ("before", "after"):
        summary = json.loads((out / "spec" / name / "summary.json").read_text())["summary"]
        same, total = summary["overall"]["spec_equal_target"].split("/")
        assert same == total == "5"  # greedy speculative output == target output, one prompt per tool
    assert (out / "report.html").stat().st_size > 1000 and (out / "report.md").exists()

    started = time.perf_counter()
    second = run_cli("demo", "--preset", "smoke", "--out", str(out), "--cache-dir", str(generic_cache))
    assert second.returncode == 0, second.stderr[-2000:]
    assert time.perf_counter() - started < 30  # nothing retrained: only the report is rebuilt
    log = json.loads((out / "demo.json").read_text())
    assert all(step["skipped"] for step in log["steps"])
    assert all(step["seconds"] is not None for step in log["steps"])  # first run's times kept

    refused = run_cli("demo", "--preset", "quick", "--out", str(out), "--cache-dir", str(generic_cache))
    assert refused.returncode == 2
    assert "holds a 'smoke' demo" in refused.stderr and "Traceback" not in refused.stderr
