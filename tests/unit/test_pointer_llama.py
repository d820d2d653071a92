"""The copy-head Llama (toolbench/core/pointer_llama.py): a causal LM like any other to every
caller (cached generation, padding, saving, speculative decoding), that learns to copy fast."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from toolbench.core.pointer_llama import MODEL_TYPE, PointerLlamaConfig, PointerLlamaForCausalLM

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOCAB = 60


def pointer_model(
    seed: int = 0, hidden: int = 32, layers: int = 2, gate_sees_copy: bool = True, scramble_gate: bool = True
) -> PointerLlamaForCausalLM:
    """A tiny copy-head model; with `scramble_gate` its gate's view of the copies (zero in a new
    model) is random, so the tests of caching and padding exercise that path too."""
    config = PointerLlamaConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        pad_token_id=0,
        tie_word_embeddings=True,
        pointer_dim=16,
        gate_sees_copy=gate_sees_copy,
    )
    torch.manual_seed(seed)
    model = PointerLlamaForCausalLM(config).eval()
    if gate_sees_copy and scramble_gate:
        with torch.no_grad():
            model.copy_head.gate_context.weight.normal_(0.0, 1.0)
    return model


def _trained(model: PointerLlamaForCausalLM, batch, steps: int) -> PointerLlamaForCausalLM:
    """`steps` AdamW steps (lr 3e-3) on `batch()`'s (ids, labels); the model in eval mode."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        ids, labels = batch()
        loss = model(ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_logits_are_normalised_log_probabilities():
    model = pointer_model()
    ids = torch.randint(1, VOCAB, (2, 15))
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (2, 15, VOCAB)
    assert torch.allclose(torch.logsumexp(logits, -1), torch.zeros(2, 15), atol=1e-5)


def test_cached_forward_matches_the_full_one():
    model = pointer_model()
    ids = torch.randint(1, VOCAB, (2, 14))
    with torch.no_grad():
        full = model(ids).logits
        out = model(ids[:, :6], use_cache=True)
        steps = [out.logits]
        for t in range(6, 14):
            out = model(ids[:, t : t + 1], cache=out.cache, use_cache=True)
            steps.append(out.logits)
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)
    assert len(out.cache.layers) == model.config.num_hidden_layers + 1  # the copy head's own layer


def test_generate_equals_a_greedy_loop_without_cache_and_with_left_padding():
    model = pointer_model(seed=1)
    ids = torch.randint(1, VOCAB, (2, 9))
    with torch.no_grad():
        generated = model.generate(ids, max_new_tokens=7, do_sample=False, pad_token_id=0)
        loop = ids
        for _ in range(7):
            loop = torch.cat([loop, model(loop).logits[:, -1].argmax(-1, keepdim=True)], 1)
        assert torch.equal(generated, loop)
        padded = ids.clone()
        padded[1, :3] = 0
        mask = torch.ones_like(padded)
        mask[1, :3] = 0
        alone = model(padded[1:, 3:]).logits[0]
        in_batch = model(padded, attention_mask=mask).logits[1, 3:]
    assert torch.allclose(in_batch, alone, atol=1e-5)


def test_labelled_loss_is_the_cross_entropy_of_the_logits():
    model = pointer_model(seed=2)
    ids = torch.randint(1, VOCAB, (3, 12))
    labels = ids.clone()
    labels[:, :5] = -100
    with torch.no_grad():
        logits = model(ids).logits
        summed = model(ids, labels=labels, num_items_in_batch=1).loss
        mean = model(ids, labels=labels).loss
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), reduction="sum")
    assert summed.item() == pytest.approx(expected.item(), rel=1e-5)
    assert mean.item() == pytest.approx(expected.item() / 3 / 7, rel=1e-5)  # 7 labelled next tokens a row


def test_labelled_loss_with_answers_at_different_places_in_each_row():
    """Only labelled positions go through the heads, each row's own (SFT labels the answers, which
    sit at different places per row, and a padded row has fewer): the loss and its gradients are
    those of the full mixture's cross entropy."""
    model = pointer_model(seed=3)
    ids = torch.randint(1, VOCAB, (3, 16))
    mask = torch.ones_like(ids)
    mask[2, 11:] = 0  # a right-padded row
    labels = torch.full_like(ids, -100)
    labels[0, 3:7] = ids[0, 3:7]  # two answers in row 0
    labels[0, 12:16] = ids[0, 12:16]
    labels[1, 9:16] = ids[1, 9:16]
    labels[2, 5:9] = ids[2, 5:9]
    loss = model(ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    fast = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    logits = model(ids, attention_mask=mask).logits
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1))
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    for name, p in model.named_parameters():
        if p.grad is not None:
            assert torch.allclose(fast[name], p.grad, atol=1e-6), name


