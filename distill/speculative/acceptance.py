"""Acceptance metrics for speculative decoding, each with one name and one formula.

"Acceptance" means different things in different tools (vLLM, the papers, HF). Here, over S rounds (= target
calls) in which the draft proposed D tokens, A of them were accepted, and R rounds ended in a
rejection (a round stops at its first rejected proposal, so R ≤ S and proposals after a rejection
are discarded, not "rejected"):

- per-token acceptance         α   = A / (A + R)         the chance that a proposal the target
                                                         examined was accepted (the maximum-likelihood
                                                         estimate of Leviathan et al.'s α when every
                                                         proposal is accepted independently with α)
- draft acceptance rate            = A / D = A / (γ·S)   vLLM's convention (D = γ·S with fixed γ)
- mean accepted length         τ   = 1 + A / S           tokens per target call (the +1 is the target's
                                                         own token: correction or bonus)
- expected τ from α                = (1 − α^(γ+1)) / (1 − α)   (γ + 1 when α = 1): what γ proposals a
                                     round give under that α; with an adaptive policy that drafts
                                     fewer than γ, τ falls short of it by design
- analytic α                       = mean over positions of Σ_v min(p(v), q(v)) on target sequences:
                                     the chance that rejection sampling accepts a draft token, from
                                     the two distributions alone (no decoding; `draft.alpha`, since
                                     distillation scores drafts by it too).

Acceptance by draft position i (1-based): rounds whose i-th proposal was accepted / rounds that
proposed at least i tokens. Acceptance by token class: α over the proposals the target examined,
grouped by the class of the output token at that position (see token_classes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import BaseModel, computed_field

from toolbench.distill.speculative.decoding import Generation, Round


def per_token_acceptance(accepted: int, rejected: int) -> float:
    """α = A / (A + R); 0 when no proposal was examined."""
    return accepted / (accepted + rejected) if accepted + rejected else 0.0


def draft_acceptance_rate(accepted: int, drafted: int) -> float:
    """A / D (vLLM's A / (γ·S) with fixed γ)."""
    return accepted / drafted if drafted else 0.0


def mean_accepted_length(accepted: int, rounds: int) -> float:
    """τ = 1 + A / S: tokens emitted per target call, the target's own token included."""
    return 1.0 + accepted / rounds if rounds else 0.0


def expected_tau(alpha: float, gamma: int) -> float:
    """(1 − α^(γ+1)) / (1 − α): the accepted length γ proposals give if each is accepted with α."""
    if alpha >= 1.0:
        return float(gamma + 1)
    return (1.0 - alpha ** (gamma + 1)) / (1.0 - alpha)


class AcceptanceStats(BaseModel):
    """Counts over a set of rounds and the metrics derived from them (formulas in the module doc)."""

    gamma: int
    rounds: int = 0
    drafted: int = 0
    accepted: int = 0
    rejected: int = 0

    def add(self, rounds: Iterable[Round]) -> AcceptanceStats:
        for r in rounds:
            self.rounds += 1
            self.drafted += r.drafted
            self.accepted += r.accepted
            self.rejected += r.accepted < r.drafted
        return self

    @computed_field
    @property
    def alpha(self) -> float:
        return per_token_acceptance(self.accepted, self.rejected)

    @computed_field
    @property
    def draft_acceptance_rate(self) -> float:
        return draft_acceptance_rate(self.accepted, self.drafted)

    @computed_field
    @property
    def mean_accepted_length(self) -> float:
        return mean_accepted_length(self.accepted, self.rounds)

    @computed_field
    @property
    def expected_tau(self) -> float:
        return expected_tau(self.alpha, self.gamma)


def acceptance_stats(generations: Iterable[Generation], gamma: int) -> AcceptanceStats:
    stats = AcceptanceStats(gamma=gamma)
    for generation in generations:
        stats.add(generation.rounds)
    return stats


class PositionStat(BaseModel):
    """Draft position i: `rate` = accepted / drafted, where drafted counts rounds that proposed at
    least i tokens and accepted those whose first i proposals were all accepted."""

    position: int
    drafted: int
    accepted: int

    @computed_field
    @property
    def rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0


def acceptance_by_position(generations: Iterable[Generation], gamma: int) -> list[PositionStat]:
    drafted, accepted = [0] * gamma, [0] * gamma
    for generation in generations:
        for r in generation.rounds:
            for i in range(r.drafted):
                drafted[i] += 1
            for i in range(r.accepted):
                accepted[i] += 1
    return [PositionStat(position=i + 1, drafted=drafted[i], accepted=accepted[i]) for i in range(gamma)]


def examined_proposals(generation: Generation) -> list[tuple[int, bool]]:
    """(output index, accepted?) for every proposal the target examined: the accepted ones and the
    first rejected one of each round. Proposals past the end of the output (accepted after an end
    token or beyond the length budget) are left out: they have no output token to be classed by."""
    examined = []
    end = len(generation.tokens)
    for r in generation.rounds:
        for i in range(r.accepted):
            examined.append((r.position + i, True))
        if r.accepted < r.drafted:
            examined.append((r.position + r.accepted, False))
    return [(index, ok) for index, ok in examined if index < end]


class ClassStat(BaseModel):
    """α for one token class: accepted / (accepted + rejected) over examined proposals."""

    accepted: int = 0
    rejected: int = 0

    @computed_field
    @property
    def alpha(self) -> float:
        return per_token_acceptance(self.accepted, self.rejected)


def acceptance_by_class(
    generations: Iterable[Generation], classes: Iterable[Sequence[str]]
) -> dict[str, ClassStat]:
    """α per token class; `classes[k][i]` is the class of output token i of generation k."""
    stats: dict[str, ClassStat] = {}
    for generation, labels in zip(generations, classes, strict=True):
        for index, ok in examined_proposals(generation):
            stat = stats.setdefault(labels[index], ClassStat())
            if ok:
                stat.accepted += 1
            else:
                stat.rejected += 1
    return stats
