"""Distillation losses as small pure functions, and AdaSPEC's token selection.

Every loss is computed per position and then summed over valid positions, returning
`(loss_sum, count)` so the Trainer can normalise by the number of valid tokens of the whole global
batch (never per micro-batch or per process). p is the teacher (target), q the student (draft).

Per-position divergences, over log-probabilities `log_p`, `log_q` of shape [..., V]:

- forward KL    FKL(p‖q) = Σ_v p log(p/q)       mass-covering; what plain distillation minimises
- reverse KL    RKL(p‖q) = KL(q‖p)              mode-seeking
- JSD(β)        m = β·p + (1−β)·q,  JSD_β = β·KL(p‖m) + (1−β)·KL(q‖m)
                (the generalized JSD of GKD/TRL: β = 0.5 is the symmetric JSD, bounded by log 2;
                β → 0 behaves like FKL and β → 1 like RKL, and as in TRL the endpoints are defined
                as exactly FKL (β = 0) and RKL (β = 1))
- TVD           ½ Σ_v |p − q|  ∈ [0, 1];  1 − TVD = Σ_v min(p, q) is the analytic acceptance α,
                so TVD is the loss that targets α directly (DistillSpec)
- black-box     −log q(y) for the target's own token y (cross-entropy on target text)

Teacher given as top-k (the offline cache): ids `K` and the teacher's **full-vocabulary
log-probabilities** at those ids (log_softmax over all V, so the mass outside K is known). Both
distributions are then coarse-grained to k + 1 outcomes, the k ids plus one "rest" outcome:
p_rest = 1 − Σ_K p and q_rest = 1 − Σ_K q (the student's full softmax), and each divergence is
computed exactly over those k + 1 outcomes. Why not only "renormalise the teacher over K": reverse
KL of a student with any mass outside K against a renormalised teacher is infinite, and
renormalising the student too would leave its mass outside K untrained, which the analytic α
(computed on full distributions) then pays for. The coarse-grained divergence is a lower bound of
the full one (data-processing inequality), equals it when K holds the whole vocabulary, and is zero
exactly when the student matches the teacher on K and on the rest. When the teacher's top-k mass
is ~1 (a confident target), this is the same as renormalising the teacher over K.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F

LossName = Literal["fkl", "rkl", "jsd", "tvd"]
LOSSES: tuple[str, ...] = ("fkl", "rkl", "jsd", "tvd")
_TINY = 1e-12


class TopK(NamedTuple):
    """A teacher known only at its top-k ids per position: `ids` [..., k] (int), `logprobs`
    [..., k] = the teacher's full-vocabulary log-probabilities at those ids (any float dtype)."""

    ids: torch.Tensor
    logprobs: torch.Tensor


