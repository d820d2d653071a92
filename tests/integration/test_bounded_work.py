"""Long commands are bounded: a run that cannot finish (not enough distinct tasks, not enough disk)
is refused before or early in the work with the numbers, and what a failed or killed run left
behind (temporary files, 0-byte partial outputs) is cleaned up on failure and on the next start.
Everything here is small: a stub factory, a faked disk, a few generated samples."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import namedtuple
from pathlib import Path

import pytest

from toolbench.foundation.errors import UserError
from toolbench.foundation.io import atomic_open, remove_stale_temps, temp_files
from toolbench.pipelines.generate import GenerateConfig, generate
from toolbench.pipelines.generate.engine import Candidate

pytestmark = pytest.mark.integration

Usage = namedtuple("Usage", "total used free")


def _leftover(path: Path) -> Path:
    """A temporary file exactly as `atomic_open` names it, as a killed writer leaves it."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.write(fd, b"half a line")
    os.close(fd)
    return Path(name)


def test_generate_refuses_an_output_the_disk_cannot_hold(tmp_path, monkeypatch):
    """The first chunk's mean sample size x n against the free space: refused with both numbers,
    before the first line is written, and no partial file is left."""
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**9, 0, 100 * 2**20))
    out = tmp_path / "big.jsonl"
    with pytest.raises(UserError) as refused:
        generate(GenerateConfig(tools=["weather"], n=10**9, seed=0, split="test"), out)
    message = str(refused.value)
    assert "1,000,000,000 samples need about" in message and "0.10 GB free" in message, message
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_generate_fits_when_the_disk_does(tmp_path, monkeypatch):
    """The same check lets a run through that fits (the estimate is not a blanket refusal)."""
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**9, 0, 100 * 2**20))
    report = generate(GenerateConfig(tools=["weather"], n=20, seed=0), tmp_path / "small.jsonl")
    assert report.kept == 20
    assert len((tmp_path / "small.jsonl").read_text().splitlines()) == 20


def test_export_refuses_an_output_the_disk_cannot_hold(tmp_path, monkeypatch):
    """The OpenAI export repeats the tool list in every record: its size is measured on the first
    samples and scaled to the whole source, then checked against the free space, before writing."""
    from toolbench.pipelines.export import export_file

    source = tmp_path / "data.jsonl"
    generate(GenerateConfig(tools=["weather"], n=300, seed=0), source)
    out = tmp_path / "data.openai.jsonl"
    free = source.stat().st_size + 64 * 2**20  # the source would fit; its OpenAI export would not
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**9, 0, free))
    with pytest.raises(UserError, match="samples need about .* GB free"):
        export_file(source, out, "openai")
    assert not out.exists() and not list(tmp_path.glob(".data.openai.jsonl.*"))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**9, 0, 10**9))
    assert export_file(source, out, "openai") == 300


def test_a_failed_generate_start_leaves_nothing_and_a_0_byte_partial_is_not_a_run(tmp_path):
    out = tmp_path / "data.jsonl"
    with pytest.raises(UserError, match="--distractors 99: allowed range is 0 to"):
        generate(GenerateConfig(tools=["weather"], n=5, distractors=99), out)
    assert list(tmp_path.iterdir()) == []
    # what an older failed run left: a 0-byte partial (with and without its checkpoint), a temp file
    partial = tmp_path / "data.jsonl.partial"
    partial.write_bytes(b"")
    (tmp_path / "data.jsonl.partial.json").write_text('{"bytes": 0}')
    stale = _leftover(out)
    keep = tmp_path / ".data.jsonl.notes"  # not our naming: never touched
    keep.write_text("mine")
    report = generate(GenerateConfig(tools=["weather"], n=5), out)  # not refused as "unfinished"
    assert report.kept == 5 and report.resumed_from == 0
    assert not partial.exists() and not stale.exists() and keep.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".data.jsonl.notes", "data.jsonl", "data.run.json"]


