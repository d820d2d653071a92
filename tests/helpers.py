"""Assertions shared by the per-tool scorer tests."""

from __future__ import annotations

import pytest

from toolbench.records import Score


def assert_wrong(result: Score, error_type: str, f1: float, name: str = "") -> None:
    """A wrong prediction: not a success, the exact error type, and the hand-computed state F1."""
    assert not result.success, name
    assert result.error_type == error_type, name
    assert result.state_f1 == pytest.approx(f1), name


def two_cpu_processes(*args: str) -> list[str]:
    """`accelerate launch` of `python -m toolbench ARGS` as 2 CPU processes (gloo). Note
    `accelerate launch --cpu` starts one process: `--multi_gpu --num_processes 2` starts two."""
    import sys

    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launcher += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return [*launcher, "-m", "toolbench", *args]