def _kl(log_a: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """KL(a‖b) per position, 0·log 0 = 0."""
    a = log_a.exp()
    live = a > 0  # both logs replaced where a == 0, so no 0·∞ = NaN reaches values or gradients
    zero = torch.zeros_like(a)
    return (a * (torch.where(live, log_a, zero) - torch.where(live, log_b, zero))).sum(-1)


def forward_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    return _kl(log_p, log_q)


def reverse_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    return _kl(log_q, log_p)


def jsd(log_p: torch.Tensor, log_q: torch.Tensor, beta: float = 0.5) -> torch.Tensor:
    """Generalized JSD(β) per position (endpoints: β = 0 → FKL, β = 1 → RKL, as in TRL)."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1]; got {beta}")
    if beta == 0.0:
        return forward_kl(log_p, log_q)
    if beta == 1.0:
        return reverse_kl(log_p, log_q)
    log_m = torch.logsumexp(torch.stack([log_p + math.log(beta), log_q + math.log(1 - beta)]), dim=0)
    return beta * _kl(log_p, log_m) + (1 - beta) * _kl(log_q, log_m)


def tvd(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    return 0.5 * (log_p.exp() - log_q.exp()).abs().sum(-1)


def divergence(name: str, log_p: torch.Tensor, log_q: torch.Tensor, beta: float = 0.5) -> torch.Tensor:
    """Per-position divergence by config name (`fkl`, `rkl`, `jsd`, `tvd`)."""
    if name == "fkl":
        return forward_kl(log_p, log_q)
    if name == "rkl":
        return reverse_kl(log_p, log_q)
    if name == "jsd":
        return jsd(log_p, log_q, beta)
    if name == "tvd":
        return tvd(log_p, log_q)
    raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}")


def _with_rest(log_k: torch.Tensor) -> torch.Tensor:
    """[..., k] partial log-probs → [..., k+1] with the remaining mass as the last outcome."""
    rest = (1.0 - log_k.exp().sum(-1, keepdim=True)).clamp(min=_TINY)
    return torch.cat([log_k, rest.log()], dim=-1)


def teacher_student_logprobs(
    student_logits: torch.Tensor, teacher: torch.Tensor | TopK
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p, log q) over the same outcomes: the full vocabulary for full teacher logits, or the
    teacher's top-k ids plus "rest" for a TopK teacher (see the module doc). Computed in fp32."""
    log_q = F.log_softmax(student_logits.float(), dim=-1)
    if isinstance(teacher, TopK):
        ids = teacher.ids.long()
        return _with_rest(teacher.logprobs.float()), _with_rest(log_q.gather(-1, ids))
    return F.log_softmax(teacher.float(), dim=-1), log_q


def masked_sum(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ values over mask, number of valid positions): the Trainer divides by the global count."""
    mask = mask.bool()
    return torch.where(mask, values, torch.zeros_like(values)).sum(), mask.sum()


def per_token_loss(
    name: str, student_logits: torch.Tensor, teacher: torch.Tensor | TopK, beta: float = 0.5
) -> torch.Tensor:
    """White-box loss at every position (shape [...]); mask it with `masked_sum`."""
    log_p, log_q = teacher_student_logprobs(student_logits, teacher)
    return divergence(name, log_p, log_q, beta)


def distill_loss(
    name: str,
    student_logits: torch.Tensor,
    teacher: torch.Tensor | TopK,
    mask: torch.Tensor,
    beta: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """White-box distillation loss: (sum over valid positions, valid positions)."""
    return masked_sum(per_token_loss(name, student_logits, teacher, beta), mask)


def token_cross_entropy(
    student_logits: torch.Tensor, labels: torch.Tensor, ignore: int = -100
) -> torch.Tensor:
    """−log q(label) per position (0 where label == ignore): the black-box signal."""
    safe = labels.clamp(min=0)
    nll = -F.log_softmax(student_logits.float(), dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return torch.where(labels == ignore, torch.zeros_like(nll), nll)


def cross_entropy_loss(
    student_logits: torch.Tensor, labels: torch.Tensor, ignore: int = -100
) -> tuple[torch.Tensor, torch.Tensor]:
    """Black-box distillation: cross-entropy on the target's text; labels == `ignore` are skipped."""
    return masked_sum(token_cross_entropy(student_logits, labels, ignore), labels != ignore)


def selected_count(valid: int, fraction: float) -> int:
    """How many of `valid` tokens AdaSPEC keeps: round(fraction · valid), at least 1 when any."""
    return min(valid, max(1, round(fraction * valid))) if valid else 0


def adaspec_select(
    draft_loss: torch.Tensor, reference_loss: torch.Tensor, mask: torch.Tensor, fraction: float = 0.4
) -> torch.Tensor:
    """AdaSPEC's token filter: of the valid tokens, keep the `selected_count` ones with the largest
    gap (draft loss − reference loss), i.e. the tokens the reference draft shows to be learnable
    but the draft has not learnt yet; tokens both find hard (a gap near 0) are dropped. Ties are
    broken by position, so the kept count is exact. Returns a boolean mask of the kept tokens."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"AdaSPEC fraction must be in (0, 1]; got {fraction}")
    mask = mask.bool()
    keep = selected_count(int(mask.sum()), fraction)
    gap = (draft_loss.detach() - reference_loss.detach()).float()
    gap = torch.where(mask, gap, torch.full_like(gap, -math.inf)).reshape(-1)
    chosen = torch.zeros_like(gap, dtype=torch.bool)
    if keep:
        chosen[torch.topk(gap, keep).indices] = True
    return chosen.reshape(mask.shape) & mask


def shifted(batch: dict[str, Any], logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits predicting tokens 1..T-1, their labels, the valid mask): position t predicts t+1."""
    labels = batch["labels"][:, 1:]
    return logits[:, :-1], labels, labels != -100
