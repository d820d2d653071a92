"""Speculative decoding at batch size 1 for Hugging Face causal LMs, and the target-only baseline.

A round: the draft proposes up to γ tokens one at a time (its own KV cache), the target scores the
pending token plus all proposals in **one** forward (its own KV cache), and the longest agreeing
prefix is kept, followed by one token from the target (the correction at the first disagreement,
or the bonus token when every proposal was accepted). So each round costs one target call and
yields between 1 and γ + 1 tokens.

- Greedy (temperature 0): a proposal is accepted iff it is the target's argmax. The output is the
  target's greedy output token for token (the tests check this).
- Sampling (temperature > 0): standard rejection sampling (Leviathan et al. 2023, Chen et al.
  2023): accept x ~ q with probability min(1, p(x)/q(x)); at the first rejection sample from
  norm(max(0, p − q)); after γ acceptances sample the bonus token from p. The output is
  distributed exactly as target sampling (a statistical test checks this).

How long a round drafts is a `DraftPolicy`: fixed γ, stop when the draft is unsure (confidence), or
stop when a learned acceptance head (the classifier in `acceptance_head`) predicts the target will
reject (`LearnedAcceptance`). The loop does not know which; every policy is lossless because it
only decides *how many* tokens the target verifies, never which.

Both caches keep one invariant between rounds: they hold the keys/values of every token except the
last one (the "pending" token, fed with the next forward). After a rejection, each cache is cropped
back to the agreed prefix (`DynamicCache.crop` takes a negative count in transformers 5). The
target's verification logits give the correction/bonus token directly: no extra target call.

Written for speed: `torch.inference_mode`, one preallocated token buffer, logits only where needed
(`logits_to_keep`), no host synchronisation inside a fixed-γ draft loop, one per verification.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from toolbench.core.kv_cache import growing_cache
from toolbench.distill.speculative.acceptance_head import (
    AcceptanceHead,
    check_draft,
    load_head,
    probability_features,
)
from toolbench.foundation.errors import UserError


@dataclass(frozen=True)
class DraftStep:
    """What a policy may look at before a candidate token is proposed to the target.

    `index` is the candidate's 0-based place in the round; `logits` the draft's raw logits for it
    (before temperature, shape [vocab]); `token` the candidate (a 0-d tensor, still on device);
    `hidden` the draft's last hidden state at that position (only when the policy asks for it).
    """

    index: int
    logits: torch.Tensor
    token: torch.Tensor
    hidden: torch.Tensor | None = None


class Decision(IntEnum):
    """A policy's answer for one candidate. `STOP` (or False): drop it and end the round; `PROPOSE`
    (or True): propose it and keep drafting; `LAST`: propose it, then end the round.

    `LAST` is what an adaptive policy wants: by the time it sees a candidate, the draft forward that
    made it is paid for, and one more token in the target's verification forward costs far less
    than the expected gain (its acceptance probability times a target call)."""

    STOP = 0
    PROPOSE = 1
    LAST = 2


class DraftPolicy(Protocol):
    """Decides how many tokens the draft proposes in a round.

    `max_draft` bounds a round (γ, the budget; it also sizes buffers and the expected-τ formula);
    `propose` is asked for each candidate in turn and returns a `Decision` (a bool works: True is
    PROPOSE, False is STOP); the round ends at the first STOP or LAST, or after `max_draft`
    proposals. A round may propose nothing, which makes it a plain target step. `needs_hidden` asks
    the loop to pass the draft's last hidden state (a learned acceptance head needs it; others
    should not pay for it). A policy may keep state within a round (`step.index` 0 starts one).
    """

    name: str
    max_draft: int
    needs_hidden: bool

    def propose(self, step: DraftStep) -> bool | Decision: ...


def _check_gamma(gamma: int) -> int:
    if isinstance(gamma, bool) or not isinstance(gamma, int) or gamma < 1:
        raise UserError(f"gamma (draft tokens per round) must be an integer >= 1; got {gamma!r}")
    return gamma


@dataclass(frozen=True)
class FixedLength:
    """Always propose γ tokens: the textbook setting and vLLM's `num_speculative_tokens`."""

    gamma: int
    name: str = "fixed"
    needs_hidden: bool = False

    def __post_init__(self) -> None:
        _check_gamma(self.gamma)

    @property
    def max_draft(self) -> int:
        return self.gamma

    def propose(self, step: DraftStep) -> bool:
        return True


