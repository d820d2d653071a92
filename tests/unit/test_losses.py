"""Distillation losses against independent formulas: identities, bounds, masking, top-k limits,
and AdaSPEC's exact selection count."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from toolbench.distill.training.losses import (
    LOSSES,
    TopK,
    adaspec_select,
    cross_entropy_loss,
    distill_loss,
    jsd,
    per_token_loss,
    selected_count,
    tvd,
)

VOCAB = 11


def logits(seed: int, shape=(3, 5, VOCAB), scale: float = 3.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def topk_of(teacher: torch.Tensor, k: int) -> TopK:
    logprobs = F.log_softmax(teacher, -1)
    values, ids = logprobs.topk(k, -1)
    return TopK(ids.int(), values.half())


seeds = st.integers(0, 10_000)


@settings(max_examples=25, deadline=None)
@given(seeds, seeds)
def test_fkl_equals_torch_kl_div_on_full_logits(a: int, b: int):
    student, teacher = logits(a), logits(b)
    mask = torch.ones(3, 5, dtype=torch.bool)
    total, count = distill_loss("fkl", student, teacher, mask)
    reference = F.kl_div(
        F.log_softmax(student, -1), F.log_softmax(teacher, -1), log_target=True, reduction="sum"
    )
    assert int(count) == 15
    assert torch.allclose(total, reference, rtol=1e-4, atol=1e-5)
    rkl, _ = distill_loss("rkl", student, teacher, mask)
    swapped = F.kl_div(
        F.log_softmax(teacher, -1), F.log_softmax(student, -1), log_target=True, reduction="sum"
    )
    assert torch.allclose(rkl, swapped, rtol=1e-4, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(seeds, seeds)
def test_tvd_and_jsd_are_symmetric_and_bounded(a: int, b: int):
    p, q = F.log_softmax(logits(a, scale=6), -1), F.log_softmax(logits(b, scale=6), -1)
    assert torch.allclose(tvd(p, q), tvd(q, p), atol=1e-6)
    assert torch.allclose(jsd(p, q, 0.5), jsd(q, p, 0.5), atol=1e-6)
    assert float(tvd(p, q).max()) <= 1 + 1e-6 and float(tvd(p, q).min()) >= 0
    assert float(jsd(p, q, 0.5).max()) <= math.log(2) + 1e-6 and float(jsd(p, q, 0.5).min()) >= -1e-6
    # TVD by its other formula: 1 − Σ min(p, q) (the analytic acceptance α)
    assert torch.allclose(tvd(p, q), 1 - torch.minimum(p.exp(), q.exp()).sum(-1), atol=1e-5)
    # JSD(0.5) by the textbook formula with m = (p + q) / 2
    m = (p.exp() + q.exp()) / 2
    textbook = 0.5 * (p.exp() * (p - m.log())).sum(-1) + 0.5 * (q.exp() * (q - m.log())).sum(-1)
    assert torch.allclose(jsd(p, q, 0.5), textbook, atol=1e-5)


def test_jsd_endpoints_are_forward_and_reverse_kl():
    student, teacher = logits(1), logits(2)
    mask = torch.ones(3, 5, dtype=torch.bool)
    fkl, rkl = distill_loss("fkl", student, teacher, mask)[0], distill_loss("rkl", student, teacher, mask)[0]
    assert torch.allclose(distill_loss("jsd", student, teacher, mask, beta=0.0)[0], fkl)
    assert torch.allclose(distill_loss("jsd", student, teacher, mask, beta=1.0)[0], rkl)
    # near the endpoints the generalized JSD behaves like β·FKL and (1−β)·RKL
    small = distill_loss("jsd", student, teacher, mask, beta=1e-4)[0]
    assert abs(float(small / 1e-4 - fkl)) < 0.05 * float(fkl)


@pytest.mark.parametrize("name", LOSSES)
def test_zero_for_identical_inputs_full_and_top_k(name: str):
    same = logits(7)
    mask = torch.ones(3, 5, dtype=torch.bool)
    assert abs(float(distill_loss(name, same, same, mask)[0])) < 1e-5
    assert abs(float(distill_loss(name, same, topk_of(same, 4), mask)[0])) < 2e-3  # fp16 teacher values


@pytest.mark.parametrize("name", LOSSES)
def test_masking_and_normalisation_by_valid_tokens(name: str):
    student, teacher = logits(3), logits(4)
    mask = torch.zeros(3, 5, dtype=torch.bool)
    mask[0, :2] = True
    mask[2, 4] = True
    total, count = distill_loss(name, student, teacher, mask)
    assert int(count) == 3
    per = per_token_loss(name, student, teacher)
    assert torch.allclose(total, per[0, 0] + per[0, 1] + per[2, 4])
    garbage = student.clone()
    garbage[~mask] = 1e4  # masked positions cannot change the loss
    assert torch.allclose(distill_loss(name, garbage, teacher, mask)[0], total, atol=1e-5)


def test_black_box_cross_entropy_skips_ignored_labels():
    student = logits(5)
    labels = torch.randint(0, VOCAB, (3, 5), generator=torch.Generator().manual_seed(0))
    labels[1] = -100
    total, count = cross_entropy_loss(student, labels)
    reference = F.cross_entropy(student.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100)
    assert int(count) == 10
    assert torch.allclose(total / count, reference, atol=1e-5)


@pytest.mark.parametrize("name", LOSSES)
def test_top_k_converges_to_full_as_k_reaches_the_vocabulary(name: str):
    student, teacher = logits(8), logits(9, scale=2)
    mask = torch.ones(3, 5, dtype=torch.bool)
    full = float(distill_loss(name, student, teacher, mask)[0])
    errors = []
    for k in (2, 5, 8, VOCAB):
        exact = TopK(*reversed(F.log_softmax(teacher, -1).topk(k, -1)))
        errors.append(abs(float(distill_loss(name, student, exact, mask)[0]) - full))
    assert errors[-1] < 1e-4 * max(1.0, full)
    # the error shrinks with every k: the top-k sets are nested, so each bucketing refines the one
    # before and the divergence only grows towards the full one (data-processing inequality)
    assert all(
        later <= earlier + 1e-5 * max(1.0, full)
        for earlier, later in zip(errors[:-1], errors[1:], strict=True)
    ), errors
    # the coarse-grained divergence never exceeds the full one (data-processing inequality)
    for k in (2, 5):
        exact = TopK(*reversed(F.log_softmax(teacher, -1).topk(k, -1)))
        assert float(distill_loss(name, student, exact, mask)[0]) <= full + 1e-5


def test_top_k_gradients_are_finite():
    student = logits(10).requires_grad_()
    teacher = topk_of(logits(11, scale=20), 3)  # a very peaked teacher: tiny rest mass
    for name in LOSSES:
        student.grad = None
        distill_loss(name, student, teacher, torch.ones(3, 5, dtype=torch.bool))[0].backward()
        assert torch.isfinite(student.grad).all(), name


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.01, 1.0), st.integers(1, 60))
def test_adaspec_keeps_exactly_the_requested_fraction(seed: int, fraction: float, width: int):
    generator = torch.Generator().manual_seed(seed)
    draft, reference = torch.rand(4, width, generator=generator), torch.rand(4, width, generator=generator)
    mask = torch.rand(4, width, generator=generator) < 0.6
    chosen = adaspec_select(draft, reference, mask, fraction)
    valid = int(mask.sum())
    assert (
        int(chosen.sum())
        == selected_count(valid, fraction)
        == (min(valid, max(1, round(fraction * valid))) if valid else 0)
    )
    assert not (chosen & ~mask).any()
    if valid and int(chosen.sum()) < valid:  # the kept tokens have the largest gaps
        gap = draft - reference
        assert float(gap[chosen].min()) >= float(gap[mask & ~chosen].max())
