"""A learned acceptance head: a tiny classifier on the draft's last hidden state and its
next-token probabilities that predicts whether the target will accept the token the draft is
about to propose. The `learned` draft policy that stops a round on it is
`decoding.LearnedAcceptance` (beside the other policies; this module does not import
`decoding`, so the policy registry there can name all three without an import cycle).

Features of a candidate (what the draft knows when it proposes it): its last hidden state h (the
input of its output layer, d numbers: `hidden_states[-1]` for Llama-style models; see
`decoding.capture_hidden`) and three probability features of its distribution q: the top-1 probability, the margin top-1 − top-2, and the entropy of q (nats).
The round index is deliberately not a feature: in greedy decoding, whether the target accepts the
candidate at an output position is a function of the prefix alone (the draft's proposal and the
target's argmax there), the same in whichever round it is proposed. Round position enters through
the policy instead:

    the learned policy (`decoding.learned_policy`) keeps S_i = p_0 · p_1 ⋯ p_i, the predicted
    probability that candidates 0..i are all accepted (p_j = P(candidate j accepted | candidates
    before it accepted)), and proposes candidate i as the round's last (`Decision.LAST`) once
    S_i < threshold, i.e. once drafting candidate i + 1 would most likely be wasted. Every round proposes at least one token.

The head is `(h, probability features) → standardise → Linear(d + 3, w) → ReLU → Linear(w, 1)`
(w = 0: logistic regression), trained with BCE on data from `acceptance_train`; a few thousand
parameters, a fraction of a draft step to evaluate. A head folder holds `head.safetensors`,
`head.json` (`HeadInfo`: the feature spec, the draft and target it was trained for with their
weight fingerprints, the threshold and budget chosen on training prompts, validation metrics)
and `train_record.json`. A head is only valid for the draft it was trained on: loading it for a
draft with another hidden size or other weights is a UserError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field

from toolbench.distill.training.models import weights_fingerprint
from toolbench.foundation.errors import UserError

PROBABILITY_FEATURES = ("top1_prob", "top1_minus_top2", "entropy")
HEAD_FILE = "head.safetensors"
INFO_FILE = "head.json"
FORMAT = 1


def probability_features(logits: torch.Tensor) -> torch.Tensor:
    """[..., V] raw logits → [..., 3]: top-1 probability, top-1 − top-2 probability, entropy."""
    logp = torch.log_softmax(logits.float(), -1)
    top = logp.topk(2, -1).values.exp()
    entropy = -(logp.exp() * logp).sum(-1)
    return torch.stack([top[..., 0], top[..., 0] - top[..., 1], entropy], -1)


def hidden_size_of(path: str | Path) -> int:
    """The hidden size of a model folder or hub id, from its config alone (no weights loaded)."""
    from toolbench.distill.training.models import load_config

    return int(load_config(path, "draft").get_text_config().hidden_size)


class HeadInfo(BaseModel):
    """What `head.json` records: enough to refuse a head on the wrong draft and to reproduce it."""

    format: int = FORMAT
    hidden_size: int
    width: int = Field(description="Hidden units of the MLP; 0: logistic regression.")
    features: list[str] = Field(default_factory=lambda: ["hidden_state", *PROBABILITY_FEATURES])
    label: str = "greedy: the draft's argmax equals the target's argmax at that position"
    draft: str | None = None
    draft_fingerprint: str | None = None
    target: str | None = None
    target_fingerprint: str | None = None
    threshold: float | None = Field(
        None, description="Chosen on training prompts: stop when S_i < threshold."
    )
    budget: int | None = Field(None, description="Chosen on training prompts: most draft tokens per round.")
    confidence_threshold: float | None = Field(
        None, description="The confidence policy's best threshold on the same training prompts."
    )
    confidence_budget: int | None = None
    best_fixed_gamma: int | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    selection: dict[str, Any] = Field(default_factory=dict)


class AcceptanceHead(torch.nn.Module):
    """P(target accepts the candidate) from (draft hidden state [.., d], probability features [.., 3])."""

    def __init__(self, hidden_size: int, width: int = 32):
        super().__init__()
        if hidden_size < 1 or width < 0:
            raise ValueError(f"bad head shape: hidden_size {hidden_size}, width {width}")
        inputs = hidden_size + len(PROBABILITY_FEATURES)
        self.hidden_size, self.width = hidden_size, width
        self.register_buffer("mean", torch.zeros(inputs))
        self.register_buffer("std", torch.ones(inputs))
        if width:
            self.net = torch.nn.Sequential(
                torch.nn.Linear(inputs, width), torch.nn.ReLU(), torch.nn.Linear(width, 1)
            )
        else:
            self.net = torch.nn.Sequential(torch.nn.Linear(inputs, 1))
        self.info: HeadInfo | None = None

    def set_standardisation(self, features: torch.Tensor) -> None:
        """Standardise inputs with the mean and standard deviation of these training rows."""
        self.mean.copy_(features.mean(0))
        self.std.copy_(features.std(0).clamp_min(1e-6))

    def forward(self, hidden: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """Logits of acceptance, shape [..]."""
        x = torch.cat([hidden.float(), probs.float()], -1)
        return self.net((x - self.mean) / self.std).squeeze(-1)

    @torch.inference_mode()
    def probability(self, hidden: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """P(accept) from the draft's hidden state and raw logits (any leading shape)."""
        return torch.sigmoid(self(hidden, probability_features(logits)))

    def folded(self) -> list[torch.Tensor]:
        """The layers with the standardisation folded into the first one: (W1, b1[, W2, b2])."""
        first = self.net[0]
        weight = first.weight / self.std
        bias = first.bias - weight @ self.mean
        layers = [weight.detach().clone(), bias.detach().clone()]
        if self.width:
            layers += [self.net[2].weight.detach().clone(), self.net[2].bias.detach().clone()]
        return layers


