"""`toolbench leaderboard` on real eval runs: three `toolbench eval` runs of replayed answers on the
same 20 tasks (gold; gold but one task left blank; the corrupted replay), then the leaderboard's
table, noise flags and files, its refusal of a run with another system prompt, and --overwrite."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.e2e

TOOLS = ("weather", "cat_api")
BLANK = "weather-test-0006"  # a `single` task: 6 single, 6 parallel and 8 multi_call tasks in all


def _predictions(folder: Path) -> dict[str, Path]:
    from toolbench.core.registry import get_tool
    from toolbench.core.replay import corrupt_predictions, gold_predictions
    from toolbench.core.task_files import load_tasks
    from toolbench.foundation.io import write_jsonl
    from toolbench.foundation.records import Prediction

    tasks = [n.task for tool in TOOLS for n in load_tasks(get_tool(tool).tasks_file())[:10]]
    gold = gold_predictions(tasks)
    files = {
        "gold": gold,
        "close": [Prediction(id=p.id, text="") if p.id == BLANK else p for p in gold],
        "corrupted": corrupt_predictions(tasks),
    }
    for name, predictions in files.items():
        write_jsonl(folder / f"{name}.jsonl", predictions)
    return {name: folder / f"{name}.jsonl" for name in files}


def _eval(predictions: Path, out: Path, cache: Path, *extra: str) -> None:
    run_cli(
        "eval",
        "--model",
        f"replay:{predictions}",
        "--tools",
        ",".join(TOOLS),
        "--limit",
        "10",
        "--k-demos",
        "0",
        "--out",
        str(out),
        "--cache-dir",
        str(cache),
        *extra,
        check=True,
    )


@pytest.mark.timeout(120)
def test_leaderboard_of_three_eval_runs(tmp_path):
    files = _predictions(tmp_path)
    runs = {name: tmp_path / "runs" / name for name in files}
    for name, path in files.items():
        _eval(path, runs[name], tmp_path / "cache")
    board = tmp_path / "board"
    result = run_cli(
        "leaderboard", *(str(runs[n]) for n in ("corrupted", "close", "gold")), "--out", str(board)
    )
    assert result.returncode == 0, result.stderr
    assert "leader" in result.stdout and f"wrote {board}/leaderboard.md" in result.stdout

    md = (board / "leaderboard.md").read_text()
    assert (
        "All runs scored the same 20 tasks with: mode completion, k demos 0, retriever -, system prompt default"
        in md
    )
    rows = {line.split(" | ")[1]: line for line in md.splitlines() if re.match(r"^\| \d+ \| ", line)}
    # gold: 100 in every category; close: single 5/6, so overall (1 + 1 + 5/6) / 3
    assert rows["gold"].startswith("| 1 | gold | 100.0 | 100.0–100.0 | - | leader | ")
    assert rows["close"].startswith("| 2 | close | 94.4 | ")
    # one discordant task of 6 in its category: p = 2 (5/6)^6 = 0.67 by the bootstrap, within noise
    assert "| +5.6 (+0.0 to +16.7), p=0.6" in rows["close"] and "| yes |" in rows["close"]
    assert "| 83.3 (43.6–97.0) n=6 | 20 | 20 | 0 | n/a | n/a | " in rows["close"]  # single; replay: no tokens
    assert rows["corrupted"].startswith("| 3 | corrupted | ") and "| no |" in rows["corrupted"]

    table = {
        row["label"]: row for row in csv.DictReader(io.StringIO((board / "leaderboard.csv").read_text()))
    }
    corrupted = json.loads((runs["corrupted"] / "summary.json").read_text())["summary"]["per_category"]
    mean_of_categories = sum(c["success"] for c in corrupted.values()) / len(corrupted)
    assert float(table["corrupted"]["overall"]) == pytest.approx(
        mean_of_categories
    )  # eval's own per-category
    assert float(table["close"]["p_value"]) == pytest.approx(2 * (5 / 6) ** 6, abs=0.03)
    assert table["gold"]["requests"] == "20" and table["gold"]["cached"] == "0"
    page = (board / "leaderboard.html").read_text()
    assert page.count("data:image/png;base64,") == 1 and "<script" not in page
    assert (board / "leaderboard.png").read_bytes().startswith(b"\x89PNG")
    record = json.loads((board / "leaderboard.json").read_text())["run"]
    assert record["command"] == "leaderboard" and record["seed"] == 0 and record["counts"]["runs"] == 3

    # another system prompt: refused in one line naming both runs, unless --allow-mixed
    other = tmp_path / "runs" / "close-nosys"
    _eval(files["close"], other, tmp_path / "cache", "--system-prompt", "none")
    refused = run_cli("leaderboard", str(runs["gold"]), str(other), "--out", str(tmp_path / "mixed"))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        f"error: {runs['gold']} and {other} differ in system prompt (default vs none); "
        "pass --allow-mixed to compare them anyway"
    ]
    mixed = run_cli(
        "leaderboard", str(runs["gold"]), str(other), "--out", str(tmp_path / "mixed"), "--allow-mixed"
    )
    assert mixed.returncode == 0, mixed.stderr
    text = (tmp_path / "mixed" / "leaderboard.md").read_text()
    assert "**Mixed runs** (--allow-mixed): they differ in system prompt" in text
    assert "| 2 | close | none | 94.4 |" in text

    # an existing output is refused unless --overwrite; the same inputs give the same table
    again = run_cli(
        "leaderboard", *(str(runs[n]) for n in ("corrupted", "close", "gold")), "--out", str(board)
    )
    assert again.returncode == 2 and "pass --overwrite" in again.stderr
    again = run_cli(
        "leaderboard",
        *(str(runs[n]) for n in ("gold", "close", "corrupted")),
        "--out",
        str(board),
        "--overwrite",
    )
    assert again.returncode == 0, again.stderr
    assert (board / "leaderboard.md").read_text() == md
