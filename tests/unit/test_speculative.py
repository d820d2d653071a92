"""Speculative decoding is lossless: greedy output equals the target's token for token, sampled
output follows the target's distribution, and the acceptance counts are exact on constructed drafts.

The models are tiny random Llamas built in memory (ids only, no tokenizer), with a large
initialisation so that greedy output varies instead of repeating one token.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from tests.fixtures.tiny_model import random_llama
from toolbench.distill.speculative.acceptance import acceptance_stats
from toolbench.distill.speculative.decoding import (
    ConfidenceThreshold,
    Decision,
    DraftStep,
    FixedLength,
    hf_decode,
    make_policy,
    speculative_decode,
    target_decode,
)
from toolbench.foundation.errors import UserError

VOCAB = 96
PROMPTS = [[5], [17, 3, 44, 9, 12], [60, 61, 2, 8, 90, 33, 7, 7, 1], list(range(20, 37))]


def llama(vocab: int, hidden: int, layers: int, seed: int, init: float = 0.4):
    return random_llama(vocab, hidden, layers, seed, init)


def perturbed(model, scale: float, seed: int = 0):
    """A copy with Gaussian noise on every weight: a draft that agrees with the target often, not always."""
    copy_ = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in copy_.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * parameter.std() * scale)
    return copy_


def always_wrong(model):
    """A copy whose lm_head rows are rotated by one: its argmax is always the target's minus one."""
    copy_ = copy.deepcopy(model)
    with torch.no_grad():
        copy_.lm_head.weight.copy_(torch.roll(model.lm_head.weight, shifts=-1, dims=0))
    return copy_


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def target():
    return llama(VOCAB, 64, 3, seed=0)


@pytest.fixture(scope="module")
def drafts(target):
    return {
        "close": perturbed(target, 0.05),  # accepts most proposals: full rounds and bonus tokens
        "noisy": perturbed(target, 0.15),  # partial acceptance: crops in the middle of rounds
        "small": llama(VOCAB, 32, 1, seed=1),  # another architecture: almost every proposal rejected
    }


@pytest.mark.parametrize("gamma", [1, 3, 5])
def test_greedy_speculative_output_equals_target_greedy(target, drafts, gamma):
    accepted = 0
    for prompt in PROMPTS:
        expected = target_decode(target, prompt, 24).tokens
        assert len(set(expected)) > 5  # the target's answers vary: equality is not trivial
        for name, draft in drafts.items():
            result = speculative_decode(target, draft, prompt, 24, gamma)
            assert result.tokens == expected, (name, prompt)
            assert result.finish_reason == "length"
            assert sum(r.accepted + 1 for r in result.rounds) >= len(expected)
            accepted += sum(r.accepted for r in result.rounds)
    assert accepted > 0


def test_greedy_stops_at_the_same_end_token(target, drafts):
    prompt = PROMPTS[1]
    free = target_decode(target, prompt, 24).tokens
    end = free[10]
    expected = free[: free.index(end) + 1]
    for policy in (FixedLength(4), ConfidenceThreshold(4, 0.3)):
        result = speculative_decode(target, drafts["close"], prompt, 24, policy, stop_ids=[end])
        assert (result.tokens, result.finish_reason) == (expected, "stop")
    assert target_decode(target, prompt, 24, stop_ids=[end]).tokens == expected


def test_confidence_and_custom_policies_stay_lossless(target, drafts):
    class TwoThenStop:
        """A policy that reads the draft's hidden state (as a learned head would) and stops at 2."""

        name, max_draft, needs_hidden = "two", 4, True
        seen: list[int] = []

        def propose(self, step: DraftStep) -> bool:
            assert step.hidden is not None and step.hidden.shape == (64,)
            self.seen.append(step.index)
            return step.index < 2

    for prompt in PROMPTS:
        expected = target_decode(target, prompt, 20).tokens
        for policy in (ConfidenceThreshold(5, 0.6), TwoThenStop()):
            result = speculative_decode(target, drafts["noisy"], prompt, 20, policy)
            assert result.tokens == expected
            assert max(r.drafted for r in result.rounds) <= (2 if policy.name == "two" else 5)
    assert set(TwoThenStop.seen) == {0, 1, 2}


