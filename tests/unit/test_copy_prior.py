"""The copy prior (distill/training/copy_prior.py): at step 0 the model continues spans it has seen."""

from __future__ import annotations

import random

import pytest
import torch

from toolbench.distill.training.align import AlignConfig
from toolbench.distill.training.copy_prior import apply_copy_prior, config_overrides
from toolbench.foundation.errors import UserError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOCAB = 600


def llama(copy_prior: bool, hidden: int = 192, heads: int = 4, layers: int = 3, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        tie_word_embeddings=True,
        **(config_overrides() if copy_prior else {}),
    )
    config._attn_implementation = "eager"  # attention weights for the offset-head test
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    return apply_copy_prior(model) if copy_prior else model


def repeated_spans(seed: int, filler: int = 40) -> tuple[list[int], list[int]]:
    """Random tokens with five 6-token spans inside, then the spans again in another order; returns
    (ids, positions whose next token continues a repeated span from its second token on)."""
    rng = random.Random(seed)
    spans = [[rng.randrange(10, VOCAB) for _ in range(6)] for _ in range(5)]
    ids = [1]
    for span in spans:
        ids += [rng.randrange(10, VOCAB) for _ in range(filler)] + span
    ids.append(2)
    rng.shuffle(spans)
    targets = []
    for span in spans:
        start = len(ids)
        ids += span
        targets += range(start + 1, start + len(span) - 1)  # tokens 3..6: two tokens of the span in place
    return ids, targets


def continuation_accuracy(model, seeds=range(4), filler: int = 40) -> float:
    right = total = 0
    for seed in seeds:
        ids, positions = repeated_spans(seed, filler)
        with torch.no_grad():
            predicted = model(input_ids=torch.tensor([ids])).logits[0].argmax(-1)
        right += sum(int(predicted[p] == ids[p + 1]) for p in positions)
        total += len(positions)
    return right / total


def test_a_model_with_the_prior_continues_spans_from_its_context_at_step_0():
    assert continuation_accuracy(llama(copy_prior=True)) >= 0.95
    assert continuation_accuracy(llama(copy_prior=True), filler=300) >= 0.95  # ~1,600 tokens back
    assert continuation_accuracy(llama(copy_prior=False)) < 0.05  # what random weights do


def test_layer_0_holds_a_previous_token_head_and_a_two_back_head():
    ids, _ = repeated_spans(0)
    with torch.no_grad():
        attentions = llama(copy_prior=True)(input_ids=torch.tensor([ids]), output_attentions=True).attentions
    first = attentions[0][0]  # heads x query x key
    n = len(ids)
    assert float(torch.stack([first[0, i, i - 1] for i in range(1, n)]).mean()) > 0.99
    assert float(torch.stack([first[1, i, i - 2] for i in range(2, n)]).mean()) > 0.99


def test_the_prior_echoes_a_real_request_through_the_product_tokenizer(product_tokenizer_dir):
    """In the chat layout the target is trained on, teacher-forced: the assistant's repeat of the
    request (the echo task), every token after the first, is mostly predicted at step 0."""
    from toolbench.distill.training.data import tokenize_conversation
    from toolbench.distill.training.models import load_tokenizer, new_model

    tokenizer = load_tokenizer(product_tokenizer_dir)
    model = new_model("target", tokenizer, copy_prior=True).eval()
    request = "Book a hotel in Kyoto from 2025-03-14 to 2025-03-18 for 3 adults, at most $1,450."
    example = tokenize_conversation(
        tokenizer, [{"role": "user", "content": request}, {"role": "assistant", "content": request}], []
    )
    ids, labels = example["input_ids"], example["labels"]
    with torch.no_grad():
        predicted = model(input_ids=torch.tensor([ids])).logits[0].argmax(-1)
    answer = [i for i, label in enumerate(labels) if label != -100]
    copied = answer[1 : len(tokenizer(request, add_special_tokens=False)["input_ids"])]
    right = sum(int(predicted[i - 1] == ids[i]) for i in copied)
    assert right / len(copied) >= 0.8


def test_a_saved_model_reloads_with_its_circuit(tmp_path):
    from transformers import AutoModelForCausalLM

    model = llama(copy_prior=True)
    model.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert again.config.attention_bias is True
    ids = torch.tensor([repeated_spans(1)[0]])
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, again(input_ids=ids).logits, atol=1e-4)


def test_shapes_the_circuit_does_not_fit_are_refused_in_one_line(product_tokenizer_dir):
    from toolbench.cli.train import check_copy_prior
    from toolbench.distill.training.models import load_tokenizer, new_model

    with pytest.raises(UserError, match=r"needs >= 3 attention heads and >= 2 layers \(this model: 2 heads"):
        new_model("draft", load_tokenizer(product_tokenizer_dir), copy_prior=True)
    with pytest.raises(UserError, match=r"^--copy-prior with --preset tiny: the copy prior needs >= 3"):
        check_copy_prior("tiny")
    check_copy_prior("target")  # fits: no error
    with pytest.raises(UserError, match="attention_bias=True"):
        apply_copy_prior(llama(copy_prior=False))


def test_align_config_carries_the_prior_to_the_stage_that_builds_the_model():
    assert AlignConfig(copy_prior=True).pretrain.copy_prior is True
    assert AlignConfig().pretrain.copy_prior is False
    without = AlignConfig(copy_prior=True, pretrain=None)
    assert without.pretrain is None
    assert AlignConfig.model_validate(without.model_dump()) == without  # a run record reloads as is