def test_a_resumable_partial_is_still_protected(tmp_path):
    """A partial with samples and a checkpoint is a run to resume: refused without --resume."""
    out = tmp_path / "data.jsonl"
    (tmp_path / "data.jsonl.partial").write_bytes(b'{"query": "x"}\n')
    (tmp_path / "data.jsonl.partial.json").write_text('{"bytes": 15}')
    with pytest.raises(UserError, match="pass --resume"):
        generate(GenerateConfig(tools=["weather"], n=5), out)
    assert (tmp_path / "data.jsonl.partial").stat().st_size == 15


def test_stale_temp_files_are_ours_only(tmp_path):
    out = tmp_path / "out[1].jsonl"  # glob characters in the name are matched literally
    ours = [_leftover(out), _leftover(out)]
    old = tmp_path / ".out[1].jsonl.old"
    old.mkdir()
    others = [
        tmp_path / ".out[1].jsonl.tmp",  # no random part
        tmp_path / ".out[1].jsonl.ABCDEFGH.tmp",  # not mkstemp's alphabet
        tmp_path / ".out[1].jsonl.abcdefghi.tmp",  # 9 characters
        tmp_path / ".other.jsonl.abcdefgh.tmp",  # another output's
        tmp_path / "out[1].jsonl.abcdefgh.tmp",  # not hidden
    ]
    for path in others:
        path.write_text("keep")
    assert temp_files(out) == sorted([*ours, old])
    assert remove_stale_temps(out) == sorted([*ours, old])
    assert all(path.read_text() == "keep" for path in others)
    assert temp_files(out) == []


def test_a_killed_export_leaves_a_temp_file_the_next_export_removes(tmp_path):
    """A killed export's temp file (named like `atomic_open`'s) is removed when the next export of
    the same output starts; the finished output is complete."""
    from typer.testing import CliRunner

    from toolbench.cli.main import app

    samples = tmp_path / "samples.jsonl"
    generate(GenerateConfig(tools=["weather"], n=5), samples)
    out = tmp_path / "export.jsonl"
    stale = _leftover(out)
    result = CliRunner().invoke(app, ["export", str(samples), "--out", str(out), "--split", "all"])
    assert result.exit_code == 0, result.output
    assert not stale.exists() and temp_files(out) == []
    assert len(out.read_text().splitlines()) == 5


def test_atomic_open_removes_its_temp_file_on_failure(tmp_path):
    out = tmp_path / "x.jsonl"
    with pytest.raises(RuntimeError), atomic_open(out) as handle:
        handle.write(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


class _StubFactory:
    """A factory whose templates give exactly `capacity` distinct requests, forever repeated."""

    capacity = 7

    def __init__(self, config):
        self.config = config

    def make_range(self, start, size, seen=None):
        import orjson

        from tests.conftest import HOME_TASKS

        task = orjson.loads(HOME_TASKS.read_text().splitlines()[0])
        line = orjson.dumps({**task, "split": "test", "action": "", "results": []})
        return [
            Candidate(i, line=line, key=(i % self.capacity).to_bytes(8, "big"), split="test")
            for i in range(start, start + size)
        ]


def test_tasks_make_stops_when_the_templates_run_dry(monkeypatch):
    """n beyond what the held-out templates give: stopped once STALLED_AFTER candidates in a row
    bring nothing new, with the count they gave, not searched for minutes (or forever)."""
    import toolbench.pipelines.tasks as tasks

    monkeypatch.setattr(tasks, "SampleFactory", _StubFactory)
    progress: list[tuple[int, int]] = []
    with pytest.raises(UserError) as refused:
        tasks.make_tasks("home_search", 50, 0, on_progress=lambda kept, seen: progress.append((kept, seen)))
    assert "gave only 7 distinct tasks" in str(refused.value) and "--n 7 or fewer" in str(refused.value)
    assert progress[0] == (7, 500) and progress[-1][1] <= tasks.STALLED_AFTER + 1000
    assert len(tasks.make_tasks("home_search", 7, 0)) == 7


def test_tasks_make_refuses_n_beyond_the_range():
    from toolbench.pipelines.tasks import MAX_TASKS, make_tasks

    with pytest.raises(UserError, match=f"--n {MAX_TASKS + 1}: a task file holds 1 to"):
        make_tasks("weather", MAX_TASKS + 1, 0)