def test_saved_folder_loads_through_the_auto_classes(tmp_path):
    from transformers import AutoModelForCausalLM

    from toolbench.distill.training.models import load_causal_lm, load_config

    config = pointer_model().config.to_dict()
    config.update(copy_exclude_ids=[2, 3])  # special tokens: loaded once as uninitialised memory
    torch.manual_seed(3)
    model = PointerLlamaForCausalLM(PointerLlamaConfig(**config)).eval()
    with torch.no_grad():  # learned values, not a new head's (loading once set these back)
        model.copy_head.match.copy_(torch.tensor([6.5, 2.5]))
        model.copy_head.gate.bias.copy_(torch.tensor([0.3, -1.0, 2.0]))
    model.save_pretrained(tmp_path)
    assert load_config(tmp_path).model_type == MODEL_TYPE
    ids = torch.tensor([[7, 2, 9, 3, 2, 11, 3, 9, 2, 7]])
    for loaded in (load_causal_lm(tmp_path), AutoModelForCausalLM.from_pretrained(tmp_path)):
        assert isinstance(loaded, PointerLlamaForCausalLM)
        assert loaded.copy_head.exclude_ids == [2, 3]
        with torch.no_grad():
            assert torch.equal(loaded.eval()(ids).logits, model(ids).logits)


def test_continues_a_repeated_span_before_any_training():
    """The continue-a-span attention's match bonus: a new model copies what followed the last
    occurrence of the current two tokens (teacher-forced, random tokens)."""
    model = pointer_model(seed=4, scramble_gate=False)
    rng = random.Random(0)
    right = total = 0
    for _ in range(4):
        span = [rng.randrange(1, VOCAB) for _ in range(6)]
        ids = (
            [rng.randrange(1, VOCAB) for _ in range(20)]
            + span
            + [rng.randrange(1, VOCAB) for _ in range(20)]
            + span
        )
        with torch.no_grad():
            predicted = model(torch.tensor([ids])).logits[0].argmax(-1).tolist()
        start = len(ids) - len(span)
        for position in range(start + 1, len(ids) - 1):  # two tokens of the span in place
            right += predicted[position] == ids[position + 1]
            total += 1
    assert right / total >= 0.9


def test_learns_to_copy_the_value_after_a_key_in_a_hundred_steps():
    """A lookup a plain decoder needs an induction circuit for: a key token somewhere, its value
    after it, then the key again at the end; the value must follow. The copy head learns it."""
    rng = random.Random(1)
    KEYS = range(2, 12)

    def batch(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
        rows = []
        for _ in range(n):
            ids = [rng.randrange(20, VOCAB) for _ in range(16)]
            key, value = rng.choice(KEYS), rng.randrange(20, VOCAB)
            at = rng.randrange(0, 14)
            ids[at : at + 2] = [key, value]
            rows.append([1, *ids, 12, key, value])  # 12: "now the key again"
        ids = torch.tensor(rows)
        labels = torch.full_like(ids, -100)
        labels[:, -1] = ids[:, -1]
        return ids, labels

    model = _trained(pointer_model(seed=5, scramble_gate=False), batch, 100)
    ids, _ = batch(200)
    with torch.no_grad():
        predicted = model(ids[:, :-1]).logits[:, -1].argmax(-1)
    assert (predicted == ids[:, -1]).float().mean().item() >= 0.9


def test_speculative_decoding_with_a_copy_head_target_is_lossless():
    from transformers import LlamaConfig, LlamaForCausalLM

    from toolbench.distill.speculative.decoding import hf_decode, speculative_decode, target_decode

    target = pointer_model(seed=6)
    torch.manual_seed(7)
    draft = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
        )
    ).eval()
    prompt = torch.randint(1, VOCAB, (12,))
    alone = target_decode(target, prompt, 20)
    assert speculative_decode(target, draft, prompt, 20, 4).tokens == alone.tokens
    assert hf_decode(target, prompt, 20, draft=draft, gamma=4, pad_id=0).tokens == alone.tokens


