"""SFT batches are right-padded, so the trainer drops their attention mask (attention then runs its
causal kernel): the loss must be the masked one exactly, for a plain Llama and the copy-head one,
and a batch padded anywhere else keeps its mask."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from tests.helpers import TINY_LLAMA
from toolbench.core.pointer_llama import PointerLlamaConfig, PointerLlamaForCausalLM
from toolbench.distill.training.trainer import IGNORE, causal_lm_loss, collate, needed_mask

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def right_padded_batch() -> dict:
    generator = torch.Generator().manual_seed(0)
    examples = []
    for length in (23, 9, 17):
        ids = torch.randint(3, 60, (length,), generator=generator).tolist()
        labels = [IGNORE] * (length // 2) + ids[length // 2 :]
        examples.append({"input_ids": ids, "labels": labels})
    return collate(examples, pad_id=0, multiple=8)


@pytest.mark.parametrize("model_class", [LlamaForCausalLM, PointerLlamaForCausalLM])
def test_the_loss_without_the_mask_of_a_right_padded_batch_is_the_masked_loss(model_class):
    torch.manual_seed(0)
    config = (
        PointerLlamaConfig(**TINY_LLAMA, pointer_dim=8)
        if model_class is PointerLlamaForCausalLM
        else LlamaConfig(**TINY_LLAMA)
    )
    model = model_class(config).eval()
    batch = right_padded_batch()
    assert needed_mask(batch["attention_mask"]) is None
    with torch.no_grad():
        unmasked, count = causal_lm_loss(model, batch)
        masked = model(**batch, num_items_in_batch=1).loss
    assert count == 12 + 5 + 9  # the second half of each row
    assert unmasked.item() == pytest.approx(masked.item(), rel=1e-5)


def test_a_mask_with_padding_before_real_tokens_is_kept():
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    holes = torch.tensor([[1, 0, 1, 0], [1, 1, 1, 1]])
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
    assert needed_mask(left) is left and needed_mask(holes) is holes
    assert needed_mask(right) is None
