"""`toolbench spec` as a user runs it: a results folder on a tiny pair, one-line errors on bad input."""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.e2e


def test_spec_writes_summary_table_plot_and_record(tmp_path, tiny_model_dir, tiny_draft_dir):
    out = tmp_path / "spec"
    result = run_cli(
        "spec",
        "--target", str(tiny_model_dir),
        "--draft", str(tiny_draft_dir),
        "--tools", "tabletop,virtual_home",  # the shortest prompts
        "--limit", "1",
        "--max-tokens", "10",
        "--gamma", "3",
        "--threads", "1",  # tiny models: one thread is fastest, and steady on a busy machine
        "--out", str(out),
        check=True,
    )  # fmt: skip
    assert "greedy output equal to target: 2/2" in result.stdout
    assert "HF assisted" in result.stdout and "Loading weights" not in result.stderr
    report = orjson.loads((out / "summary.json").read_bytes())
    summary, run = report["summary"], report["run"]
    overall = summary["overall"]
    assert overall["prompts"] == 2 and overall["tokens"] == 20 and overall["gamma"] == 3
    assert overall["spec_equal_target"] == "2/2" and overall["assisted_equal_target"] == "2/2"
    assert overall["drafted"] == 3 * overall["rounds"]
    assert overall["mean_accepted_length"] == pytest.approx(1 + overall["accepted"] / overall["rounds"])
    assert 0 <= overall["analytic_alpha"] <= 1 and overall["speedup"] > 0
    assert set(summary["per_tool"]) == {"tabletop", "virtual_home"}
    assert [p["position"] for p in summary["by_position"]] == [1, 2, 3]
    assert sum(c["accepted"] + c["rejected"] for c in overall["by_class"].values()) > 0
    assert run["command"] == "spec" and run["config"]["gamma"] == 3 and run["config"]["threads"] == 1
    assert run["finished_at"]
    samples = [orjson.loads(line) for line in (out / "samples.jsonl").read_bytes().splitlines()]
    assert [s["tool"] for s in samples] == ["tabletop", "virtual_home"]
    assert all(len(s["classes"]) == len(s["tokens"]) == 10 for s in samples)
    assert "| token class | accepted | rejected | α |" in (out / "summary.md").read_text()
    assert (out / "acceptance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _error(*args: str) -> str:
    result = run_cli("spec", *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_gamma_below_one_is_refused(tiny_model_dir, tiny_draft_dir):
    line = _error("--target", str(tiny_model_dir), "--draft", str(tiny_draft_dir), "--gamma", "0")
    assert line == "error: gamma (draft tokens per round) must be an integer >= 1; got 0"


def test_a_draft_with_another_vocabulary_is_refused(tmp_path, tiny_model_dir):
    from tests.fixtures.tiny_model import build_tiny_model

    other = build_tiny_model(tmp_path / "other", vocab_size=900)
    line = _error("--target", str(tiny_model_dir), "--draft", str(other))
    assert line.startswith(f"error: draft {other} and target {tiny_model_dir} have different vocabularies (")
    assert line.endswith("a draft must share its target's tokenizer")


def test_a_draft_that_is_not_a_causal_lm_is_refused(tmp_path, tiny_model_dir):
    from transformers import DistilBertConfig, DistilBertModel

    folder = tmp_path / "encoder"
    DistilBertModel(
        DistilBertConfig(vocab_size=64, dim=16, hidden_dim=32, n_layers=1, n_heads=2)
    ).save_pretrained(folder)
    line = _error("--target", str(tiny_model_dir), "--draft", str(folder))
    assert line == f"error: draft {folder}: a 'distilbert' model is not a causal language model"