def test_new_model_builds_a_copy_head_preset():
    from toolbench.distill.training.models import new_model

    tokenizer = type(
        "T", (), {"__len__": lambda self: VOCAB, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
    )()
    model = new_model("tiny", tokenizer, seed=0, copy_head=True)
    assert isinstance(model, PointerLlamaForCausalLM)
    assert model.config.gate_sees_copy and hasattr(model.copy_head, "gate_context")
    assert not new_model("tiny", tokenizer, seed=0, copy_head=True, gate_view=False).config.gate_sees_copy
    assert model.config.model_type == MODEL_TYPE
    assert not isinstance(new_model("tiny", tokenizer, seed=0), PointerLlamaForCausalLM)


def test_copies_neither_from_its_own_answer_nor_special_tokens():
    """With a boundary id, the copy attentions see only positions before the latest boundary (an
    answer copies from its prompt, not from itself: self-copying looped in greedy decoding); the
    excluded ids are never copied."""
    config = pointer_model().config.to_dict()
    config.update(copy_boundary_id=5, copy_exclude_ids=[2])
    torch.manual_seed(0)
    model = PointerLlamaForCausalLM(PointerLlamaConfig(**config)).eval()
    head = model.copy_head
    ids = torch.tensor([[1, 30, 31, 2, 5, 40, 41, 42]])  # prompt 30 31 <end>, boundary 5, answer 40 41 42
    hidden = torch.randn(1, 8, 32)
    with torch.no_grad():
        keys = head.keys(hidden)
        here, onward = head._attend(
            hidden, keys, ids, torch.ones_like(ids, dtype=torch.bool), torch.arange(8)
        )
    for t in range(5, 8):  # inside the answer: nothing at or after the boundary, never token 2
        assert here[0, t, 4:].sum() == 0 and onward[0, t, 4:].sum() == 0
        assert here[0, t, 3] == 0 and onward[0, t, 2] == 0  # token 2 at position 3 is not copied
        assert here[0, t, :3].sum() == pytest.approx(1.0)
    assert here[0, 2, :3].sum() == pytest.approx(1.0)  # before any boundary: everything before t


def test_a_folder_saved_before_the_gate_saw_the_copies_behaves_as_trained():
    """`gate_sees_copy` False (the default of a config that lacks it) builds no new weights; a new
    model's gate view starts at zero, so with the same other weights the two give equal logits."""
    old = pointer_model(seed=8, gate_sees_copy=False)
    assert not hasattr(old.copy_head, "gate_context")
    assert "gate_sees_copy" not in {k for k, v in PointerLlamaConfig().to_diff_dict().items() if v}
    new = pointer_model(seed=8, scramble_gate=False)
    missing, unexpected = new.load_state_dict(old.state_dict(), strict=False)
    assert sorted(missing) == ["copy_head.gate_context.weight", "copy_head.source.weight"] and not unexpected
    ids = torch.randint(1, VOCAB, (2, 12))
    with torch.no_grad():
        assert torch.allclose(new(ids).logits, old(ids).logits, atol=1e-6)
        new.copy_head.gate_context.weight.normal_()
        assert not torch.allclose(new(ids).logits, old(ids).logits, atol=1e-3)


def _span_end_accuracy(gate_sees_copy: bool, steps: int = 150) -> float:
    """Train on: a value of 1-4 random tokens somewhere in the context, followed by token 13; then
    the key again, the value copied, and 14 ("close") right after it. Returns the share of held
    rows whose value and close are all predicted right (teacher-forced)."""
    rng = random.Random(2)

    def batch(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
        rows, answers = [], []
        for _ in range(n):
            value = [rng.randrange(20, VOCAB) for _ in range(rng.randint(1, 4))]
            ids = [rng.randrange(20, VOCAB) for _ in range(16)]
            at = rng.randrange(0, 10)
            ids[at : at + len(value) + 2] = [11, *value, 13]
            rows.append([1, *ids[:16], 12, 11, *value, 14] + [0] * (4 - len(value)))
            answers.append(len(value) + 1)
        ids = torch.tensor(rows)
        labels = torch.full_like(ids, -100)
        for row, count in enumerate(answers):
            labels[row, 19 : 19 + count] = ids[row, 19 : 19 + count]
        return ids, labels

    model = _trained(pointer_model(seed=9, gate_sees_copy=gate_sees_copy, scramble_gate=False), batch, steps)
    ids, labels = batch(200)
    with torch.no_grad():
        predicted = model(ids).logits.argmax(-1)
    rows = [
        all(predicted[r, t - 1] == labels[r, t] for t in range(19, 24) if labels[r, t] != -100)
        for r in range(ids.shape[0])
    ]
    return sum(rows) / len(rows)


def test_the_gate_sees_where_a_copied_span_ends():
    """Where a span ends shows in the source token after it, which the gate reads through the
    continue attention; a gate on h_t alone has to learn that lookup (an induction circuit)."""
    with_view, without = _span_end_accuracy(True), _span_end_accuracy(False)
    assert with_view >= 0.9
    assert without <= with_view - 0.2
