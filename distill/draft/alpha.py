"""Analytic α: how well a draft matches its target, from the two distributions alone.

At each completion position of a target sequence, Σ_v min(p(v), q(v)) is the chance that
speculative decoding's rejection sampling accepts the draft's token (DistillSpec): a draft is
scored without decoding, before and after distillation. It lives with distillation (`distill
eval-alpha` and the grid score drafts by it) and speculative decoding's spec eval reads it from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class AnalyticAlpha:
    """Σ_v min(p, q) at every completion position: `per_sequence[k][j]` is the overlap of target and
    draft distributions for the j-th completion token of sequence k; `mean` averages all positions."""

    per_sequence: list[torch.Tensor]

    @property
    def positions(self) -> int:
        return sum(int(values.numel()) for values in self.per_sequence)

    @property
    def mean(self) -> float:
        if not self.positions:
            return 0.0
        return float(torch.cat(self.per_sequence).double().mean())


@torch.inference_mode()
def analytic_alpha(
    target: Any,
    draft: Any,
    input_ids: Sequence[Sequence[int] | torch.Tensor],
    prompt_lengths: Sequence[int],
    *,
    temperature: float = 1.0,
    batch_size: int = 8,
    pad_id: int = 0,
) -> AnalyticAlpha:
    """The analytic α of a (target, draft) pair on given sequences (prompt + completion ids, e.g.
    the target's greedy answers): at each completion position, Σ_v min(p(v), q(v)) with p and q the
    target's and draft's next-token distributions at `temperature`, then the mean.

    This is the acceptance probability of rejection sampling at that position, so it scores a
    draft without decoding (before/after distillation). Sequences are right-padded in batches of
    `batch_size` (padding after a sequence cannot change its causal logits); if the output layers
    differ in size (padded vocabularies) only the shared ids are compared.
    """
    if len(input_ids) != len(prompt_lengths):
        raise ValueError("one prompt length per sequence")
    device = target.device
    rows = [torch.as_tensor(ids, dtype=torch.long).reshape(-1) for ids in input_ids]
    results: list[torch.Tensor] = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        width = max(int(row.numel()) for row in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for k, row in enumerate(batch):
            ids[k, : row.numel()] = row
            mask[k, : row.numel()] = 1
        ids, mask = ids.to(device), mask.to(device)
        p_logits = target(input_ids=ids, attention_mask=mask).logits
        q_logits = draft(input_ids=ids.to(draft.device), attention_mask=mask.to(draft.device)).logits
        vocab = min(p_logits.shape[-1], q_logits.shape[-1])
        for k, row in enumerate(batch):
            first = prompt_lengths[start + k] - 1  # the logits that predict the first completion token
            last = int(row.numel()) - 1
            p = torch.softmax(p_logits[k, first:last, :vocab].float() / temperature, -1)
            q = torch.softmax(q_logits[k, first:last, :vocab].float().to(device) / temperature, -1)
            results.append(torch.minimum(p, q).sum(-1).cpu())
    return AnalyticAlpha(results)
