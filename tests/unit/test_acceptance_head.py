"""The learned acceptance head and the draft policies built on it: with a draft identical to the
target every policy drafts its maximum, with an always-wrong draft the head learns to stop after
one token, output stays the target's greedy output under every policy, the round replay used to
choose thresholds is exact, and a head refuses a draft it was not trained for.

Models are tiny random Llamas (ids only); heads train on data made by those models in ~1 s.
"""

from __future__ import annotations

import copy

import pytest
import torch

from tests.fixtures.tiny_model import random_llama
from toolbench.distill.speculative.acceptance_head import (
    AcceptanceHead,
    HeadInfo,
    check_draft,
    load_head,
    probability_features,
    save_head,
)
from toolbench.distill.speculative.acceptance_train import (
    CostModel,
    HeadData,
    auc,
    draft_features,
    head_metrics,
    select_policies,
    simulate,
    train_head,
)
from toolbench.distill.speculative.decoding import (
    ConfidenceThreshold,
    Decision,
    DraftStep,
    FixedLength,
    LearnedAcceptance,
    learned_policy,
    make_policy,
    speculative_decode,
    target_decode,
)
from toolbench.distill.training.models import weights_fingerprint
from toolbench.foundation.errors import UserError

VOCAB, HIDDEN = 96, 64
PROMPTS = [[5], [17, 3, 44, 9, 12], [60, 61, 2, 8, 90, 33, 7, 7, 1], list(range(20, 37))]
TRAIN_PROMPTS = [[p, (3 * p) % VOCAB, (7 * p + 1) % VOCAB] for p in range(1, 40, 3)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def target():
    """A random Llama whose final norm is scaled up: peaked distributions (top-1 probability above
    0.45 on its greedy answers), so the confidence policy has something to be confident about."""
    model = random_llama(VOCAB, HIDDEN, 3, seed=0, init=0.4)
    with torch.no_grad():
        model.model.norm.weight.mul_(8.0)
    return model


def always_wrong(model):
    """A copy whose lm_head rows are rotated by one: its argmax is always the target's minus one."""
    wrong = copy.deepcopy(model)
    with torch.no_grad():
        wrong.lm_head.weight.copy_(torch.roll(model.lm_head.weight, shifts=-1, dims=0))
    return wrong


def perturbed(model, scale: float, seed: int = 0):
    noisy = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in noisy.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * parameter.std() * scale)
    return noisy


def head_for(target, draft, steps: int = 600) -> AcceptanceHead:
    """A head trained on (draft features, target verdict) over the target's greedy answers."""
    answers = [target_decode(target, p, 24).tokens for p in TRAIN_PROMPTS]
    data = draft_features(draft, TRAIN_PROMPTS, answers)
    head, _ = train_head(data, width=16, steps=steps, learning_rate=1e-2, batch_size=128)
    return head


def test_probability_features_are_top1_margin_and_entropy():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]]))
    features = probability_features(logits)
    expected_entropy = torch.tensor([1.5 * torch.log(torch.tensor(2.0)), torch.log(torch.tensor(3.0))])
    assert torch.allclose(features[:, 0], torch.tensor([0.5, 1 / 3]))
    assert torch.allclose(features[:, 1], torch.tensor([0.25, 0.0]), atol=1e-6)
    assert torch.allclose(features[:, 2], expected_entropy)


def test_draft_features_label_the_target_greedy_verdict(target):
    answers = [target_decode(target, p, 12).tokens for p in PROMPTS]
    same = draft_features(target, PROMPTS, answers, batch_size=3)
    wrong = draft_features(always_wrong(target), PROMPTS, answers)
    assert same.offsets == [0, 12, 24, 36, 48] and same.hidden.shape == (48, HIDDEN)
    assert bool(same.accepted.all()) and not bool(wrong.accepted.any())
    # the features equal what the decoding loop sees at the same position (KV cache, one token at a time)
    seen: list[DraftStep] = []

    class Spy:
        name, max_draft, needs_hidden = "spy", 3, True

        def propose(self, step: DraftStep) -> bool:
            seen.append(step)
            return True

    speculative_decode(target, target, PROMPTS[1], 12, Spy())
    first = seen[0]  # the round's first candidate predicts answer token 0
    assert torch.allclose(first.hidden.half().float(), same.hidden[12].float(), atol=2e-2)
    assert torch.allclose(probability_features(first.logits), same.probs[12], atol=1e-4)