@dataclass(frozen=True)
class ConfidenceThreshold:
    """Keep drafting while the draft's top probability (softmax of its raw logits) is at least
    `threshold`, up to γ per round; the first candidate below it is still proposed, as the round's
    last (`Decision.LAST`: its draft forward is already paid, and the target may well accept it).
    So every round proposes at least one token. Function calls make this pay: a draft is
    near-certain on JSON syntax and keys, unsure on values it must copy."""

    gamma: int
    threshold: float = 0.5
    name: str = "confidence"
    needs_hidden: bool = False

    def __post_init__(self) -> None:
        _check_gamma(self.gamma)
        if not 0.0 <= self.threshold <= 1.0:
            raise UserError(f"confidence threshold must be between 0 and 1; got {self.threshold}")

    @property
    def max_draft(self) -> int:
        return self.gamma

    def propose(self, step: DraftStep) -> Decision:
        logits = step.logits.float()
        top = float(torch.exp(logits.max() - torch.logsumexp(logits, -1)))  # max softmax, one pass less
        return Decision.PROPOSE if top >= self.threshold else Decision.LAST


DEFAULT_GAMMA = 5
DEFAULT_THRESHOLD = 0.5


class LearnedAcceptance:
    """The `learned` draft policy: propose while the predicted probability that the round's
    candidates so far are all accepted, S_i = Π_{j ≤ i} p_j, stays at or above `threshold`; the
    candidate that takes it below is proposed as the last of the round. At most `max_draft` per
    round. Holds per-round state, so use one instance per decoding loop at a time."""

    name = "learned"
    needs_hidden = True

    def __init__(self, head: AcceptanceHead, budget: int, threshold: float):
        _check_gamma(budget)
        if not 0.0 <= threshold <= 1.0:
            raise UserError(f"learned policy threshold must be between 0 and 1; got {threshold}")
        self.head, self.max_draft, self.threshold = head.eval(), budget, threshold
        self._layers = head.folded()
        self._survive = 1.0

    def _to(self, device: torch.device) -> None:
        self._layers = [layer.to(device) for layer in self._layers]

    def acceptance(self, step: DraftStep) -> float:
        """p for this candidate (the head, with the standardisation folded into its first layer)."""
        hidden = step.hidden
        if hidden is None:
            raise ValueError("the learned policy needs the draft's hidden state (needs_hidden)")
        if self._layers[0].device != hidden.device:
            self._to(hidden.device)
        x = torch.cat([hidden.float(), probability_features(step.logits)])
        z = torch.addmv(self._layers[1], self._layers[0], x)
        if len(self._layers) == 4:
            z = torch.addmv(self._layers[3], self._layers[2], z.relu_())
        return float(torch.sigmoid(z[0]))

    def propose(self, step: DraftStep) -> Decision:
        p = self.acceptance(step)
        self._survive = p if step.index == 0 else self._survive * p
        return Decision.PROPOSE if self._survive >= self.threshold else Decision.LAST


def learned_policy(
    head: AcceptanceHead | str | Path | None,
    budget: int | None = None,
    threshold: float | None = None,
    draft: str | Path | None = None,
) -> LearnedAcceptance:
    """The `learned` policy from a head (or its folder); budget and threshold default to the ones
    chosen on training prompts when the head was trained. With `draft`, the head is checked to be
    that draft's (hidden size and weights) before anything is loaded."""
    if head is None:
        raise UserError(
            "the learned draft policy needs --head: a folder from `toolbench train acceptance-head`"
        )
    where = "acceptance head"
    if not isinstance(head, AcceptanceHead):
        where = f"acceptance head {head}"
        head = load_head(head)
    if draft is not None:
        check_draft(head, draft, where)
    info = head.info
    if budget is None:
        budget = info.budget if info and info.budget else 8
    if threshold is None:
        threshold = info.threshold if info and info.threshold is not None else DEFAULT_THRESHOLD
    return LearnedAcceptance(head, budget, threshold)


