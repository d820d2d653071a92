"""Position skipping (PoSE): each skipped row jumps once, right before a turn-boundary token, by at
most what keeps its last real token inside the window; everything else counts 0, 1, 2, …; and the
skipped ids reach the model through the trainer's loss."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import TINY_LLAMA, position_jumps
from toolbench.core.pointer_llama import PointerLlamaConfig, PointerLlamaForCausalLM
from toolbench.distill.training.positions import skipped_positions
from toolbench.distill.training.trainer import IGNORE, causal_lm_loss, collate

pytestmark = pytest.mark.usefixtures("one_torch_thread")
BOUNDARY = 4  # stands for `<|user|>`


@st.composite
def batches(draw):
    rows = draw(st.integers(1, 5))
    examples = []
    for _ in range(rows):
        ids = draw(st.lists(st.sampled_from([5, 6, 7, BOUNDARY]), min_size=1, max_size=40))
        examples.append({"input_ids": ids, "labels": ids})
    window = draw(st.integers(max(len(e["input_ids"]) for e in examples), 120))
    share = draw(st.sampled_from([0.0, 0.5, 1.0]))
    seeds = draw(st.lists(st.integers(0, 2**40), min_size=rows, max_size=rows))
    return collate(examples, pad_id=0, multiple=8), window, share, seeds


@given(batches())
@settings(max_examples=200, deadline=None)
def test_a_skipped_row_jumps_once_before_a_boundary_and_stays_inside_the_window(case):
    batch, window, share, seeds = case
    ids, mask = batch["input_ids"], batch["attention_mask"]
    positions = skipped_positions(ids, mask, window=window, share=share, boundary_ids=[BOUNDARY], seeds=seeds)
    assert positions.shape == ids.shape and int(positions.max()) <= window - 1
    again = skipped_positions(ids, mask, window=window, share=share, boundary_ids=[BOUNDARY], seeds=seeds)
    assert torch.equal(positions, again)  # a pure function of the seeds
    for row in range(ids.shape[0]):
        length = int(mask[row].sum())
        real = positions[row, :length]
        assert int(real[0]) == 0 and bool((real[1:] > real[:-1]).all())
        jumps = position_jumps(positions[row], length)
        assert len(jumps) <= 1
        if jumps:
            assert int(ids[row, jumps[0]]) == BOUNDARY  # the skip goes right before a boundary
        if share == 0.0:
            assert not jumps
        if share == 1.0 and length < window and BOUNDARY in ids[row, 1:length].tolist():
            assert jumps  # every row that can skip does


def test_skips_spread_over_the_window_and_the_boundaries():
    ids = torch.tensor([[1, 5, BOUNDARY, 6, 6, BOUNDARY, 7, 7, 7, 7]])
    mask = torch.ones_like(ids)
    ends, splits = set(), set()
    for seed in range(300):
        positions = skipped_positions(ids, mask, window=64, share=1.0, boundary_ids=[BOUNDARY], seeds=[seed])
        ends.add(int(positions[0, -1]))
        splits.add(next(i for i in range(1, 10) if positions[0, i] - positions[0, i - 1] > 1))
    assert splits == {2, 5}
    assert min(ends) <= 15 and max(ends) == 63  # from a skip of one to the window's last position


def test_skipped_position_ids_reach_the_model_through_the_loss():
    torch.manual_seed(0)
    model = PointerLlamaForCausalLM(PointerLlamaConfig(**TINY_LLAMA, pointer_dim=8)).eval()
    ids = [1, 9, 12, BOUNDARY, 20, 21, 22, 23, 5, 30, 31, 32]
    batch = collate([{"input_ids": ids, "labels": [IGNORE] * 9 + ids[9:]}], pad_id=0, multiple=4)
    with torch.no_grad():
        plain, _ = causal_lm_loss(model, batch)
        counted, _ = causal_lm_loss(model, {**batch, "position_ids": torch.arange(12)[None]})
        skipped, _ = causal_lm_loss(
            model,
            {
                **batch,
                "position_ids": skipped_positions(
                    batch["input_ids"],
                    batch["attention_mask"],
                    window=2048,
                    share=1.0,
                    boundary_ids=[BOUNDARY],
                    seeds=[0],
                ),
            },
        )
    assert counted.item() == pytest.approx(plain.item(), rel=1e-6)
    assert abs(skipped.item() - plain.item()) > 1e-4
