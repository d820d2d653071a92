"""Shared fixtures. Everything is built in-session from the repository's own files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from toolbench.core.task_files import load_tasks
from toolbench.foundation.records import Task

REPO = Path(__file__).resolve().parent.parent
HOME_TASKS = REPO / "tools" / "home_search" / "test.jsonl"

# Hypothesis profiles. A property without its own `max_examples` runs 100 examples in the inner
# loop ("dev") and 1,000 in CI ("ci", chosen when $CI is set, as CI does; its extra cost is a few
# seconds). Pick one by hand with HYPOTHESIS_PROFILE=ci or `pytest --hypothesis-profile=ci`.
# No deadline in either: on a shared 2-core machine a per-example time limit fails at random.
# CI also drops the too-slow health check for the same reason, and prints a failure's blob so
# `@reproduce_failure` can replay it here.
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "ci", max_examples=1000, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
_in_ci = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if _in_ci else "dev"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models decode fastest (and most steadily on a shared machine) on one thread; a module
    opts in with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def home_tasks() -> list[Task]:
    return [numbered.task for numbered in load_tasks(HOME_TASKS)]


def run_cli(
    *args: str, cwd: Path | None = None, check: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the real `toolbench` command in a subprocess, as a user would."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "toolbench", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=env,
        timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"toolbench {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama + BPE tokenizer + tool-aware chat template, saved as an HF folder."""
    from tests.fixtures.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


TINY_TOOLS = ["cat_api", "home_search", "spreadsheet", "trip_booking", "weather"]


@pytest.fixture(scope="session")
def generic_cache(tmp_path_factory) -> Path:
    """A cache dir whose generic corpus is the first 300 stdlib documents (fast to train on)."""
    from toolbench.distill.training.corpus import generic_documents
    from toolbench.foundation.io import write_jsonl

    cache = tmp_path_factory.mktemp("toolbench-cache")
    write_jsonl(cache / "generic_corpus.jsonl", generic_documents()[:300])
    return cache


@pytest.fixture(scope="session")
def product_tokenizer_dir(tmp_path_factory, generic_cache) -> Path:
    """The product tokenizer (`toolbench train tokenizer`) at a tiny vocabulary."""
    from toolbench.distill.training.tokenizer import TokenizerConfig, train_tokenizer

    out = tmp_path_factory.mktemp("tokenizer") / "tokenizer"
    train_tokenizer(
        TokenizerConfig(vocab_size=700, samples_per_tool=40, tools=TINY_TOOLS), out, generic_cache
    )
    return out


@pytest.fixture(scope="session")
def tiny_draft_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """A smaller random Llama sharing the tiny model's tokenizer: a draft for speculative decoding."""
    from tests.fixtures.tiny_model import build_tiny_draft

    return build_tiny_draft(tmp_path_factory.mktemp("tiny-draft"), tiny_model_dir)