def test_last_decision_proposes_the_candidate_then_ends_the_round(target, drafts):
    class SecondIsLast:
        name, max_draft, needs_hidden = "second-is-last", 5, False

        def propose(self, step: DraftStep) -> Decision:
            return Decision.LAST if step.index == 1 else Decision.PROPOSE

    class StopAtSecond(SecondIsLast):
        def propose(self, step: DraftStep) -> Decision:
            return Decision.STOP if step.index == 1 else Decision.PROPOSE

    expected = target_decode(target, PROMPTS[1], 20).tokens
    last = speculative_decode(target, target, PROMPTS[1], 20, SecondIsLast())
    stop = speculative_decode(target, target, PROMPTS[1], 20, StopAtSecond())
    assert last.tokens == stop.tokens == expected
    assert [(r.drafted, r.accepted) for r in last.rounds] == [(2, 2)] * 7
    assert [(r.drafted, r.accepted) for r in stop.rounds] == [(1, 1)] * 10
    # the confidence policy proposes its first unsure candidate as the round's last
    sure, unsure = ConfidenceThreshold(5, 0.0), ConfidenceThreshold(5, 1.0)
    assert {r.drafted for r in speculative_decode(target, drafts["noisy"], PROMPTS[0], 20, sure).rounds} == {
        5
    }
    assert {
        r.drafted for r in speculative_decode(target, drafts["noisy"], PROMPTS[0], 20, unsure).rounds
    } == {1}


def test_identical_draft_accepts_everything(target):
    gamma = 4
    result = speculative_decode(target, target, PROMPTS[2], 30, gamma)
    stats = acceptance_stats([result], gamma)
    assert stats.alpha == 1.0 and stats.rejected == 0
    assert stats.mean_accepted_length == gamma + 1 == stats.expected_tau
    assert stats.draft_acceptance_rate == 1.0
    assert [(r.drafted, r.accepted) for r in result.rounds] == [(gamma, gamma)] * 6


def test_always_wrong_draft_accepts_nothing(target):
    gamma = 3
    result = speculative_decode(target, always_wrong(target), PROMPTS[2], 12, gamma)
    stats = acceptance_stats([result], gamma)
    assert stats.alpha == 0.0 and stats.accepted == 0 and stats.rejected == stats.rounds == 12
    assert stats.mean_accepted_length == 1.0 == stats.expected_tau
    assert result.tokens == target_decode(target, PROMPTS[2], 12).tokens


def test_hf_assisted_generation_agrees(target, drafts):
    for prompt in PROMPTS[1:3]:
        expected = target_decode(target, prompt, 16).tokens
        assert hf_decode(target, prompt, 16).tokens == expected
        assert hf_decode(target, prompt, 16, draft=drafts["noisy"], gamma=3).tokens == expected


def _chi_square_critical(df: int, z: float = 3.09) -> float:
    """Wilson–Hilferty approximation of the chi-square quantile (z = 3.09: p = 0.001)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def _two_token_distribution(model, prompt: list[int]) -> torch.Tensor:
    """Exact target sampling distribution of the next two tokens (temperature 1), [V, V]."""
    with torch.inference_mode():
        first = torch.softmax(model(torch.tensor([prompt])).logits[0, -1], -1)
        vocab = first.numel()
        ids = torch.tensor([[*prompt, v] for v in range(vocab)])
        second = torch.softmax(model(ids).logits[:, -1], -1)
    return first[:, None] * second


def test_sampled_output_follows_the_target_distribution():
    vocab, runs, prompt = 5, 1500, [2]  # one prompt token: no prefill, ~3 forwards a run
    target, draft = llama(vocab, 16, 2, seed=3, init=0.8), llama(vocab, 16, 1, seed=4, init=0.8)
    exact = _two_token_distribution(target, prompt).flatten().double()
    draft_only = _two_token_distribution(draft, prompt).flatten().double()
    assert 0.5 * (exact - draft_only).abs().sum() > 0.2  # the draft alone would fail the test

    generator = torch.Generator().manual_seed(0)
    counts = torch.zeros(vocab * vocab, dtype=torch.float64)
    drafted = 0
    for _ in range(runs):
        result = speculative_decode(target, draft, prompt, 2, 1, temperature=1.0, generator=generator)
        first, second = result.tokens
        counts[first * vocab + second] += 1
        drafted += len(result.rounds)
    assert drafted > runs  # rejections happened: the residual path was sampled, not only the bonus
    expected = exact * runs
    keep = expected >= 5
    statistic = float((((counts - expected) ** 2) / expected)[keep].sum())
    assert statistic < _chi_square_critical(int(keep.sum()) - 1)
    assert 0.5 * float((counts / runs - exact).abs().sum()) < 0.07


def test_bad_gamma_and_policy_are_user_errors():
    for gamma in (0, -2):
        with pytest.raises(
            UserError, match=r"^gamma \(draft tokens per round\) must be an integer >= 1; got "
        ):
            FixedLength(gamma)
    with pytest.raises(
        UserError, match="unknown draft policy 'oracle'; choose one of fixed, confidence, learned"
    ):
        make_policy("oracle", 5)
    with pytest.raises(UserError, match="threshold must be between 0 and 1"):
        ConfidenceThreshold(5, 1.5)