def test_identical_draft_every_policy_drafts_its_maximum(target):
    head = head_for(target, target)
    # the confidence policy reads the draft's certainty, not agreement: it drafts its maximum because
    # this draft (= the target) is sure, top-1 probability above its threshold everywhere
    policies = [FixedLength(4), ConfidenceThreshold(4, 0.4), LearnedAcceptance(head, 4, 0.5)]
    for prompt in PROMPTS:
        expected = target_decode(target, prompt, 30).tokens
        sure = draft_features(target, [prompt], [expected]).probs[:, 0]
        assert float(sure.min()) > 0.45
        for policy in policies:
            result = speculative_decode(target, target, prompt, 30, policy)
            assert result.tokens == expected, policy.name
            assert [(r.drafted, r.accepted) for r in result.rounds] == [(4, 4)] * 6, policy.name


def test_always_wrong_draft_learned_head_stops_after_one_token(target):
    draft = always_wrong(target)
    head = head_for(target, draft)
    answers = [target_decode(target, p, 24).tokens for p in PROMPTS]
    data = draft_features(draft, PROMPTS, answers)
    with torch.no_grad():
        assert float(torch.sigmoid(head(data.hidden, data.probs)).max()) < 0.05
    policy = LearnedAcceptance(head, 6, 0.3)
    for prompt, expected in zip(PROMPTS, answers, strict=True):
        result = speculative_decode(target, draft, prompt, 24, policy)
        assert result.tokens == expected
        assert [(r.drafted, r.accepted) for r in result.rounds] == [(1, 0)] * 24
    fixed = speculative_decode(target, draft, PROMPTS[2], 24, 6)
    assert {r.drafted for r in fixed.rounds} == {6}  # what the head saves: 5 wasted tokens a round


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_output_is_the_targets_under_every_policy(target, temperature):
    draft = perturbed(target, 0.15)
    head = head_for(target, draft)
    policies = [FixedLength(3), ConfidenceThreshold(6, 0.7), LearnedAcceptance(head, 6, 0.4)]
    lengths = set()
    for prompt in PROMPTS:
        if temperature == 0:
            expected = target_decode(target, prompt, 20).tokens
        for policy in policies:
            generator = torch.Generator().manual_seed(7)
            result = speculative_decode(
                target, draft, prompt, 20, policy, temperature=temperature, generator=generator
            )
            lengths |= {r.drafted for r in result.rounds}
            assert len(result.tokens) == 20
            if temperature == 0:
                assert result.tokens == expected, policy.name
    assert len(lengths) > 2  # adaptive policies did vary the round length


def test_learned_head_learns_a_signal_beyond_the_base_rate():
    """Constructed data: acceptance depends on one direction of the hidden state, which the head
    must find (the top-1 probability carries no information here)."""
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(4000, 16, generator=generator)
    accepted = hidden[:, 3] + 0.3 * torch.randn(4000, generator=generator) > -0.5
    probs = torch.rand(4000, 3, generator=generator)
    data = HeadData(hidden.half(), probs, accepted, [0, 2000, 4000], ["a", "b"])
    train, valid = data.rows([0]), data.rows([1])
    head, fit = train_head(train, valid, width=8, steps=400, learning_rate=1e-2)
    metrics = head_metrics(head, valid)
    assert metrics["auc"] > 0.95 and abs(metrics["auc_top1_prob"] - 0.5) < 0.05
    assert metrics["log_loss"] < 0.6 * metrics["log_loss_base_rate"]
    assert fit["history"][-1]["step"] == 400


def test_auc_is_the_rank_statistic():
    assert auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])) == 0.75
    assert auc(torch.tensor([0.1, 0.2]), torch.tensor([1, 1])) is None


def test_replay_counts_rounds_exactly():
    accepted = [[True] * 30]
    full = simulate(accepted, 4)
    assert (full.rounds, full.drafted, full.accepted, full.tokens) == (6, 24, 24, 30)
    assert full.sizes == {4: 6}
    # a rejection at position 2: round 1 keeps 2 (+ the target's correction), round 2 starts at 3
    # and keeps 3 (+ a bonus token past the end)
    partial = simulate([[True, True, False, True, True, True]], 3)
    assert (partial.rounds, partial.drafted, partial.accepted) == (2, 6, 5)
    # the learned rule: the product 0.9 · 0.5 falls below 0.5 at the second candidate, which is the last
    scores = [[0.9, 0.5, 0.9, 0.9, 0.9, 0.9]]
    cut = simulate([[True] * 6], 5, scores, threshold=0.5, cumulative=True)
    assert cut.sizes[2] == 1 and (cut.rounds, cut.drafted, cut.accepted) == (2, 5, 5)
    # the confidence rule looks at each candidate alone
    single = simulate([[True] * 6], 5, scores, threshold=0.6)
    assert single.sizes == {2: 1, 3: 1}
    cost = CostModel(
        target_token_s=4.0, round_s=4.5, verify_token_s=0.25, draft_s=1.0, confidence_s=1.1, learned_s=1.2
    )
    # 30 tokens: target-only 30 · 4 s; six full rounds of 4 proposals: 6 · (4.5 + 4 · (0.25 + 1))
    assert full.seconds(cost, "fixed") == 6 * 9.5 and full.seconds(cost, "learned") == 6 * 10.3
    assert full.figures(cost, "fixed")["predicted_speedup"] == round(30 * 4.0 / 57.0, 4)