POLICIES: dict[str, Callable[..., DraftPolicy]] = {
    "fixed": lambda gamma, **_: FixedLength(DEFAULT_GAMMA if gamma is None else gamma),
    "confidence": lambda gamma, threshold=None, **_: ConfidenceThreshold(
        DEFAULT_GAMMA if gamma is None else gamma, DEFAULT_THRESHOLD if threshold is None else threshold
    ),
    "learned": lambda gamma, threshold=None, head=None, draft=None, **_: learned_policy(
        head, gamma, threshold, draft=draft
    ),
}
"""Draft policies by CLI name: a factory taking γ (the most draft tokens per round; None: the
policy's default) and the policy's options (unused ones ignored): `threshold`, and for `learned`
`head` (a folder from `toolbench train acceptance-head`) and `draft` (the draft it will run with,
checked against the head). A new policy registers here and every `--draft-policy` offers it."""


def make_policy(name: str, gamma: int | None = None, **options: Any) -> DraftPolicy:
    """A policy by its CLI name, e.g. `make_policy("confidence", 5, threshold=0.6)`."""
    if name not in POLICIES:
        raise UserError(f"unknown draft policy {name!r}; choose one of {', '.join(POLICIES)}")
    return POLICIES[name](gamma, **options)


@dataclass(frozen=True, slots=True)
class Round:
    """One draft-then-verify round: `position` is how many tokens had been generated before it (the
    output index of its first proposal), `drafted` how many tokens were proposed, `accepted` how
    many of them the target accepted (the round then adds one target token, so it yields
    `accepted + 1`). Times are filled only with `profile=True` (they need device syncs)."""

    position: int
    drafted: int
    accepted: int
    draft_s: float = 0.0
    verify_s: float = 0.0


@dataclass
class Generation:
    """One decoded answer. `tokens` are the generated ids (the end token included when one ended
    it); `rounds` is empty for target-only decoding, where `target_calls` equals the token count."""

    tokens: list[int]
    finish_reason: Literal["stop", "length"]
    seconds: float
    prompt_tokens: int
    target_calls: int
    rounds: list[Round] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return len(self.tokens) / self.seconds if self.seconds > 0 else 0.0


def _forward(model: Any, ids: torch.Tensor, cache: Any, keep: int) -> Any:
    """One cached forward over `ids` (1-D), keeping logits of the last `keep` positions only.
    Positions come from the cache length (batch 1, no padding, so no mask is needed)."""
    return model(input_ids=ids.unsqueeze(0), cache=cache, use_cache=True, logits_to_keep=keep)


@contextmanager
def capture_hidden(model: Any) -> Iterator[list[torch.Tensor]]:
    """While open, `box[0]` is the input of `model`'s output layer at its latest forward: its last
    hidden state as the logits see it ([batch, kept positions, d]; for Llama-style models,
    `hidden_states[-1]` after the final norm). A pre-hook on one module costs a few microseconds a
    forward, where `output_hidden_states=True` records every layer (~10% of a tiny draft's step)."""
    box: list[torch.Tensor] = []

    def hook(module: Any, args: tuple[Any, ...]) -> None:
        box[:] = [args[0]]

    handle = model.get_output_embeddings().register_forward_pre_hook(hook)
    try:
        yield box
    finally:
        handle.remove()


def _crop(cache: Any, length: int) -> None:
    """Drop cached positions from `length` on (transformers 5: crop takes minus the count)."""
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _new_cache(model: Any) -> Any:
    from transformers import DynamicCache

    cache = growing_cache(model)  # a Cache's truth is its layer count, so no `or` here
    return cache if cache is not None else DynamicCache(config=model.config)


def _as_ids(prompt: torch.Tensor | Iterable[int], device: torch.device, max_new_tokens: int) -> torch.Tensor:
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1; got {max_new_tokens}")
    ids = torch.as_tensor(prompt if isinstance(prompt, torch.Tensor) else list(prompt), dtype=torch.long)
    ids = ids.reshape(-1).to(device)
    if ids.numel() == 0:
        raise ValueError("the prompt is empty")
    return ids


def _extend(
    new: list[int], emitted: list[int], stop_ids: frozenset[int], max_new_tokens: int
) -> Literal["stop", "length"] | None:
    """Append a round's tokens up to the first end token (kept) or the budget; why it ended, if it did."""
    for token in emitted:
        new.append(token)
        if token in stop_ids:
            return "stop"
        if len(new) >= max_new_tokens:
            return "length"
    return None


