"""Draft distillation on tiny models: every setting runs and lowers its loss, the default raises
analytic α, different vocabularies are refused, 2 processes under `accelerate launch` work, and a
killed teacher cache or training run resumes to the uninterrupted result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers import two_cpu_processes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pair(tmp_path_factory, product_tokenizer_dir) -> tuple[Path, Path]:
    """(target, draft): tiny random Llamas on the product tokenizer; the target's final norm is
    scaled up so its distributions are peaked (a uniform target would be trivially matched)."""
    import torch

    from toolbench.distill.training.models import load_tokenizer, new_model

    tokenizer = load_tokenizer(product_tokenizer_dir)
    root = tmp_path_factory.mktemp("pair")
    for name, seed in (("target", 1), ("draft", 2)):
        model = new_model("tiny", tokenizer, seed=seed)
        if name == "target":
            with torch.no_grad():
                model.model.norm.weight.mul_(12.0)
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    return root / "target", root / "draft"


def talkative_target(target: Path, out: Path) -> Path:
    """The target with its end token's (tied) embedding scaled up, so sampled text often stops."""
    import torch

    from toolbench.distill.training.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(target)
    model = load_causal_lm(target)
    with torch.no_grad():
        model.get_input_embeddings().weight[tokenizer.eos_token_id].mul_(40.0)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def config(pair, cache: Path, **changes):
    from toolbench.distill.draft.distillation import DistillConfig
    from toolbench.distill.draft.scenarios import ScenarioConfig
    from toolbench.distill.draft.teacher_cache import CacheConfig
    from toolbench.distill.training.trainer import TrainConfig

    scenario = ScenarioConfig(tools=["weather"], samples=40, scenario=changes.pop("scenario", "II"))
    base = DistillConfig(
        target=str(pair[0]),
        draft=str(pair[1]),
        scenario=scenario,
        cache=CacheConfig(top_k=8, max_new_tokens=12, shard_size=16),
        cache_dir=str(cache),
        train=TrainConfig(
            max_steps=12, batch_size=8, learning_rate=1e-2, warmup_steps=2, log_every=2, dtype="float32"
        ),
        eval_per_tool=3,
    )
    return base.model_copy(update=changes)


def cli_args(pair, out: Path, cache: Path, steps: int, **extra: str) -> list[str]:
    args = ["distill", "--target", str(pair[0]), "--draft", str(pair[1]), "--out", str(out)]
    args += ["--tools", "weather", "--samples", "40", "--max-new-tokens", "12", "--top-k", "8"]
    args += ["--steps", str(steps), "--batch-size", "8", "--lr", "0.01", "--cache-dir", str(cache)]
    args += ["--dtype", "float32"]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", value]
    return args


def losses(folder: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (folder / "train_log.jsonl").read_text().splitlines()]


def test_default_setting_raises_alpha_and_saves_a_loadable_draft(pair, tmp_path):
    from transformers import AutoModelForCausalLM

    from toolbench.distill.draft.distillation import run_distill

    out = tmp_path / "draft"
    summary = run_distill(config(pair, tmp_path / "cache"), out, progress=False)
    drafts = summary["alpha"]["drafts"]
    assert drafts["after"]["alpha"] > drafts["before"]["alpha"] + 0.05, drafts
    assert summary["cache"]["complete"] and summary["cache"]["top_k"] == 8
    assert summary["cache"]["topk_memory_bytes"] == summary["cache"]["response_tokens"] * 8 * 6
    assert losses(out)[-1] < losses(out)[0]
    AutoModelForCausalLM.from_pretrained(out)
    assert (out / "loss.png").stat().st_size > 1000 and json.loads((out / "alpha.json").read_text())
    record = json.loads((out / "train_record.json").read_text())
    assert record["config"]["config"]["loss"] == "fkl" and record["counts"]["steps"] == 12


@pytest.mark.parametrize(
    "changes",
    [
        {"signal": "black"},
        {"loss": "rkl"},
        {"loss": "tvd", "select": "adaspec"},
        {"mode": "online", "loss": "jsd", "lmbda": 0.5},
        {"scenario": "I"},
        {"scenario": "III"},
    ],
    ids=["black", "rkl", "tvd-adaspec", "online-jsd-onpolicy", "scenario-I", "scenario-III"],
)
def test_every_setting_trains(pair, tmp_path, changes):
    from toolbench.distill.draft.distillation import run_distill

    if changes.get("scenario") == "III":  # a target that ends its (user-turn) text sometimes
        pair = (talkative_target(pair[0], tmp_path / "target-eos"), pair[1])
    settings = config(pair, tmp_path / "cache", eval_per_tool=0, **changes)
    settings.train.max_steps = 6
    out = tmp_path / "draft"
    summary = run_distill(settings, out, progress=False)
    assert (out / "model.safetensors").exists()
    values = losses(out)
    assert values[-1] < values[0], values
    if settings.select == "adaspec":
        assert summary["reference_steps"] == 2 and summary["train"]["steps"] == 4  # the budget is split
        assert (out / "reference" / "model.safetensors").exists()


