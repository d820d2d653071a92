"""Training on tiny sizes: SFT lowers the assistant loss and never trains on other tokens, 2
processes under `accelerate launch` follow the 1-process loss curve, and a killed run resumes from
its last checkpoint to the very weights an uninterrupted run reaches."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli
from tests.helpers import position_jumps, two_cpu_processes

pytestmark = pytest.mark.integration


def log_losses(folder: Path) -> list[tuple[int, float]]:
    lines = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
    return [(line["step"], line["loss"]) for line in lines]


def tiny_draft_args(tokenizer: Path, out: Path, cache: Path, steps: int, **extra: str) -> list[str]:
    args = [
        "train",
        "draft",
        "--generic",
        "--preset",
        "tiny",
        "--tokenizer",
        str(tokenizer),
        "--out",
        str(out),
    ]
    args += ["--steps", str(steps), "--batch-size", "8", "--block-size", "32", "--cache-dir", str(cache)]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", value]
    return args


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory, product_tokenizer_dir):
    from toolbench.distill.training.data import ConversationConfig, sft_examples
    from toolbench.distill.training.models import load_tokenizer
    from toolbench.pipelines.generate import GenerateConfig, generate

    samples = tmp_path_factory.mktemp("sft") / "samples.jsonl"
    generate(GenerateConfig(tools=["weather", "cat_api"], n=96, seed=3, split="train"), samples)
    tokenizer = load_tokenizer(product_tokenizer_dir)
    examples, stats = sft_examples(samples, tokenizer, ConversationConfig(max_length=768))
    return tokenizer, examples, stats, samples


def test_echo_conversations_repeat_the_request_and_train_only_the_repeat(sft_data):
    from toolbench.distill.training.data import ConversationConfig, echo_conversations, sft_examples
    from toolbench.distill.training.trainer import IGNORE
    from toolbench.pipelines.export import iter_samples

    tokenizer, examples, stats, samples_path = sft_data
    samples = list(iter_samples(samples_path))
    assert echo_conversations(samples, 0.0, 0) == []
    half = echo_conversations(samples, 0.5, 0)
    assert len(half) == 48 and len({m[0]["content"] for m in half}) == 48  # distinct requests below rate 1
    assert half == echo_conversations(samples, 0.5, 0) != echo_conversations(samples, 0.5, 1)  # seeded
    assert len(echo_conversations(samples, 1.5, 0)) == 144  # every request once, then half again
    for user, assistant in half:
        assert user["role"] == "user" and assistant == {"role": "assistant", "content": user["content"]}

    mixed, mixed_stats = sft_examples(samples_path, tokenizer, ConversationConfig(max_length=768), echo=0.5)
    assert mixed[: len(examples)] == examples  # the tool conversations are unchanged
    echoes = mixed[len(examples) :]
    assert len(echoes) == mixed_stats["echo_conversations"] == 48
    assert mixed_stats["echo_tokens"] == sum(len(e["input_ids"]) for e in echoes)
    assert stats["echo_conversations"] == stats["echo_tokens"] == 0
    assert {k: mixed_stats[k] for k in stats if not k.startswith("echo")} == {
        k: v for k, v in stats.items() if not k.startswith("echo")
    }  # the counts of the tool conversations are unchanged
    requests = {m[0]["content"] for m in half}
    for example in echoes:  # the label is the repeated request (and the turn's end), nothing else
        labelled = [t for t in example["labels"] if t != IGNORE]
        text = tokenizer.decode(labelled)
        assert text.endswith("<|end|>") and text.removesuffix("<|end|>") in requests
        assert "<tool_call>" not in tokenizer.decode(example["input_ids"])  # no tools offered: short


def test_demos_are_retrieved_as_eval_does_in_the_share_asked_and_of_other_templates_otherwise(sft_data):
    """`own_template_demos`: an in-distribution task at k = 3 gets demos of its own template (eval
    retrieves from the training templates), a held-out one never can; training shows both."""
    from toolbench.distill.training.data import ConversationConfig, conversations
    from toolbench.pipelines.export import iter_samples

    _, _, _, samples_path = sft_data
    samples = list(iter_samples(samples_path))
    template_of = {sample.query: sample.meta["template"] for sample in samples}

    def demo_kinds(rate: float) -> list[tuple[int, str, int]]:
        """Per conversation: demos, first turn (system prompt or not), demos of its own template."""
        rows = []
        config = ConversationConfig(own_template_demos=rate)
        for sample, (messages, _) in zip(samples, conversations(samples, samples_path, config), strict=True):
            users = [m["content"] for m in messages if m["role"] == "user"][:-1]  # the demos' requests
            own = sum(template_of[user] == sample.meta["template"] for user in users)
            rows.append((len(users), messages[0]["role"], own))
        return rows

    never, half, always = demo_kinds(0.0), demo_kinds(0.5), demo_kinds(1.0)
    assert [row[:2] for row in never] == [row[:2] for row in half] == [row[:2] for row in always]
    assert sum(row[0] > 0 for row in never) > 40  # k and the system prompt drawn as before
    assert all(own == 0 for _, _, own in never)
    with_own = sum(own > 0 for _, _, own in always)
    assert with_own > 0.5 * sum(row[0] > 0 for row in always)  # eval's nearest demos: mostly its own
    assert 0 < sum(own > 0 for _, _, own in half) < with_own


@pytest.mark.parametrize("copy_head", [False, True], ids=["llama", "copy-head"])
def test_sft_lowers_assistant_loss_and_masks_everything_else(sft_data, tmp_path, copy_head):
    import torch

    from toolbench.distill.training.models import new_model
    from toolbench.distill.training.trainer import IGNORE, TrainConfig, Trainer, causal_lm_loss, collate

    tokenizer, examples, stats, _ = sft_data
    assert stats["conversations"] == len(examples) > 60
    assert 0 < stats["assistant_tokens"] < stats["tokens"]
    for example in examples:  # every label is an assistant token: role markers are never targets
        labelled = {t for t in example["labels"] if t != IGNORE}
        assert not labelled & {
            tokenizer.convert_tokens_to_ids(t) for t in ("<|user|>", "<|tool|>", "<|system|>")
        }
    model = new_model("tiny", tokenizer, seed=0, copy_head=copy_head)
    batch = collate(examples[:16], tokenizer.pad_token_id)
    with torch.no_grad():
        before_sum, count = causal_lm_loss(model, batch)
    assert int(count) == int((batch["labels"][:, 1:] != IGNORE).sum())  # normalised by valid tokens only
    config = TrainConfig(
        max_steps=30, batch_size=8, learning_rate=3e-3, warmup_steps=3, dtype="float32", probe_every=10
    )
    probed_in: list[bool] = []

    def probe(probed_model) -> dict[str, float]:
        probed_in.append(probed_model.training)
        return {"copy_value_acc": 0.25}

    Trainer(model, tokenizer, examples, config, tmp_path / "sft", progress=False, probe=probe).train()
    log = [json.loads(line) for line in (tmp_path / "sft" / "train_log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in log if "copy_value_acc" in line] == [1, 10, 20, 30]
    assert probed_in == [False] * 4 and model.training  # probed in eval mode, then back to training
    with torch.no_grad():
        after_sum, _ = causal_lm_loss(model, batch)
    before, after = float(before_sum / count), float(after_sum / count)
    # the copy head starts lower (copying the request's tokens is right from step 0 on echoes of it)
    assert after < before - (0.5 if copy_head else 1.0), (before, after)
    # the loss is exactly the mean cross-entropy over assistant positions, computed independently
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        targets = batch["labels"][:, 1:]
        keep = targets != IGNORE
        picked = torch.log_softmax(logits.float(), -1)[keep].gather(-1, targets[keep][:, None])
        assert abs(float(-picked.mean()) - after) < 1e-4
    saved = tmp_path / "sft"
    assert (saved / "model.safetensors").exists() and (saved / "loss.png").stat().st_size > 1000
    record = json.loads((saved / "train_record.json").read_text())
    assert record["counts"]["steps"] == 30 and record["seed"] == 0 and "torch" in record["packages"]


def test_two_processes_follow_the_one_process_loss_curve(product_tokenizer_dir, generic_cache, tmp_path):
    one = tmp_path / "one"
    run_cli(
        *tiny_draft_args(product_tokenizer_dir, one, generic_cache, 12, checkpoint_every="100"), check=True
    )
    two = tmp_path / "two"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        two_cpu_processes(*tiny_draft_args(product_tokenizer_dir, two, generic_cache, 12)),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((two / "train_record.json").read_text())
    assert record["counts"]["processes"] == 2
    a, b = log_losses(one), log_losses(two)
    assert [s for s, _ in a] == [s for s, _ in b] == [10, 12]
    for (_, x), (_, y) in zip(a, b, strict=True):  # same global batches, exact token-mean loss
        assert abs(x - y) < 0.02 * x, (a, b)


def test_resume_after_kill_reaches_the_uninterrupted_weights(product_tokenizer_dir, generic_cache, tmp_path):
    from safetensors.torch import load_file

    steps = "60"
    whole = tmp_path / "whole"
    run_cli(
        *tiny_draft_args(product_tokenizer_dir, whole, generic_cache, 60, checkpoint_every="10"), check=True
    )

    killed = tmp_path / "killed"
    args = tiny_draft_args(product_tokenizer_dir, killed, generic_cache, int(steps), checkpoint_every="10")
    process = subprocess.Popen(
        [sys.executable, "-m", "toolbench", *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list((killed / "checkpoints").glob("step-*/trainer_state.json")):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "train_record.json").exists(), "the run finished before it could be killed"
    result = run_cli(*args, check=True)
    record = json.loads((killed / "train_record.json").read_text())
    assert record["counts"]["resumed_from_step"] >= 10
    assert "generic draft: 60 steps" in result.stdout
    steps_logged = [s for s, _ in log_losses(killed)]
    assert steps_logged == list(range(10, 61, 10))  # nothing lost, nothing duplicated
    a, b = load_file(whole / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] - b[key]).abs().max() < 1e-5, key


def test_held_parameters_stay_still_then_ramp_back_in(sft_data, tmp_path):
    """TrainConfig.hold (the copy prior's circuit): the named parameters do not move for hold_steps
    (their gradients flow, their step size is zero), then their rate ramps up over release_steps;
    every other parameter trains from the first step."""
    import torch

    from toolbench.distill.training.models import new_model
    from toolbench.distill.training.trainer import TrainConfig, Trainer, parameter_groups

    tokenizer, examples, _, _ = sft_data
    model = new_model("tiny", tokenizer, seed=0)
    held_prefix = "model.layers.0.self_attn."
    config = TrainConfig(
        max_steps=8,
        batch_size=8,
        learning_rate=3e-3,
        warmup_steps=0,
        min_lr_ratio=1.0,
        dtype="float32",
        probe_every=2,
        log_every=1,
        hold=[held_prefix],
        hold_steps=4,
        release_steps=4,
    )
    groups = parameter_groups(model, config)
    held_names = {n for n, _ in model.named_parameters() if n.startswith(held_prefix)}
    assert len(held_names) == 4  # q, k, v, o projections of layer 0 (no biases in this preset)
    assert sum(len(g["params"]) for g in groups if g["held"]) == len(held_names)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    weight = lambda m, name: dict(m.named_parameters())[name].detach().clone()  # noqa: E731
    held_name, free_name = f"{held_prefix}q_proj.weight", "model.layers.1.self_attn.q_proj.weight"
    start = {name: weight(model, name) for name in (held_name, free_name)}
    seen: dict[str, list[bool]] = {held_name: [], free_name: []}

    def probe(probed_model) -> dict[str, float]:
        for name in seen:
            seen[name].append(not torch.equal(weight(probed_model, name), start[name]))
        return {}

    Trainer(model, tokenizer, examples, config, tmp_path / "held", progress=False, probe=probe).train()
    # probed after steps 1, 2, 4, 6, 8: held still through step 4, moved by step 6
    assert seen[held_name] == [False, False, False, True, True]
    assert seen[free_name] == [True] * 5
    log = [json.loads(line) for line in (tmp_path / "held" / "train_log.jsonl").read_text().splitlines()]
    held_lr = [line["held_lr"] for line in log]  # the rate of the step after each line
    assert held_lr[:3] == [0.0, 0.0, 0.0]
    assert held_lr[3:7] == pytest.approx([3e-3 * k / 4 for k in (1, 2, 3, 4)], rel=0.02)
    with pytest.raises(ValueError, match="names no parameter"):
        parameter_groups(model, config.model_copy(update={"hold": ["model.nosuch."]}))


def test_position_skip_moves_half_the_rows_ahead_before_a_user_turn_the_same_way_every_run(
    sft_data, tmp_path
):
    """TrainConfig.position_skip (PoSE, distill/training/positions.py) through the real trainer:
    the skipped position ids reach the loss, about the share asked of the rows jump once, right
    before `<|user|>` and inside the model's window, and a second run skips exactly alike."""
    import torch

    from toolbench.distill.training.models import new_model
    from toolbench.distill.training.tokenizer import USER_TURN
    from toolbench.distill.training.trainer import TrainConfig, Trainer, causal_lm_loss
    from toolbench.foundation.errors import UserError

    tokenizer, examples, _, _ = sft_data
    user = tokenizer.convert_tokens_to_ids(USER_TURN)
    config = TrainConfig(
        max_steps=4, batch_size=8, dtype="float32", position_skip=0.5, skip_before=[USER_TURN], log_every=1
    )

    def run(out: Path) -> list:
        seen = []

        def loss_fn(model, batch):
            seen.append((batch["input_ids"], batch["attention_mask"], batch["position_ids"]))
            return causal_lm_loss(model, batch)

        model = new_model("tiny", tokenizer, seed=0, copy_head=True)
        Trainer(model, tokenizer, examples, config, out, loss_fn=loss_fn, progress=False).train()
        window = model.config.max_position_embeddings
        assert all(int(positions.max()) < window for _, _, positions in seen)
        return seen

    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    skipped = rows = 0
    for (ids, mask, positions), (_, _, again) in zip(first, second, strict=True):
        assert torch.equal(positions, again)
        for row in range(ids.shape[0]):
            jumps = position_jumps(positions[row], int(mask[row].sum()))
            assert len(jumps) <= 1 and all(int(ids[row, j]) == user for j in jumps)
            skipped += bool(jumps)
            rows += 1
    assert rows == 32 and 8 <= skipped <= 24  # share 0.5 of 32 rows (each has user turns)
    with pytest.raises(UserError, match="skip_before"):
        Trainer(
            new_model("tiny", tokenizer, seed=0),
            tokenizer,
            examples,
            config.model_copy(update={"skip_before": ["<|nosuch|>"]}),
            tmp_path / "c",
            progress=False,
        )