def _sample(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.multinomial(probs, 1, generator=generator)[0]


@torch.inference_mode()
def target_decode(
    target: Any,
    prompt: torch.Tensor | Iterable[int],
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    stop_ids: Iterable[int] = (),
    generator: torch.Generator | None = None,
) -> Generation:
    """The baseline: target-only decoding with a KV cache, one target call per token, in the same
    style as the speculative loop so that the speedup compares algorithms, not implementations."""
    device = target.device
    ids = _as_ids(prompt, device, max_new_tokens)
    stops = frozenset(stop_ids)
    cache = _new_cache(target)
    _sync(device)
    started = time.perf_counter()
    logits = _forward(target, ids, cache, 1).logits[0, -1]
    new: list[int] = []
    while True:
        if temperature > 0:
            token = _sample(torch.softmax(logits.float() / temperature, -1), generator)
        else:
            token = logits.argmax(-1)
        reason = _extend(new, [int(token)], stops, max_new_tokens)
        if reason is not None:
            break
        logits = _forward(target, token.reshape(1), cache, 1).logits[0, -1]
    _sync(device)
    seconds = time.perf_counter() - started
    return Generation(new, reason, seconds, ids.numel(), target_calls=len(new))


@torch.inference_mode()
def speculative_decode(
    target: Any,
    draft: Any,
    prompt: torch.Tensor | Iterable[int],
    max_new_tokens: int,
    policy: DraftPolicy | int = 5,
    *,
    temperature: float = 0.0,
    stop_ids: Iterable[int] = (),
    generator: torch.Generator | None = None,
    profile: bool = False,
) -> Generation:
    """Speculative decoding of one prompt (a 1-D id sequence) with `draft` proposing for `target`.

    `policy` is a DraftPolicy or an int γ (fixed length). Greedy when `temperature` is 0, exact
    rejection sampling otherwise (`generator` makes it reproducible; it must live on the models'
    device). Both models must share the vocabulary (`toolbench.distill.training.models.check_same_vocabulary`); when their output
    layers differ in size (padded vocabularies) the extra ids are ignored. Generation stops after
    an id in `stop_ids` (kept) or `max_new_tokens` ids. `profile=True` times draft and verify per
    round (with device syncs, so off by default).
    """
    if isinstance(policy, int):
        policy = FixedLength(policy)
    device = target.device
    ids = _as_ids(prompt, device, max_new_tokens)
    stops = frozenset(stop_ids)
    sampling = temperature > 0
    gamma = policy.max_draft
    vocab = min(target.config.get_text_config().vocab_size, draft.config.get_text_config().vocab_size)

    n_prompt = ids.numel()
    buffer = torch.empty(n_prompt + max_new_tokens + gamma + 2, dtype=torch.long, device=device)
    buffer[:n_prompt] = ids
    length = n_prompt  # tokens in the sequence; buffer[length - 1] is the pending token
    t_cache, d_cache = _new_cache(target), _new_cache(draft)
    rounds: list[Round] = []
    new: list[int] = []
    reason: Literal["stop", "length"] | None = None
    _sync(device)
    started = time.perf_counter()
    if n_prompt > 1:
        _forward(target, buffer[: n_prompt - 1], t_cache, 1)
        _forward(draft, buffer[: n_prompt - 1], d_cache, 1)
    with capture_hidden(draft) if policy.needs_hidden else nullcontext() as captured:
        while reason is None:
            tick = time.perf_counter() if profile else 0.0
            # -- draft: feed what the draft has not seen (1 token, 2 after a fully accepted round)
            drafted = 0
            draft_probs: list[torch.Tensor] = []
            fed = d_cache.get_seq_length()
            for index in range(gamma):
                out = _forward(draft, buffer[fed : length + index], d_cache, 1)
                fed = length + index
                logits = out.logits[0, -1, :vocab]
                if sampling:
                    probs = torch.softmax(logits.float() / temperature, -1)
                    token = _sample(probs, generator)
                else:
                    token = logits.argmax(-1)
                hidden = captured[0][0, -1] if captured is not None else None
                decision = policy.propose(DraftStep(index, logits, token, hidden))
                if not decision:
                    break
                buffer[length + index] = token
                drafted += 1
                if sampling:
                    draft_probs.append(probs)
                if decision == Decision.LAST:
                    break
            if profile:
                _sync(device)
                tock = time.perf_counter()

            # -- verify: the pending token and every proposal in one target call
            t_fed = t_cache.get_seq_length()
            logits = _forward(target, buffer[t_fed : length + drafted], t_cache, drafted + 1).logits[
                0, :, :vocab
            ]
            if sampling:
                accepted, token = _rejection_sample(
                    logits, buffer[length : length + drafted], draft_probs, temperature, generator
                )
                buffer[length + accepted] = token
                emitted = buffer[length : length + accepted + 1].tolist()
            else:
                choice = logits.argmax(-1)  # the target's token after the pending one and each proposal
                agree = choice[:drafted] == buffer[length : length + drafted]
                both = torch.cat([choice, agree.long()]).tolist()  # one host sync per round
                agree_list = both[drafted + 1 :]
                accepted = agree_list.index(0) if 0 in agree_list else drafted
                buffer[length + accepted] = choice[accepted]
                emitted = both[: accepted + 1]  # accepted proposals equal the target's choices
            rounds.append(
                Round(
                    len(new),
                    drafted,
                    accepted,
                    (tock - tick) if profile else 0.0,
                    (time.perf_counter() - tock) if profile else 0.0,
                )
            )
            length += accepted + 1
            reason = _extend(new, emitted, stops, max_new_tokens)
            # -- both caches back to "everything but the pending token"
            _crop(t_cache, length - 1)
            _crop(d_cache, length - 1)
    _sync(device)
    seconds = time.perf_counter() - started
    return Generation(new, reason, seconds, n_prompt, target_calls=len(rounds), rounds=rounds)


def _rejection_sample(
    target_logits: torch.Tensor,
    proposals: torch.Tensor,
    draft_probs: list[torch.Tensor],
    temperature: float,
    generator: torch.Generator | None,
) -> tuple[int, torch.Tensor]:
    """Leviathan et al.'s acceptance rule over one round: (accepted count, the token after them).

    Proposal i is accepted with probability min(1, p_i(x_i) / q_i(x_i)); at the first rejection the
    next token comes from norm(max(0, p − q)) at that position; if all are accepted, from p after
    the last one (the bonus token). This makes every emitted token distributed as target sampling.
    """
    p = torch.softmax(target_logits.float() / temperature, -1)
    drafted = proposals.numel()
    if drafted:
        q = torch.stack(draft_probs)
        rows = torch.arange(drafted, device=p.device)
        ratio = p[rows, proposals] / q[rows, proposals]
        draws = torch.rand(drafted, generator=generator, device=p.device)
        keep = (draws < ratio).tolist()
        accepted = keep.index(False) if False in keep else drafted
    else:
        accepted = 0
    if accepted == drafted:
        return accepted, _sample(p[accepted], generator)
    residual = (p[accepted] - q[accepted]).clamp_min(0)
    total = residual.sum()
    # p == q up to rounding leaves no residual mass; then p itself is the right distribution
    return accepted, _sample(residual / total if total > 0 else p[accepted], generator)


@torch.inference_mode()
def hf_decode(
    target: Any,
    prompt: torch.Tensor | Iterable[int],
    max_new_tokens: int,
    *,
    draft: Any = None,
    gamma: int = 5,
    stop_ids: Iterable[int] = (),
    pad_id: int | None = None,
) -> Generation:
    """Greedy `model.generate`, with `assistant_model=draft` when a draft is given (HF assisted
    generation, set to propose exactly γ tokens per round: constant schedule, no confidence cut),
    for cross-checking our loop's output and speed on the same prompts."""
    device = target.device
    ids = _as_ids(prompt, device, max_new_tokens).unsqueeze(0)
    stops = list(stop_ids)
    options: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": False,
        "eos_token_id": stops or None,
        "pad_token_id": pad_id if pad_id is not None else (stops[0] if stops else None),
        "attention_mask": torch.ones_like(ids),
    }
    saved = {}
    if draft is not None:
        settings = {
            "num_assistant_tokens": _check_gamma(gamma),
            "num_assistant_tokens_schedule": "constant",
            "assistant_confidence_threshold": 0.0,
        }
        saved = {key: getattr(draft.generation_config, key, None) for key in settings}
        for key, value in settings.items():
            setattr(draft.generation_config, key, value)
        options["assistant_model"] = draft
    try:
        _sync(device)
        started = time.perf_counter()
        output = target.generate(ids, **options)
        _sync(device)
        seconds = time.perf_counter() - started
    finally:
        for key, value in saved.items():
            setattr(draft.generation_config, key, value)
    new: list[int] = []
    reason = _extend(new, output[0, ids.shape[1] :].tolist(), frozenset(stops), max_new_tokens)
    return Generation(new, reason or "length", seconds, ids.shape[1], target_calls=0)  # 0: not observable
