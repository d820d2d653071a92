"""Assertions and hypothesis strategies shared by several test modules."""

from __future__ import annotations

import keyword
import string

import pytest
from hypothesis import strategies as st

from toolbench.foundation.records import Call, Program, Score

# JSON values, call names and whole programs, for the call readers' property tests
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
identifiers = st.text(string.ascii_letters + "_", min_size=1, max_size=10).filter(
    lambda s: not keyword.iskeyword(s)
)
calls = st.builds(Call, name=identifiers, arguments=st.dictionaries(identifiers, json_values, max_size=4))
programs = st.lists(calls, max_size=5).map(Program)

# A Llama small enough for a unit test (config keyword arguments; vocabulary 60, pad id 0)
TINY_LLAMA = dict(
    vocab_size=60,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    pad_token_id=0,
    tie_word_embeddings=True,
)


def position_jumps(positions, length: int) -> list[int]:
    """Where a row's position ids (a 1-D tensor) stop counting up by one among its first `length`
    tokens: the indices right after a position skip (distill/training/positions.py)."""
    steps = (positions[1:length] - positions[: length - 1]).tolist()
    return [i + 1 for i, step in enumerate(steps) if step != 1]


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
