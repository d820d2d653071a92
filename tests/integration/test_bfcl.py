"""BFCL's categories through the same commands as toolbench's own tasks: `tasks import-bfcl`,
`tasks verify`, `score`, `eval` (replay and a tiny HF model) and `leaderboard`, on real BFCL rows
(tests/fixtures/bfcl: bfcl-eval 2026.3.23's data, Apache-2.0)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import orjson
import pytest

from tests.conftest import run_cli
from toolbench.core.registry import task_formatter
from toolbench.core.task_files import load_tasks
from toolbench.foundation.records import Call, Prediction, Program

pytestmark = pytest.mark.integration
FIXTURE = Path(__file__).parents[1] / "fixtures" / "bfcl"
COUNTS = "simple_python 5, multiple 2, parallel 2, parallel_multiple 2, irrelevance 2, live_simple 2, live_multiple 2, live_parallel 1, live_parallel_multiple 1, live_irrelevance 2, live_relevance 1"


@pytest.fixture(scope="module")
def bfcl_tasks(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bfcl") / "bfcl.jsonl"
    result = run_cli("tasks", "import-bfcl", "--data", str(FIXTURE), "--out", str(out), check=True)
    assert f"wrote 22 tasks to {out} ({COUNTS})" in " ".join(result.stdout.split())
    assert "skipped live_simple_112-68-0: no answer meets its acceptable values" in result.stderr
    return out


def lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_import_refuses_to_overwrite_and_reads_the_wheel_alike(bfcl_tasks, tmp_path):
    again = run_cli("tasks", "import-bfcl", "--data", str(FIXTURE), "--out", str(bfcl_tasks))
    assert again.returncode == 2 and "the file exists; pass --overwrite" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    wheel = tmp_path / "bfcl_eval-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for file in FIXTURE.rglob("BFCL_v4_*.json"):
            archive.write(file, f"bfcl_eval/data/{file.relative_to(FIXTURE)}")
    out = tmp_path / "from-wheel.jsonl"
    run_cli("tasks", "import-bfcl", "--data", str(wheel), "--out", str(out), check=True)
    assert out.read_bytes() == bfcl_tasks.read_bytes()
    some = tmp_path / "some.jsonl"
    run_cli(
        "tasks",
        "import-bfcl",
        "--data",
        str(FIXTURE),
        "--categories",
        "parallel,irrelevance",
        "--out",
        str(some),
        check=True,
    )
    assert [t["category"] for t in lines(some)] == ["parallel", "parallel", "irrelevance", "irrelevance"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--categories", "simple_java"],
            "--categories: unknown or not yet supported category 'simple_java'",
        ),
        (["--categories", "parallel,,multiple"], "--categories 'parallel,,multiple': name 2 of 3 is empty"),
        (["--categories", "parallel,parallel"], "parallel given more than once"),
        (["--data", "no/such/folder"], "--data no/such/folder: no such file or folder"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(tmp_path, args, message):
    data = [] if "--data" in args else ["--data", str(FIXTURE)]
    result = run_cli("tasks", "import-bfcl", *data, *args, "--out", str(tmp_path / "x.jsonl"))
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.jsonl").exists()


def test_bad_data_names_file_and_line(tmp_path):
    folder = tmp_path / "data"
    (folder / "possible_answer").mkdir(parents=True)
    answers = (FIXTURE / "possible_answer" / "BFCL_v4_parallel.json").read_text().splitlines()
    (folder / "BFCL_v4_simple_python.json").write_text((FIXTURE / "BFCL_v4_simple_python.json").read_text())
    (folder / "BFCL_v4_parallel.json").write_text((FIXTURE / "BFCL_v4_parallel.json").read_text())
    (folder / "possible_answer" / "BFCL_v4_parallel.json").write_text(
        answers[0] + "\n" + answers[1].replace("ground_truth", "truth") + "\n"
    )
    result = run_cli(
        "tasks",
        "import-bfcl",
        "--data",
        str(folder),
        "--categories",
        "parallel",
        "--out",
        str(tmp_path / "x.jsonl"),
    )
    assert result.returncode == 2
    assert f"{folder}/possible_answer/BFCL_v4_parallel.json:2: 'ground_truth' of 'parallel_44'" in " ".join(
        result.stderr.split()
    )


def test_imported_tasks_verify(bfcl_tasks):
    result = run_cli("tasks", "verify", "--tasks", str(bfcl_tasks), check=True)
    assert "22 tasks, 22 labels, every label scores 1.0" in result.stdout


def corrupted(tasks) -> list[Prediction]:
    """The first task of each category answered wrongly in one way, the rest with the label."""
    predictions, seen = [], set()
    for task in tasks:
        label = list(task.labels[0])
        if task.category in seen:
            predictions.append(Prediction(id=task.id, calls=label))
            continue
        seen.add(task.category)
        if not label:  # irrelevance: a call
            calls = [Call(name=task.functions[0].name, arguments={})] if task.functions else [Call(name="x")]
        elif task.answers is None:  # relevance: no call
            calls = []
        elif len(label) > 1:  # parallel: one call left out
            calls = label[:-1]
        else:  # a value out of the acceptable set
            first = next(iter(label[0].arguments))
            calls = [Call(name=label[0].name, arguments={**label[0].arguments, first: "zzq"})]
        predictions.append(Prediction(id=task.id, calls=calls))
    return predictions


def write(path: Path, records) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r.model_dump(exclude_none=True)) + b"\n" for r in records))
    return path


def test_score_and_eval_and_leaderboard_work_unchanged(bfcl_tasks, tmp_path):
    tasks = [n.task for n in load_tasks(bfcl_tasks)]
    gold = write(
        tmp_path / "gold.jsonl",
        [Prediction(id=t.id, text=task_formatter(t, "python").render(t.labels[0])) for t in tasks],
    )
    run_cli(
        "score",
        "--tasks",
        str(bfcl_tasks),
        "--predictions",
        str(gold),
        "--out",
        str(tmp_path / "s"),
        check=True,
    )
    summary = orjson.loads((tmp_path / "s" / "summary.json").read_bytes())["summary"]
    assert summary["micro"]["success"] == 1.0 and summary["micro"]["n"] == 22

    bad = write(tmp_path / "bad.jsonl", corrupted(tasks))
    runs = {}
    for name, predictions, mode in (("gold", gold, "completion"), ("bad", bad, "completion")):
        runs[name] = tmp_path / name
        run_cli(
            "eval", "--tasks", str(bfcl_tasks), "--model", f"replay:{predictions}", "--mode", mode,
            "--out", str(runs[name]), "--cache-dir", str(tmp_path / "cache"), check=True,
        )  # fmt: skip
    assert not (tmp_path / "cache" / "demos").exists()  # no demo index for tasks with their own functions
    scores = {s["id"]: s for s in lines(runs["bad"] / "scores.jsonl")}
    expected = {
        "simple_python_0": "wrong_argument",
        "multiple_10": "wrong_argument",
        "parallel_0": "missing_call",
        "parallel_multiple_0": "missing_call",
        "irrelevance_0": "unexpected_call",
        "live_simple_0-0-0": "wrong_argument",
        "live_multiple_1-0-1": "wrong_argument",
        "live_parallel_0-0-0": "missing_call",
        "live_parallel_multiple_0-0-0": "missing_call",
        "live_irrelevance_0-0-0": "unexpected_call",
        "live_relevance_0-0-0": "no_call",
    }
    assert {i: s["diagnosis"] for i, s in scores.items() if not s["success"]} == expected
    bad_summary = orjson.loads((runs["bad"] / "summary.json").read_bytes())["summary"]
    assert bad_summary["per_category"]["simple_python"]["success"] == 0.8
    assert bad_summary["per_category"]["live_relevance"]["success"] == 0.0
    assert set(bad_summary["per_tool"]) == {"bfcl"}

    board = tmp_path / "board"
    run_cli(
        "leaderboard",
        str(runs["gold"]),
        str(runs["bad"]),
        "--out",
        str(board),
        "--resamples",
        "1000",
        check=True,
    )
    table = (board / "leaderboard.md").read_text()
    assert "live_parallel_multiple" in table and "simple_python" in table
    rows = orjson.loads((board / "leaderboard.json").read_bytes())
    overall = {row["model"].split("/")[-1]: row["overall"] for row in rows["leaderboard"]["rows"]}
    # BFCL's overall: the mean of the 11 category rates; the bad run fails 1 task of each
    per_category = bad_summary["per_category"]
    assert overall["bad.jsonl"] == pytest.approx(sum(c["success"] for c in per_category.values()) / 11)
    assert overall["gold.jsonl"] == 1.0


def test_a_tiny_hf_model_runs_on_bfcl_tasks_in_both_modes(bfcl_tasks, tiny_model_dir, tmp_path):
    for mode in ("completion", "chat"):
        out = tmp_path / mode
        run_cli(
            "eval", "--tasks", str(bfcl_tasks), "--model", f"hf:{tiny_model_dir}", "--mode", mode,
            "--max-tokens", "8", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), check=True,
        )  # fmt: skip
        scores = lines(out / "scores.jsonl")
        assert len(scores) == 22 and {s["tool"] for s in scores} == {"bfcl"}
        # garbage answers: right only where no call is right (irrelevance), wrong elsewhere
        for s in scores:
            if s["category"] in ("simple_python", "multiple", "parallel", "live_relevance"):
                assert not s["success"] and s["diagnosis"] in ("parse_error", "no_call", "wrong_function")


def test_program_round_trip_of_labels_in_every_format(bfcl_tasks):
    for numbered in load_tasks(bfcl_tasks):
        task = numbered.task
        for fmt in ("python", "json", "pythonic", "hermes"):
            formatter = task_formatter(task, fmt)
            assert formatter.parse(formatter.render(task.labels[0])) == Program(list(task.labels[0])), (
                task.id,
                fmt,
            )
