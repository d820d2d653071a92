"""No command destroys data: an existing output is refused unless --overwrite, an output equal to an
input is always refused, and a folder that holds someone else's files is never replaced. Each case
is one line on stderr, exit status 2, no traceback, and the files are untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import HOME_TASKS, run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("samples") / "data.jsonl"
    run_cli("generate", "--tool", "home_search", "--n", "40", "--out", str(out), check=True)
    return out


def refused(result, *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_export_never_writes_over_its_input(samples):
    before = samples.read_bytes()
    refused(run_cli("export", str(samples), "--out", str(samples)), "also this command's input")
    refused(
        run_cli("export", str(samples), "--out", str(samples), "--overwrite"), "also this command's input"
    )
    assert samples.read_bytes() == before


def test_existing_outputs_need_overwrite(samples, tmp_path):
    keep = tmp_path / "keep.jsonl"
    keep.write_text("precious\n")
    cases = [
        ("export", str(samples), "--out", str(keep)),
        ("generate", "--tool", "weather", "--n", "5", "--out", str(keep)),
        ("tasks", "make", "--tool", "weather", "--n", "3", "--out", str(keep)),
        ("tasks", "replay", "--tasks", str(HOME_TASKS), "--out", str(keep)),
    ]
    for args in cases:
        refused(run_cli(*args), "--overwrite")
        assert keep.read_text() == "precious\n", args
    run_cli("export", str(samples), "--out", str(keep), "--overwrite", check=True)
    assert keep.read_text() != "precious\n"


def test_folders_are_claimed_only_when_empty_or_overwritten(samples, tmp_path):
    run_folder = tmp_path / "run"
    run_folder.mkdir()
    (run_folder / "notes.txt").write_text("mine")
    gold = tmp_path / "gold.jsonl"
    run_cli("tasks", "replay", "--tasks", str(HOME_TASKS), "--out", str(gold), check=True)
    refused(
        run_cli("score", "--tasks", str(HOME_TASKS), "--predictions", str(gold), "--out", str(run_folder)),
        "--overwrite",
    )
    refused(
        run_cli("eval", "--model", f"replay:{gold}", "--tools", "home_search", "--out", str(run_folder)),
        "--overwrite",
    )
    refused(
        run_cli("score", "--tasks", str(HOME_TASKS), "--predictions", str(gold), "--out", str(gold)),
        "is a file",
    )
    # an index folder is replaced whole, so one holding other files is refused even with --overwrite
    refused(
        run_cli("index", "build", "--demos", str(samples), "--out", str(run_folder), "--overwrite"),
        "not a toolbench index",
    )
    assert (run_folder / "notes.txt").read_text() == "mine"
    refused(run_cli("generate", "--tool", "weather", "--n", "5", "--out", str(tmp_path)), "is a folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    run_cli("score", "--tasks", str(HOME_TASKS), "--predictions", str(gold), "--out", str(empty), check=True)
    assert (empty / "summary.json").is_file()
