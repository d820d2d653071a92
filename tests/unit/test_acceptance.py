"""The acceptance metrics on hand-counted rounds, and the analytic α identities."""

from __future__ import annotations

import pytest
import torch

from tests.fixtures.tiny_model import random_llama
from toolbench.distill.draft.alpha import analytic_alpha
from toolbench.distill.speculative.acceptance import (
    acceptance_by_class,
    acceptance_by_position,
    acceptance_stats,
    examined_proposals,
    expected_tau,
)
from toolbench.distill.speculative.decoding import Generation, Round


def generation(rounds: list[tuple[int, int]], tokens: int) -> Generation:
    """Rounds of (drafted, accepted), laid end to end: each yields accepted + 1 tokens."""
    laid, position = [], 0
    for drafted, accepted in rounds:
        laid.append(Round(position, drafted, accepted))
        position += accepted + 1
    return Generation(list(range(tokens)), "length", 1.0, 3, len(laid), laid)


def test_metrics_on_counted_rounds():
    # γ = 3: a full round, one accepted then a rejection, an immediate rejection
    stats = acceptance_stats([generation([(3, 3), (3, 1), (3, 0)], 7)], gamma=3)
    assert (stats.rounds, stats.drafted, stats.accepted, stats.rejected) == (3, 9, 4, 2)
    assert stats.alpha == pytest.approx(4 / 6)  # A / (A + R)
    assert stats.draft_acceptance_rate == pytest.approx(4 / 9)  # A / (γ·S)
    assert stats.mean_accepted_length == pytest.approx(1 + 4 / 3)  # 1 + A / S
    a = 4 / 6
    assert stats.expected_tau == pytest.approx((1 - a**4) / (1 - a))
    dumped = stats.model_dump()
    assert {"alpha", "draft_acceptance_rate", "mean_accepted_length", "expected_tau"} <= dumped.keys()


def test_expected_tau_limits():
    assert expected_tau(1.0, 5) == 6.0
    assert expected_tau(0.0, 5) == 1.0
    assert expected_tau(0.5, 1) == pytest.approx(1.5)


def test_a_policy_that_stops_early_is_not_a_rejection():
    stats = acceptance_stats([generation([(2, 2), (0, 0), (5, 4)], 10)], gamma=5)
    assert (stats.drafted, stats.accepted, stats.rejected) == (7, 6, 1)
    assert stats.alpha == pytest.approx(6 / 7)


def test_acceptance_by_position():
    positions = acceptance_by_position([generation([(3, 3), (3, 1), (3, 0)], 7)], gamma=3)
    assert [(p.position, p.drafted, p.accepted) for p in positions] == [(1, 3, 2), (2, 3, 1), (3, 3, 1)]
    assert positions[0].rate == pytest.approx(2 / 3)


def test_examined_proposals_and_classes():
    run = generation([(3, 3), (3, 1), (3, 0)], 7)
    # round 1: outputs 0-2 accepted (3 is the bonus); round 2: 4 accepted, 5 rejected; round 3: 6 rejected
    assert examined_proposals(run) == [(0, True), (1, True), (2, True), (4, True), (5, False), (6, False)]
    classes = ["syntax", "syntax", "function_name", "syntax", "argument_value", "argument_value", "syntax"]
    by_class = acceptance_by_class([run], [classes])
    assert {k: (v.accepted, v.rejected) for k, v in by_class.items()} == {
        "syntax": (2, 1),
        "function_name": (1, 0),
        "argument_value": (1, 1),
    }
    # proposals accepted beyond the end of a cut output have no class and are left out
    assert examined_proposals(generation([(3, 3)], 2)) == [(0, True), (1, True)]


def _llama(seed: int):
    return random_llama(40, hidden=16, layers=1, seed=seed, init=0.5)


def test_analytic_alpha():
    target, draft = _llama(0), _llama(1)
    sequences = [[1, 2, 3, 4, 5, 6], [7, 8, 9], [10, 11, 12, 13, 14, 15, 16, 17]]
    prompts = [2, 1, 5]
    same = analytic_alpha(target, target, sequences, prompts)
    assert [v.numel() for v in same.per_sequence] == [4, 2, 3] and same.positions == 9
    assert same.mean == pytest.approx(1.0, abs=1e-5)

    batched = analytic_alpha(target, draft, sequences, prompts, batch_size=3)
    single = analytic_alpha(target, draft, sequences, prompts, batch_size=1)
    assert 0.0 < batched.mean < 1.0
    for a, b in zip(batched.per_sequence, single.per_sequence, strict=True):
        assert torch.allclose(a, b, atol=1e-5)  # right padding does not change a sequence's values
    with torch.inference_mode():
        p = torch.softmax(target(torch.tensor([sequences[0]])).logits[0, 1:5], -1)
        q = torch.softmax(draft(torch.tensor([sequences[0]])).logits[0, 1:5], -1)
    assert torch.allclose(single.per_sequence[0], torch.minimum(p, q).sum(-1), atol=1e-5)