def save_head(folder: str | Path, head: AcceptanceHead, info: HeadInfo) -> None:
    """`head.safetensors` then `head.json` (written last: a folder with it is complete)."""
    from safetensors.torch import save

    from toolbench.foundation.io import atomic_open, write_json

    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    with atomic_open(folder / HEAD_FILE) as handle:
        handle.write(save(state))
    write_json(folder / INFO_FILE, info.model_dump(mode="json"))
    head.info = info


def load_head(folder: str | Path) -> AcceptanceHead:
    """A saved head (on CPU, eval mode) with its `info`; a folder that is not one is a UserError."""
    import json

    from pydantic import ValidationError
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / INFO_FILE).is_file() or not (folder / HEAD_FILE).is_file():
        raise UserError(
            f"{folder}: not an acceptance head (no {INFO_FILE} + {HEAD_FILE}); "
            "train one with `toolbench train acceptance-head`"
        )
    try:
        info = HeadInfo.model_validate(json.loads((folder / INFO_FILE).read_text()))
    except (ValueError, ValidationError) as error:
        raise UserError(
            f"{folder / INFO_FILE}: not a head description ({str(error).splitlines()[0]})"
        ) from None
    if info.format != FORMAT:
        raise UserError(f"{folder}: head format {info.format}, this version reads format {FORMAT}")
    head = AcceptanceHead(info.hidden_size, info.width)
    head.load_state_dict(load_file(str(folder / HEAD_FILE)))
    head.info = info
    return head.eval()


def check_draft(head: AcceptanceHead, draft: str | Path, where: str = "acceptance head") -> None:
    """Refuse a head on a draft it was not trained for (other hidden size, other weights)."""
    info = head.info
    if info is None:
        return
    size = hidden_size_of(draft)
    retrain = f"retrain it: `toolbench train acceptance-head --target TARGET --draft {draft}`"
    if size != info.hidden_size:
        raise UserError(
            f"{where} was trained for a draft with hidden size {info.hidden_size}; draft {draft} has "
            f"hidden size {size}; {retrain}"
        )
    if info.draft_fingerprint is not None and weights_fingerprint(draft) != info.draft_fingerprint:
        raise UserError(
            f"{where} was trained for draft {info.draft} (weights {info.draft_fingerprint}); draft {draft} "
            f"has other weights ({weights_fingerprint(draft)}); {retrain}"
        )