def test_on_policy_schedule_is_deterministic_and_exact():
    from toolbench.distill.draft.distillation import on_policy_step

    for lmbda in (0.0, 0.25, 0.5, 1.0):
        chosen = [on_policy_step(s, lmbda) for s in range(40)]
        assert sum(chosen) == int(40 * lmbda)
    assert [on_policy_step(s, 0.5) for s in range(4)] == [False, True, False, True]


def invoke(args: list[str]):
    """The real CLI, in this process (fast); UserErrors come back as `result.exception`."""
    from typer.testing import CliRunner

    from toolbench.cli.main import app

    return CliRunner().invoke(app, args)


def test_different_vocabularies_and_bad_settings_are_refused(pair, tiny_model_dir, tmp_path):
    from toolbench.foundation.errors import UserError

    result = invoke(cli_args((pair[0], tiny_model_dir), tmp_path / "x", tmp_path / "c", 2))
    assert isinstance(result.exception, UserError) and "different vocabularies" in str(result.exception)
    assert "\n" not in str(result.exception)
    result = invoke(cli_args(pair, tmp_path / "x", tmp_path / "c", 2, on_policy="0.5"))
    assert isinstance(result.exception, UserError) and "--mode online" in str(result.exception)
    plan = invoke(cli_args(pair, tmp_path / "x", tmp_path / "c", 2, select="adaspec") + ["--plan"])
    assert plan.exit_code == 0 and '"offline-white-fkl-adaspec0.4-II"' in plan.output
    assert not (tmp_path / "x").exists()


def test_two_processes_distill(pair, tmp_path):
    out = tmp_path / "two"
    result = subprocess.run(
        two_cpu_processes(*cli_args(pair, out, tmp_path / "cache", 4, eval_per_tool="1")),
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "train_record.json").read_text())
    assert record["counts"]["processes"] == 2 and record["counts"]["steps"] == 4
    assert "analytic α" in result.stdout


def kill_when(args: list[str], ready, timeout: float = 120) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "toolbench", *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + timeout
    while time.time() < deadline and not ready() and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_teacher_cache_resumes_after_kill(pair, tmp_path):
    from safetensors.torch import load_file

    from toolbench.distill.draft.teacher_cache import load_cache

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    extra = {"shard_size": "4", "eval_per_tool": "0", "samples": "48"}
    assert invoke(cli_args(pair, tmp_path / "a", whole, 1, **extra)).exit_code == 0

    def one_shard() -> bool:
        index = killed / "index.json"
        return index.exists() and len(json.loads(index.read_text())["shards"]) >= 1

    kill_when(cli_args(pair, tmp_path / "b", killed, 1, **extra), one_shard)
    index = json.loads((killed / "index.json").read_text())
    assert not index.get("complete"), "the cache finished before it could be killed"
    kept = {s["file"]: load_file(killed / s["file"]) for s in index["shards"]}
    assert invoke(cli_args(pair, tmp_path / "b", killed, 1, **extra)).exit_code == 0
    final = json.loads((killed / "index.json").read_text())
    assert final["complete"] and len(final["shards"]) == len({s["first"] for s in final["shards"]})
    for name, tensors in kept.items():  # finished shards were kept, not redone
        assert load_file(killed / name)["response_ids"].equal(tensors["response_ids"])
    a, b = load_cache(whole), load_cache(killed)
    assert len(a) == len(b) == sum(s["sequences"] for s in final["shards"])
    for x, y in zip(a, b, strict=True):
        assert x.prompt == y.prompt and x.response == y.response and x.topk_ids.equal(y.topk_ids)


def test_training_resumes_after_kill_to_the_uninterrupted_weights(pair, tmp_path):
    from safetensors.torch import load_file

    cache = tmp_path / "cache"
    extra = {"checkpoint_every": "5", "eval_per_tool": "0"}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert invoke(cli_args(pair, whole, cache, 30, **extra)).exit_code == 0
    kill_when(
        cli_args(pair, killed, cache, 30, **extra),
        lambda: bool(list((killed / "checkpoints").glob("step-*/trainer_state.json"))),
    )
    assert not (killed / "train_record.json").exists(), "the run finished before it could be killed"
    assert invoke(cli_args(pair, killed, cache, 30, **extra)).exit_code == 0
    record = json.loads((killed / "train_record.json").read_text())
    assert record["counts"]["resumed_from_step"] >= 5
    a, b = load_file(whole / "model.safetensors"), load_file(killed / "model.safetensors")
    for key in a:
        assert (a[key] - b[key]).abs().max() < 1e-5, key