def test_selection_prefers_short_rounds_for_a_wrong_draft_and_long_for_a_right_one():
    cost = CostModel(
        target_token_s=1.0, round_s=1.0, verify_token_s=0.02, draft_s=0.2, confidence_s=0.2, learned_s=0.2
    )
    head = AcceptanceHead(4, 0)
    for accepted, best_gamma in ((False, 1), (True, 10)):
        n = 400
        data = HeadData(
            torch.zeros(n, 4).half(), torch.zeros(n, 3), torch.full((n,), accepted), [0, n], ["t"]
        )
        best = select_policies(head, data, cost, 10)["best"]
        assert best["fixed"]["gamma"] == best_gamma


def test_save_load_round_trip_and_draft_checks(tmp_path, tiny_model_dir, tiny_draft_dir):
    from transformers import AutoModelForCausalLM

    draft = AutoModelForCausalLM.from_pretrained(tiny_draft_dir).eval()
    size = draft.config.hidden_size
    head = AcceptanceHead(size, 8)
    info = HeadInfo(
        hidden_size=size,
        width=8,
        draft=str(tiny_draft_dir),
        draft_fingerprint=weights_fingerprint(tiny_draft_dir),
        threshold=0.3,
        budget=7,
    )
    save_head(tmp_path / "head", head, info)
    loaded = load_head(tmp_path / "head")
    hidden, logits = torch.randn(5, size), torch.randn(5, 40)
    assert torch.equal(loaded.probability(hidden, logits), head.probability(hidden, logits))
    assert loaded.info == info
    check_draft(loaded, tiny_draft_dir)  # its own draft: fine
    # the policy's folded fast path gives the module's probabilities
    policy = learned_policy(tmp_path / "head", draft=tiny_draft_dir)
    assert (policy.max_draft, policy.threshold) == (7, 0.3)
    for i in range(5):
        step = DraftStep(0, logits[i], logits[i].argmax(), hidden[i])
        assert policy.acceptance(step) == pytest.approx(
            float(head.probability(hidden[i], logits[i])), abs=1e-5
        )
    # through the registry, with explicit budget and threshold
    policy = make_policy("learned", 3, threshold=0.9, head=str(tmp_path / "head"), draft=str(tiny_draft_dir))
    assert (policy.name, policy.max_draft, policy.threshold, policy.needs_hidden) == ("learned", 3, 0.9, True)

    with pytest.raises(
        UserError, match=r"was trained for a draft with hidden size 16; draft .* has hidden size 32"
    ):
        make_policy("learned", head=str(tmp_path / "head"), draft=str(tiny_model_dir))
    other = tmp_path / "other-draft"
    perturbed(draft, 0.1).save_pretrained(other)
    with pytest.raises(
        UserError, match=r"was trained for draft .* \(weights [0-9a-f]{16}\); draft .* has other weights"
    ):
        make_policy("learned", head=str(tmp_path / "head"), draft=str(other))
    with pytest.raises(UserError, match=r"the learned draft policy needs --head"):
        make_policy("learned", 5)
    with pytest.raises(UserError, match=r"not an acceptance head"):
        load_head(tmp_path)
    with pytest.raises(UserError, match="threshold must be between 0 and 1"):
        LearnedAcceptance(head, 4, 1.5)


def test_decision_values_keep_bool_policies_working():
    assert Decision.PROPOSE == True and Decision.STOP == False  # noqa: E712 - the point of the test
    assert bool(Decision.LAST) and Decision.LAST != True  # noqa: E712


def test_drafts_by_class_counts_proposals_waste_and_policy_stops():
    from toolbench.distill.speculative.decoding import Generation, Round
    from toolbench.distill.speculative.spec_eval import drafts_by_class

    classes = ["syntax", "syntax", "argument_value", "argument_value", "syntax", "syntax"]
    run = Generation(
        tokens=[1, 2, 3, 4, 5, 6],
        finish_reason="length",
        seconds=1.0,
        prompt_tokens=3,
        target_calls=3,
        rounds=[
            Round(0, 3, 2),  # positions 0, 1 accepted, 2 (a value) rejected: a full round (γ = 3)
            Round(3, 1, 0),  # the policy stopped after one value proposal, rejected
            Round(4, 3, 2),  # 4, 5 accepted, 6 past the end: not counted
        ],
    )
    table = drafts_by_class([run], [classes], 3)
    assert table == {
        "syntax": {"drafted": 4, "wasted": 0, "policy_stops": 0},
        "argument_value": {"drafted": 2, "wasted": 2, "policy_stops": 1},
    }
