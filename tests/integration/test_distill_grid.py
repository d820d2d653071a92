"""`toolbench distill grid` on tiny models: settings run at equal steps, every draft gets an α on
the same held-out prompts, margins are computed against the papers' claims, a rerun resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pair(tmp_path_factory, product_tokenizer_dir) -> tuple[Path, Path]:
    import torch

    from toolbench.distill.training.models import load_tokenizer, new_model

    tokenizer = load_tokenizer(product_tokenizer_dir)
    root = tmp_path_factory.mktemp("grid-pair")
    for name, seed in (("target", 1), ("draft", 2)):
        model = new_model("tiny", tokenizer, seed=seed)
        if name == "target":
            with torch.no_grad():
                model.model.norm.weight.mul_(12.0)  # peaked target distributions
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    return root / "target", root / "draft"


def test_grid_runs_settings_and_compares_with_the_papers(pair, tmp_path, generic_cache):
    target, draft = pair
    out = tmp_path / "grid"
    args = ["distill", "grid", "--target", str(target), "--draft", str(draft), "--out", str(out)]
    args += ["--settings", "offline-fkl,black,tvd", "--steps", "3", "--samples", "24", "--batch-size", "8"]
    args += ["--eval-per-tool", "1", "--threads", "1"]
    env = {"TOOLBENCH_CACHE": str(generic_cache)}
    first = run_cli(*args, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    result = json.loads((out / "grid.json").read_text())
    assert [row["name"] for row in result["rows"]] == ["offline-fkl", "black", "tvd"]
    assert all(row["steps"] == 3 for row in result["rows"])  # equal compute
    alphas = {row["name"]: row["alpha"] for row in result["rows"]}
    assert all(0.0 < a <= 1.0 for a in alphas.values())
    white_black = next(c for c in result["comparisons"] if c["worse"] == "black")
    expected = 100 * (alphas["offline-fkl"] - alphas["black"]) / alphas["black"]
    assert white_black["measured_percent"] == pytest.approx(expected, abs=0.06)
    offline_online = next(c for c in result["comparisons"] if c["worse"] == "online-fkl")
    assert offline_online["verdict"] == "not measured"  # online was not in --settings
    assert result["best_divergence"] in ("offline-fkl", "tvd")
    assert (out / "grid.png").stat().st_size > 1000
    assert "| comparison | measured | paper | verdict |" in (out / "grid.md").read_text()
    stamp = (out / "black" / "model.safetensors").stat().st_mtime_ns

    second = run_cli(*args, env=env)  # resumes: finished settings are not retrained
    assert second.returncode == 0, second.stderr[-2000:]
    assert (out / "black" / "model.safetensors").stat().st_mtime_ns == stamp


def test_unknown_grid_setting_is_one_line(pair, tmp_path):
    target, draft = pair
    result = run_cli("distill", "grid", "--target", str(target), "--draft", str(draft), "--settings", "nope")
    assert result.returncode == 2
    assert "unknown grid setting 'nope'; known: offline-fkl, online-fkl" in result.stderr


def test_margins_and_verdicts():
    from toolbench.distill.draft.grid import CLAIMS, margin, verdict

    offline = next(c for c in CLAIMS if c.worse == "online-fkl")
    assert margin(offline, {"offline-fkl": 0.6, "online-fkl": 0.5}) == pytest.approx(20.0)
    assert verdict(offline, 20.0) == "within the paper's range"
    assert verdict(offline, 5.0) == "below the paper"
    assert verdict(offline, -5.0) == "opposite sign"
    assert verdict(offline, 40.0) == "above the paper"
    synthetic = next(c for c in CLAIMS if c.ratio)
    assert margin(synthetic, {"synthetic-III": 0.45, "real-I": 0.5}) == pytest.approx(90.0)
    assert verdict(synthetic, 90.0) == "within the paper's range"
    assert margin(synthetic, {"real-I": 0.5}) is None
