"""`toolbench train acceptance-head`: data, training and policy selection for the learned
acceptance head (`acceptance_head`).

**Data.** On training prompts (scenario II: train-split template queries, by default with seed 1,
so other slot values than the distillation prompts of seed 0; never the test tasks), the target
writes its greedy answer, and the draft reads prompt + answer in one teacher-forced forward. At
every answer position t the draft's proposal is its argmax, and the target accepts it iff it is the
target's own greedy token there (answer[t]). This is exactly what greedy speculative rounds
observe: a candidate is examined only when the candidates before it were accepted, i.e. when its
prefix *is* the target's greedy output, and then its features (the draft's hidden state and
distribution) and its verdict depend on that prefix alone, not on where the round started. So one
forward per answer yields every (features, accepted?) pair that any policy's rounds could examine,
with none of the rounds' cost. Per position we keep the draft's last hidden state (fp16), the three
probability features, the verdict and the token class of answer[t].

Cache layout (like the teacher cache: atomic shards, an index that records what made them, a
killed run redoes only the shard it was writing, other settings are refused, never mixed):

    prompts.jsonl, prompts.json       the prompts (tool, ids) and what made them
    index.json                        identity (target and draft weight fingerprints, prompts, settings)
    shard-00000.safetensors           hidden [N, d] f16, probs [N, 3] f32, accepted [N] u8,
                                      classes [N] u8, offsets [n + 1] i64, prompt_index [n] i64

**Training.** BCE (the probabilities must be calibrated: the policy multiplies them), Adam, a
fixed number of steps, the state with the best validation loss kept; a share of the sequences is
held out for metrics and selection.

**Selection.** On the held-out training sequences, greedy rounds are replayed exactly from the
verdicts (`simulate`: a round drafts until its policy stops or the budget is spent, keeps the
leading accepted candidates plus one target token), and timed with costs measured on this machine
(`measure_costs`: a cost model fitted to profiled rounds of the real loop on a few prompts: a
round's fixed cost, what each proposal adds to the verification, one draft step with each
policy's own overhead, and a target-only step). The best fixed γ, the best confidence threshold and budget, and the best learned
threshold and budget by predicted tokens/s are written to `head.json`, so `spec` and the benchmark
use thresholds chosen on training prompts, not on the prompts they are scored on. (Decisions made
after a wrong candidate use the features at that position of the target's sequence, an
approximation that only affects how many wasted tokens a round drafts.)
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field

from toolbench.distill.speculative.acceptance_head import (
    AcceptanceHead,
    HeadInfo,
    probability_features,
    save_head,
)
from toolbench.distill.speculative.decoding import ConfidenceThreshold, LearnedAcceptance, capture_hidden
from toolbench.distill.speculative.token_classes import CLASSES
from toolbench.distill.training.align import SFT_TOOLS
from toolbench.distill.training.models import weights_fingerprint
from toolbench.distill.training.shards import INDEX, fill_shards, read_index, read_shards
from toolbench.foundation.errors import UserError


class HeadTrainConfig(BaseModel):
    target: str
    draft: str
    tools: list[str] = Field(default_factory=lambda: list(SFT_TOOLS))
    samples: int = Field(600, ge=1, description="Scenario II generated samples (prompts).")
    seed: int = Field(1, description="Prompt seed (distillation uses 0: other slot values here).")
    max_new_tokens: int = Field(128, ge=1, description="Longest target answer.")
    max_prompt_length: int = Field(512, ge=8, description="Longer prompts are dropped.")
    shard_size: int = Field(128, ge=1, description="Answers per data shard (the unit of resumption).")
    batch_size: int = Field(16, ge=1, description="Sequences generated / read together.")
    width: int = Field(32, ge=0, description="Hidden units of the head; 0: logistic regression.")
    steps: int = Field(2000, ge=1, description="Optimizer steps.")
    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    train_batch: int = Field(256, ge=1, description="Positions per optimizer step.")
    validation: float = Field(0.25, gt=0, lt=1, description="Share of sequences held out.")
    max_budget: int = Field(10, ge=1, description="Largest γ / budget the selection considers.")
    cache_dir: str | None = Field(None, description="Data cache (default OUT/data).")
    device: str = "auto"
    dtype: str = "auto"


# ------------------------------------------------------------------- the data


@dataclass
class HeadData:
    """Per answer position: the draft's hidden state and probability features, the verdict, the
    token class (index into CLASSES, or None); `offsets` delimit sequences, `tools` name theirs."""

    hidden: torch.Tensor  # [N, d] float16
    probs: torch.Tensor  # [N, 3] float32
    accepted: torch.Tensor  # [N] bool
    offsets: list[int]  # [n + 1]
    tools: list[str]  # [n]
    classes: torch.Tensor | None = None  # [N] uint8

    @property
    def sequences(self) -> int:
        return len(self.offsets) - 1

    @property
    def positions(self) -> int:
        return int(self.accepted.numel())

    def rows(self, sequences: Sequence[int]) -> HeadData:
        """The data of these sequences (in this order)."""
        index = torch.cat(
            [torch.arange(self.offsets[i], self.offsets[i + 1]) for i in sequences]
            or [torch.zeros(0, dtype=torch.long)]
        )
        lengths = [self.offsets[i + 1] - self.offsets[i] for i in sequences]
        return HeadData(
            self.hidden[index],
            self.probs[index],
            self.accepted[index],
            [0, *torch.tensor(lengths, dtype=torch.long).cumsum(0).tolist()],
            [self.tools[i] for i in sequences],
            self.classes[index] if self.classes is not None else None,
        )

    @staticmethod
    def concat(parts: Sequence[HeadData]) -> HeadData:
        offsets = [0]
        for part in parts:
            offsets += [offsets[-1] + x for x in part.offsets[1:]]
        classes = [p.classes for p in parts]
        return HeadData(
            torch.cat([p.hidden for p in parts]),
            torch.cat([p.probs for p in parts]),
            torch.cat([p.accepted for p in parts]),
            offsets,
            [t for p in parts for t in p.tools],
            torch.cat(classes) if all(c is not None for c in classes) and classes else None,  # type: ignore[arg-type]
        )


@torch.inference_mode()
def draft_features(
    draft: Any,
    prompts: Sequence[Sequence[int]],
    answers: Sequence[Sequence[int]],
    *,
    tools: Sequence[str] | None = None,
    vocab: int | None = None,
    batch_size: int = 16,
    pad_id: int = 0,
) -> HeadData:
    """The draft reads each prompt + target answer once (right-padded batches); at every answer
    position it yields its hidden state, probability features, and whether its argmax is the
    answer's token there (= the target accepts it; see the module doc). `vocab` limits the ids
    compared (a padded output layer's extra ids are ignored, as in speculative decoding)."""
    device = draft.device
    vocab = vocab or draft.config.get_text_config().vocab_size
    hidden, probs, accepted, lengths = [], [], [], []
    for start in range(0, len(prompts), batch_size):
        rows = range(start, min(len(prompts), start + batch_size))
        sequences = [list(prompts[i]) + list(answers[i]) for i in rows]
        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for r, s in enumerate(sequences):
            ids[r, : len(s)] = torch.as_tensor(s)
            mask[r, : len(s)] = 1
        with capture_hidden(draft) as captured:  # the hidden state the decoding loop passes a policy
            out = draft(input_ids=ids.to(device), attention_mask=mask.to(device))
        for r, i in enumerate(rows):
            first, n = len(prompts[i]) - 1, len(answers[i])  # logits at first + t predict answer[t]
            logits = out.logits[r, first : first + n, :vocab].float()
            hidden.append(captured[0][r, first : first + n].half().cpu())
            probs.append(probability_features(logits).cpu())
            target = torch.as_tensor(list(answers[i]), dtype=torch.long, device=logits.device)
            accepted.append((logits.argmax(-1) == target).cpu())
            lengths.append(n)
    size = draft.config.get_text_config().hidden_size
    return HeadData(
        torch.cat(hidden) if hidden else torch.zeros(0, size, dtype=torch.float16),
        torch.cat(probs) if probs else torch.zeros(0, 3),
        torch.cat(accepted) if accepted else torch.zeros(0, dtype=torch.bool),
        [0, *torch.tensor(lengths, dtype=torch.long).cumsum(0).tolist()],
        list(tools) if tools is not None else [""] * len(prompts),
    )


def _save_shard(path: Path, data: HeadData, first: int) -> int:
    from safetensors.torch import save

    from toolbench.foundation.io import atomic_open

    tensors = {
        "hidden": data.hidden.contiguous(),
        "probs": data.probs.contiguous(),
        "accepted": data.accepted.to(torch.uint8).contiguous(),
        "offsets": torch.tensor(data.offsets, dtype=torch.int64),
        "prompt_index": torch.arange(first, first + data.sequences, dtype=torch.int64),
    }
    if data.classes is not None:
        tensors["classes"] = data.classes.contiguous()
    blob = save(tensors)
    with atomic_open(path) as handle:
        handle.write(blob)
    return len(blob)


def build_head_data(
    target: Any,
    draft: Any,
    tokenizer: Any,
    prompt_ids: Sequence[Sequence[int]],
    tools: Sequence[str],
    folder: Path,
    config: HeadTrainConfig,
    identity: dict[str, Any],
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Fill `folder` shard by shard (target greedy answers, then the draft's features and
    verdicts), skipping shards a killed run finished. Returns the cost report."""
    from toolbench.distill.draft.teacher_cache import generate_batch, prompts_digest
    from toolbench.distill.speculative.spec_eval import stop_ids
    from toolbench.distill.speculative.token_classes import token_classes

    identity = {
        **identity,
        "prompts": prompts_digest(prompt_ids),
        "count": len(prompt_ids),
        "max_new_tokens": config.max_new_tokens,
        "shard_size": config.shard_size,
    }
    stops = stop_ids(target, tokenizer)
    vocab = min(target.config.get_text_config().vocab_size, draft.config.get_text_config().vocab_size)
    class_index = {name: i for i, name in enumerate(CLASSES)}

    def make_shard(first: int, stop: int, file: Path) -> dict[str, Any]:
        chunk = prompt_ids[first:stop]
        rollouts = generate_batch(
            target,
            chunk,
            max_new_tokens=config.max_new_tokens,
            stop=stops,
            pad_id=tokenizer.pad_token_id or 0,
            batch_size=config.batch_size,
        )
        answers = [r.response for r in rollouts]
        data = draft_features(
            draft,
            chunk,
            answers,
            tools=tools[first:stop],
            vocab=vocab,
            batch_size=config.batch_size,
            pad_id=tokenizer.pad_token_id or 0,
        )
        data.classes = torch.tensor(
            [class_index[c] for answer in answers for c in token_classes(tokenizer, answer)],
            dtype=torch.uint8,
        )
        return {
            "positions": data.positions,
            "accepted": int(data.accepted.sum()),
            "bytes": _save_shard(file, data, first),
        }

    fill_shards(folder, identity, len(prompt_ids), config.shard_size, make_shard, "acceptance data", progress)
    return data_report(folder)


def data_report(folder: Path) -> dict[str, Any]:
    index = read_index(folder)
    if index is None:
        raise UserError(f"{folder}: not an acceptance-head data cache (no {INDEX})")
    positions = sum(s["positions"] for s in index["shards"])
    accepted = sum(s["accepted"] for s in index["shards"])
    return {
        "sequences": sum(s["sequences"] for s in index["shards"]),
        "positions": positions,
        "accepted_share": accepted / positions if positions else 0.0,
        "disk_bytes": sum(s["bytes"] for s in index["shards"]),
        "seconds": index["seconds"],
        "complete": bool(index.get("complete")),
    }


def load_head_data(folder: Path, tools: Sequence[str]) -> HeadData:
    """Every cached sequence in prompt order (`tools[i]`: prompt i's tool)."""
    parts = []
    for t in read_shards(folder, "acceptance data", "rerun the command to fill it"):
        parts.append(
            HeadData(
                t["hidden"],
                t["probs"],
                t["accepted"].bool(),
                t["offsets"].tolist(),
                [tools[i] for i in t["prompt_index"].tolist()],
                t.get("classes"),
            )
        )
    return HeadData.concat(parts)


# ------------------------------------------------------------------- training and metrics


def auc(scores: torch.Tensor, labels: torch.Tensor) -> float | None:
    """Area under the ROC curve (rank statistic); None when one class is absent."""
    labels = labels.bool()
    positives, total = int(labels.sum()), int(labels.numel())
    negatives = total - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = torch.empty(total, dtype=torch.float64)
    ranks[scores.double().argsort()] = torch.arange(1, total + 1, dtype=torch.float64)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _inputs(data: HeadData) -> tuple[torch.Tensor, torch.Tensor]:
    return data.hidden.float(), data.probs.float()


def train_head(
    train: HeadData,
    valid: HeadData | None = None,
    *,
    width: int = 32,
    steps: int = 2000,
    learning_rate: float = 3e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 256,
    seed: int = 0,
) -> tuple[AcceptanceHead, dict[str, Any]]:
    """A head fitted by BCE on `train`; the state with the least `valid` loss is kept (checked
    every 100 steps; the training loss when there is no validation data)."""
    if train.positions == 0:
        raise UserError("no training positions for the acceptance head (all answers empty?)")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    hidden, probs = _inputs(train)
    labels = train.accepted.float()
    head = AcceptanceHead(hidden.shape[1], width)
    head.set_standardisation(torch.cat([hidden, probs], -1))
    optimizer = torch.optim.AdamW(head.parameters(), lr=learning_rate, weight_decay=weight_decay)
    check = valid if valid is not None and valid.positions else train
    check_hidden, check_probs = _inputs(check)
    check_labels = check.accepted.float()
    loss_fn = torch.nn.functional.binary_cross_entropy_with_logits
    best, best_state, history = math.inf, None, []
    started = time.perf_counter()
    for step in range(1, steps + 1):
        head.train()
        rows = torch.randint(0, train.positions, (min(batch_size, train.positions),), generator=generator)
        loss = loss_fn(head(hidden[rows], probs[rows]), labels[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == steps:
            head.eval()
            with torch.no_grad():
                value = float(loss_fn(head(check_hidden, check_probs), check_labels))
            history.append({"step": step, "train_loss": round(loss.item(), 5), "check_loss": round(value, 5)})
            if value < best:
                best, best_state = value, {k: v.clone() for k, v in head.state_dict().items()}
    if best_state is not None:
        head.load_state_dict(best_state)
    return head.eval(), {"seconds": round(time.perf_counter() - started, 2), "history": history}


@torch.no_grad()
def head_metrics(head: AcceptanceHead, data: HeadData) -> dict[str, Any]:
    """Log loss, Brier score and AUC of the head on `data`, against the base rate and the draft's
    top-1 probability alone (what the confidence policy sees); the same per token class."""
    if data.positions == 0:
        return {"positions": 0}
    hidden, probs = _inputs(data)
    p = torch.sigmoid(head(hidden, probs)).double()
    y = data.accepted
    base = float(y.double().mean())

    def figures(mask: torch.Tensor) -> dict[str, Any]:
        pm, ym = p[mask], y[mask]
        yd = ym.double()
        rate = float(yd.mean()) if ym.numel() else 0.0
        clamp = pm.clamp(1e-7, 1 - 1e-7)
        log_loss = float(-(yd * clamp.log() + (1 - yd) * (1 - clamp).log()).mean()) if ym.numel() else 0.0
        flat = min(max(rate, 1e-7), 1 - 1e-7)
        return {
            "positions": int(ym.numel()),
            "accepted_share": round(rate, 4),
            "mean_predicted": round(float(pm.mean()), 4) if ym.numel() else 0.0,
            "log_loss": round(log_loss, 4),
            "log_loss_base_rate": round(-(rate * math.log(flat) + (1 - rate) * math.log(1 - flat)), 4),
            "brier": round(float(((pm - yd) ** 2).mean()), 4) if ym.numel() else 0.0,
            "auc": _round(auc(pm, ym)),
            "auc_top1_prob": _round(auc(data.probs[mask][:, 0], ym)),
        }

    result = figures(torch.ones_like(y))
    result["base_rate"] = round(base, 4)
    if data.classes is not None:
        result["by_class"] = {
            name: figures(data.classes == i)
            for i, name in enumerate(CLASSES)
            if bool((data.classes == i).any())
        }
    return result


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


# ------------------------------------------------------------------- costs and selection


class CostModel(BaseModel):
    """Seconds on this machine, fitted to profiled rounds of the real decoding loop
    (`speculative_decode(profile=True)`): a round that drafts k tokens under policy P costs
    `round_s + loop_s + k · (verify_token_s + step_s(P))`, where `round_s` is the round's fixed
    cost (the target's forward over the pending token, the draft's catch-up), `loop_s` the rest of
    the loop's work per round (cache crops, bookkeeping), `verify_token_s` what
    each proposal adds to the target's forward, and `step_s(P)` one draft step with P's own test
    (the learned policy's includes the hidden state and the head). `target_token_s` is one step of
    target-only decoding, the baseline."""

    target_token_s: float
    round_s: float
    loop_s: float = Field(0.0, description="Per round, outside the profiled spans: cache crops, bookkeeping.")
    verify_token_s: float
    draft_s: float
    confidence_s: float
    learned_s: float

    def step_s(self, policy: str) -> float:
        return {"fixed": self.draft_s, "confidence": self.confidence_s, "learned": self.learned_s}[policy]

    def round_seconds(self, policy: str, drafted: int) -> float:
        return self.round_s + self.loop_s + drafted * (self.verify_token_s + self.step_s(policy))


def _fit(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (a, b) of y ≈ a + b·x."""
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return my, 0.0
    b = sum((x - mx) * (y - my) for x, y in points) / sxx
    return my - b * mx, b


@torch.inference_mode()
def measure_costs(
    target: Any,
    draft: Any,
    prompts: Sequence[Sequence[int]],
    max_budget: int,
    head: AcceptanceHead,
    tokens: int = 96,
) -> CostModel:
    """Decode `tokens` tokens of each prompt target-only and speculatively (fixed γ at a few values,
    the adaptive policies with threshold 0 so they draft their whole budget), profiling every
    round, and fit the cost model to the rounds. No stop token: every run has the same length.
    What a run spends outside its rounds' profiled spans, less both models' prefill, is `loop_s`."""
    from toolbench.distill.speculative.decoding import (
        FixedLength,
        _forward,
        _new_cache,
        speculative_decode,
        target_decode,
    )

    def prefill_s(prompt: Sequence[int]) -> float:
        ids = torch.as_tensor(list(prompt)[:-1], dtype=torch.long, device=target.device)
        started = time.perf_counter()
        _forward(target, ids, _new_cache(target), 1)
        _forward(draft, ids, _new_cache(draft), 1)
        return time.perf_counter() - started

    gammas = sorted({1, 2, max(1, max_budget // 2), max_budget})
    # threshold 0: the adaptive policies draft their whole budget, paying their test at every step
    full_policies: dict[str, Any] = {
        "fixed": FixedLength(max_budget),
        "confidence": ConfidenceThreshold(max_budget, 0.0),
        "learned": LearnedAcceptance(head, max_budget, 0.0),
    }
    speculative_decode(target, draft, list(prompts[0])[-16:], 8, 2)  # warm up: lazy initialisation
    per_token, fixed_rounds, loop = [], [], []
    full_rounds: dict[str, list[float]] = {name: [] for name in full_policies}
    for prompt in prompts:
        one, full = target_decode(target, prompt, 1), target_decode(target, prompt, tokens)
        per_token.append((full.seconds - one.seconds) / max(1, tokens - 1))  # the prefill cancels
        prefill = min(prefill_s(prompt) for _ in range(3))
        for gamma in gammas:
            run = speculative_decode(target, draft, prompt, tokens, FixedLength(gamma), profile=True)
            fixed_rounds += [(r.drafted, r.draft_s, r.verify_s) for r in run.rounds]
            spans = sum(r.draft_s + r.verify_s for r in run.rounds)
            loop.append((run.seconds - prefill - spans) / len(run.rounds))
        for name, policy in full_policies.items():  # back to back, so drift hits all three alike
            run = speculative_decode(target, draft, prompt, tokens, policy, profile=True)
            full_rounds[name] += [r.draft_s for r in run.rounds if r.drafted == max_budget]
    verify_0, verify_k = _fit([(k, v) for k, _, v in fixed_rounds])
    draft_0, draft_k = _fit([(k, d) for k, d, _ in fixed_rounds])
    fixed_full = statistics.median(full_rounds["fixed"])

    def step(name: str) -> float:
        """The fixed draft step plus the policy's extra, from full rounds of both (paired)."""
        extra = (statistics.median(full_rounds[name]) - fixed_full) / max_budget
        return max(0.0, draft_k + extra)

    return CostModel(
        target_token_s=statistics.median(per_token),
        round_s=verify_0 + draft_0,
        loop_s=max(0.0, statistics.median(loop)),
        verify_token_s=max(0.0, verify_k),
        draft_s=max(0.0, draft_k),
        confidence_s=step("confidence"),
        learned_s=step("learned"),
    )


@dataclass
class Replay:
    """Greedy rounds replayed from verdicts: `sizes[k]` rounds drafted k tokens."""

    tokens: int
    rounds: int
    drafted: int
    accepted: int
    sizes: Counter

    def seconds(self, cost: CostModel, policy: str) -> float:
        return sum(n * cost.round_seconds(policy, k) for k, n in self.sizes.items())

    def figures(self, cost: CostModel, policy: str) -> dict[str, float]:
        """`predicted_speedup`: over target-only decoding of the same tokens, prefill excluded (the
        same for every draft policy; end-to-end figures add the prompt's prefill to both sides,
        the draft's too on the speculative side, so they come out lower)."""
        seconds = self.seconds(cost, policy)
        baseline = self.tokens * cost.target_token_s
        return {
            "predicted_speedup": round(baseline / seconds, 4) if seconds else 0.0,
            "mean_accepted_length": round(1 + self.accepted / self.rounds, 3) if self.rounds else 0.0,
            "wasted_draft_tokens_per_call": round((self.drafted - self.accepted) / self.rounds, 3)
            if self.rounds
            else 0.0,
            "target_calls_per_token": round(self.rounds / self.tokens, 4) if self.tokens else 0.0,
        }


def simulate(
    verdicts: Sequence[Sequence[bool]],
    budget: int,
    scores: Sequence[Sequence[float]] | None = None,
    threshold: float = 0.0,
    cumulative: bool = False,
) -> Replay:
    """Replay greedy speculative rounds over answers whose per-position verdicts are known.

    A round starting at position s drafts candidates s, s+1, … up to `budget`; with `scores` it
    proposes candidate i as its last once the score (`cumulative`: the product of the round's
    scores so far) falls below `threshold`. It keeps the leading accepted candidates and one target
    token. Candidates past the answer's end are not drafted (the answer ended)."""
    rounds = drafted = accepted = tokens = 0
    sizes: Counter = Counter()
    for i, sequence in enumerate(verdicts):
        length = len(sequence)
        tokens += length
        row = scores[i] if scores is not None else None
        start = 0
        while start < length:
            k, survive = 0, 1.0
            while k < budget and start + k < length:
                k += 1
                if row is not None:
                    value = row[start + k - 1]
                    survive = survive * value if cumulative else value
                    if survive < threshold:
                        break
            a = 0
            while a < k and sequence[start + a]:
                a += 1
            rounds, drafted, accepted = rounds + 1, drafted + k, accepted + a
            sizes[k] += 1
            start += a + 1
    return Replay(tokens, rounds, drafted, accepted, sizes)


CONFIDENCE_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
LEARNED_GRID = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _budgets(max_budget: int) -> list[int]:
    return sorted({b for b in (3, 4, 5, 6, 8, 10, 12, 16) if b <= max_budget} | {max_budget})


@torch.no_grad()
def select_policies(head: AcceptanceHead, data: HeadData, cost: CostModel, max_budget: int) -> dict[str, Any]:
    """Every policy setting replayed on `data` and timed with `cost`; the best of each policy by
    predicted speedup over target-only decoding."""
    split = [data.offsets[i : i + 2] for i in range(data.sequences)]
    verdicts = [data.accepted[a:b].tolist() for a, b in split]
    top1 = [data.probs[a:b, 0].tolist() for a, b in split]
    predicted = torch.sigmoid(head(*_inputs(data))).tolist()
    learned = [predicted[a:b] for a, b in split]
    rows: dict[str, list[dict[str, Any]]] = {"fixed": [], "confidence": [], "learned": []}
    for gamma in range(1, max_budget + 1):
        rows["fixed"].append({"gamma": gamma, **simulate(verdicts, gamma).figures(cost, "fixed")})
    for budget in _budgets(max_budget):
        for threshold in CONFIDENCE_GRID:
            replay = simulate(verdicts, budget, top1, threshold)
            rows["confidence"].append(
                {"budget": budget, "threshold": threshold, **replay.figures(cost, "confidence")}
            )
        for threshold in LEARNED_GRID:
            replay = simulate(verdicts, budget, learned, threshold, cumulative=True)
            rows["learned"].append(
                {"budget": budget, "threshold": threshold, **replay.figures(cost, "learned")}
            )
    best = {name: max(grid, key=lambda r: r["predicted_speedup"]) for name, grid in rows.items()}
    return {"cost": cost.model_dump(), "best": best, "grid": rows}


# ------------------------------------------------------------------- the command


def head_prompts(
    config: HeadTrainConfig, target: Any, tokenizer: Any, folder: Path
) -> tuple[list[str], list[list[int]]]:
    """(tools, prompt ids) of scenario II training prompts, made once into `folder`."""
    from toolbench.distill.draft.scenarios import ScenarioConfig, scenario_prompts
    from toolbench.foundation.io import iter_jsonl, write_json, write_jsonl

    scenario = ScenarioConfig(
        scenario="II",
        tools=config.tools,
        samples=config.samples,
        seed=config.seed,
        max_prompt_length=config.max_prompt_length,
    )
    identity = {"scenario": scenario.model_dump(mode="json")}
    meta_path, rows_path = folder / "prompts.json", folder / "prompts.jsonl"
    if meta_path.exists():
        if json.loads(meta_path.read_text())["identity"] != identity:
            raise UserError(f"{folder} holds prompts made for other settings; pass another --data-cache")
        rows = [row for _, row in iter_jsonl(rows_path)]
        return [row["tool"] for row in rows], [row["ids"] for row in rows]
    folder.mkdir(parents=True, exist_ok=True)
    prompts, ids, counts = scenario_prompts(scenario, target, tokenizer, folder)
    write_jsonl(
        rows_path, [{"id": p.id, "tool": p.tool, "ids": i} for p, i in zip(prompts, ids, strict=True)]
    )
    write_json(meta_path, {"identity": identity, "counts": counts})
    return [p.tool for p in prompts], ids


def split_sequences(count: int, share: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, validation) sequence indices: a seeded permutation, `share` of it held out."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    held = max(1, round(count * share)) if count > 1 else 0
    return sorted(order[held:]), sorted(order[:held])


def _progress(done: int, total: int) -> None:
    print(f"acceptance data: {done}/{total} answers", flush=True)


def train_acceptance_head(config: HeadTrainConfig, out: Path, progress: bool = True) -> dict[str, Any]:
    """Collect (or reuse) the data, train the head, select thresholds, write the head folder."""
    from transformers.utils import logging as hf_logging

    from toolbench.distill.speculative.spec_eval import load_pair
    from toolbench.foundation.devices import resolve_device
    from toolbench.foundation.io import write_json
    from toolbench.foundation.runinfo import finish_record, start_record

    hf_logging.disable_progress_bar()
    out = Path(out)
    record = start_record("train acceptance-head", config.model_dump(), seed=config.seed)
    device = resolve_device(config.device)
    target, draft, tokenizer = load_pair(config.target, config.draft, device, config.dtype)
    folder = Path(config.cache_dir) if config.cache_dir else out / "data"
    tools, prompt_ids = head_prompts(config, target, tokenizer, folder)
    fingerprints = {"target": weights_fingerprint(config.target), "draft": weights_fingerprint(config.draft)}
    report = build_head_data(
        target,
        draft,
        tokenizer,
        prompt_ids,
        tools,
        folder,
        config,
        fingerprints,
        _progress if progress else None,
    )
    data = load_head_data(folder, tools)
    train_rows, valid_rows = split_sequences(data.sequences, config.validation, config.seed)
    train, valid = data.rows(train_rows), data.rows(valid_rows)
    head, fit = train_head(
        train,
        valid,
        width=config.width,
        steps=config.steps,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        batch_size=config.train_batch,
        seed=config.seed,
    )
    metrics = {"train": head_metrics(head, train), "validation": head_metrics(head, valid), "fit": fit}
    chosen = sorted((prompt_ids[i] for i in valid_rows or train_rows), key=len)
    middle = len(chosen) // 2  # three prompts of about the median length time the rounds
    cost = measure_costs(target, draft, chosen[max(0, middle - 1) : middle + 2], config.max_budget, head)
    selection = select_policies(head, valid if valid.positions else train, cost, config.max_budget)
    best = selection["best"]
    info = HeadInfo(
        hidden_size=head.hidden_size,
        width=head.width,
        draft=config.draft,
        draft_fingerprint=fingerprints["draft"],
        target=config.target,
        target_fingerprint=fingerprints["target"],
        threshold=best["learned"]["threshold"],
        budget=best["learned"]["budget"],
        confidence_threshold=best["confidence"]["threshold"],
        confidence_budget=best["confidence"]["budget"],
        best_fixed_gamma=best["fixed"]["gamma"],
        metrics=metrics,
        selection=selection,
    )
    save_head(out, head, info)
    finish_record(
        record,
        sequences=data.sequences,
        positions=data.positions,
        train_positions=train.positions,
        validation_positions=valid.positions,
    )
    write_json(out / "train_record.json", {"run": record.model_dump(mode="json"), "data": report})
    return {"out": str(out), "data": report, "metrics": metrics, "best": best, "cost": cost.model_dump()}
