"""The in-place growing key/value cache (toolbench/core/kv_cache.py): the same keys and values as
transformers' concatenating `DynamicLayer` after any mix of appends, crops, beam reordering and
batch selection, and the same generations from a real (tiny) Llama."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.cache_utils import DynamicLayer

from tests.helpers import TINY_LLAMA
from toolbench.core.kv_cache import GrowingLayer, growing_cache

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 40)),
        st.tuples(st.just("crop"), st.integers(1, 30)),
        st.tuples(st.just("reorder"), st.permutations([0, 1, 2])),
        st.tuples(st.just("select"), st.sampled_from([[0, 1, 2], [2, 0, 1], [1, 1, 0]])),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(operations=OPERATIONS, seed=st.integers(0, 1_000))
def test_growing_layer_holds_what_a_dynamic_layer_holds(operations, seed):
    generator = torch.Generator().manual_seed(seed)
    grown, plain = GrowingLayer(), DynamicLayer()
    for operation, argument in operations:
        if operation == "append":
            keys = torch.randn(3, 2, argument, 4, generator=generator)
            values = torch.randn(3, 2, argument, 4, generator=generator)
            got, expected = grown.update(keys, values), plain.update(keys.clone(), values.clone())
            assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
        elif plain.get_seq_length() == 0:
            continue
        elif operation == "crop":
            count = min(argument, plain.get_seq_length() - 1) or 1
            grown.crop(-count)
            plain.crop(-count)
        elif operation == "reorder":
            grown.reorder_cache(torch.tensor(argument))
            plain.reorder_cache(torch.tensor(argument))
        else:
            grown.batch_select_indices(torch.tensor(argument))
            plain.batch_select_indices(torch.tensor(argument))
        assert grown.get_seq_length() == plain.get_seq_length()
        if plain.get_seq_length():
            assert torch.equal(grown.keys, plain.keys) and torch.equal(grown.values, plain.values)


def test_appending_one_position_does_not_copy_the_cache():
    """The point of the layer: a decoding step writes one position into the buffer it already has."""
    layer = GrowingLayer()
    layer.update(torch.randn(2, 2, 100, 4), torch.randn(2, 2, 100, 4))
    buffer = layer.keys.data_ptr()
    for _ in range(50):
        keys, _ = layer.update(torch.randn(2, 2, 1, 4), torch.randn(2, 2, 1, 4))
        assert keys.data_ptr() == buffer
    assert keys.shape == (2, 2, 150, 4)


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**TINY_LLAMA, bos_token_id=1, eos_token_id=2)).eval()


def test_generation_with_a_growing_cache_is_the_default_generation():
    model = tiny_llama()
    cache = growing_cache(model)
    assert cache is not None and all(type(layer) is GrowingLayer for layer in cache.layers)
    ids = torch.randint(3, 60, (2, 9))
    mask = torch.ones_like(ids)
    ids[1, :3], mask[1, :3] = 0, 0  # left padding
    options = {"max_new_tokens": 20, "do_sample": False, "pad_token_id": 0, "attention_mask": mask}
    with torch.no_grad():
        default = model.generate(ids, **options)
        grown = model.generate(ids, cache=cache, **options)
    assert torch.equal(grown, default)
    assert cache.get_seq_length() == 9 + 20 - 1  # the last token is never fed back
