"""Draft distillation: turn a generic draft into one its target accepts, in every setting that Hong
et al. (domain drafts), DistillSpec and AdaSPEC compare, on the one Trainer.

Settings (paper names = config fields):
- `mode`: **offline** (the target answers every prompt once; answers + top-k log-probs cached on
  disk, see teacher_cache) or **online** (the target runs during training, every step).
- `signal`: **white**-box (a divergence between the target's and the draft's next-token
  distributions: `loss` = fkl | rkl | jsd (with `beta`) | tvd, see losses) or **black**-box
  (cross-entropy on the target's text only).
- `lmbda` (online only): the on-policy fraction of GKD/DistillSpec: that share of steps trains on
  sequences the *draft* samples (at `student_temperature`), scored by the target; the rest on the
  target's own answers. The schedule is deterministic (step s is on-policy iff ⌊(s+1)λ⌋ > ⌊sλ⌋),
  identical on every process and after a resume, never a per-step coin flip.
- `select = adaspec`: a reference draft (a copy of the generic draft) is first distilled with FKL
  (black-box: cross-entropy) for `reference_share` of the step budget; the real draft then trains,
  for the remaining steps, only on the `adaspec_fraction` (default 0.4) of valid tokens of each
  batch with the largest gap (draft loss − reference loss). The token budget is kept by splitting
  the same total number of steps between the two stages (reference + draft = a plain run's steps),
  so AdaSPEC is compared at equal compute, not given extra epochs.
- `scenario`: where prompts come from (scenarios: I real, II template, III target-written).

Prompt tokens are never trained on (labels -100; the losses mask them), on-policy sequences
included. Responses end with the target's end token, which is trained on.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from toolbench.distill.draft.scenarios import Prompt, ScenarioConfig
from toolbench.distill.draft.teacher_cache import CacheConfig
from toolbench.distill.training.losses import (
    LossName,
    TopK,
    adaspec_select,
    masked_sum,
    per_token_loss,
    shifted,
    token_cross_entropy,
)
from toolbench.distill.training.trainer import IGNORE, TrainConfig
from toolbench.foundation.errors import UserError


def _default_train() -> TrainConfig:
    return TrainConfig(
        learning_rate=2e-3, batch_size=16, epochs=1.0, warmup_steps=10, log_every=5, checkpoint_every=50
    )


class DistillConfig(BaseModel):
    target: str
    draft: str
    scenario: ScenarioConfig = Field(default_factory=ScenarioConfig)
    mode: Literal["offline", "online"] = "offline"
    signal: Literal["white", "black"] = "white"
    loss: LossName = "fkl"
    beta: float = Field(0.5, ge=0, le=1, description="JSD(β): 0 → FKL, 1 → RKL (TRL's convention).")
    select: Literal["none", "adaspec"] = "none"
    adaspec_fraction: float = Field(0.4, gt=0, le=1, description="AdaSPEC: share of tokens trained on.")
    reference_share: float = Field(0.25, gt=0, lt=1, description="AdaSPEC: share of steps for the reference.")
    lmbda: float = Field(0.0, ge=0, le=1, description="On-policy fraction λ (online only).")
    student_temperature: float = Field(1.0, gt=0, description="Sampling temperature of on-policy sequences.")
    cache: CacheConfig = Field(default_factory=CacheConfig)
    cache_dir: str | None = Field(None, description="Teacher cache and prompts (default OUT/teacher-cache).")
    train: TrainConfig = Field(default_factory=_default_train)
    eval_per_tool: int = Field(10, ge=0, description="Held-out prompts per tool for α before/after; 0 skips.")

    @model_validator(mode="after")
    def _consistent(self) -> DistillConfig:
        if self.lmbda > 0 and self.mode != "online":
            raise UserError(
                "--on-policy λ > 0 needs --mode online (draft samples are scored during training)"
            )
        if self.lmbda > 0 and self.signal == "black":
            raise UserError(
                "--on-policy needs --signal white: black-box has no target text for draft samples"
            )
        if self.signal == "black" and self.loss != "fkl":
            raise UserError(
                f"--loss {self.loss} needs --signal white; black-box trains on cross-entropy only"
            )
        return self

    def label(self) -> str:
        """A short name of the setting, e.g. `offline-white-fkl-II`."""
        parts = [self.mode, self.signal, "ce" if self.signal == "black" else self.loss]
        if self.loss == "jsd" and self.signal == "white":
            parts[-1] += f"{self.beta:g}"
        if self.lmbda:
            parts.append(f"lambda{self.lmbda:g}")
        if self.select == "adaspec":
            parts.append(f"adaspec{self.adaspec_fraction:g}")
        return "-".join(parts + [self.scenario.scenario])


def on_policy_step(step: int, lmbda: float) -> bool:
    """Deterministic schedule: exactly ⌊nλ⌋ of the first n steps are on-policy, evenly spread."""
    return math.floor((step + 1) * lmbda) > math.floor(step * lmbda)


def _process_index() -> int:
    from accelerate import PartialState

    return PartialState().process_index


def _unwrap(model: Any) -> Any:
    return getattr(model, "module", model)


# ------------------------------------------------------------------- examples and batches


def offline_examples(sequences: list[Any], white: bool) -> list[dict[str, Any]]:
    examples = []
    for s in sequences:
        example: dict[str, Any] = {
            "input_ids": s.prompt + s.response,
            "labels": [IGNORE] * len(s.prompt) + s.response,
        }
        if white:
            example["teacher_ids"], example["teacher_logprobs"] = s.topk_ids, s.topk_logprobs
        examples.append(example)
    return examples


def collate_offline(examples: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Right-padded ids/labels plus, for white-box, the teacher's top-k at the logits positions:
    `teacher_*[b, t]` describes the token at t + 1 (the first answer token is predicted at P − 1)."""
    import torch

    from toolbench.distill.training.trainer import collate

    batch = collate(examples, pad_id)
    if "teacher_ids" not in examples[0]:
        return batch
    rows, width = batch["input_ids"].shape
    k = examples[0]["teacher_ids"].shape[-1]
    ids = torch.zeros((rows, width, k), dtype=torch.long)
    logprobs = torch.full((rows, width, k), -30.0)  # padding: finite, and masked out anyway
    for row, example in enumerate(examples):
        answer = example["teacher_ids"].shape[0]
        first = len(example["input_ids"]) - answer - 1
        ids[row, first : first + answer] = example["teacher_ids"].long()
        logprobs[row, first : first + answer] = example["teacher_logprobs"].float()
    batch["teacher_ids"], batch["teacher_logprobs"] = ids, logprobs
    return batch


def collate_prompts(examples: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Online mode: the prompts only; the loss function generates the answers."""
    import torch

    return {
        "prompts": [e["input_ids"] for e in examples],
        "attention_mask": torch.ones(sum(len(e["input_ids"]) for e in examples)),
    }


def sequence_batch(prompts: list[list[int]], answers: list[list[int]], pad_id: int) -> dict[str, Any]:
    """Right-padded prompt + answer rows with labels on the answer only."""
    from toolbench.distill.training.trainer import collate

    return collate(
        [
            {"input_ids": p + a, "labels": [IGNORE] * len(p) + a}
            for p, a in zip(prompts, answers, strict=True)
        ],
        pad_id,
    )


# ------------------------------------------------------------------- the loss


class DistillLoss:
    """`loss_fn(model, batch) -> (loss sum, valid tokens)` for the Trainer, in every setting.

    Offline batches carry the cached answers (and top-k); online batches carry prompts, and the
    answers are generated here by the target or, on on-policy steps, by the draft itself."""

    def __init__(self, config: DistillConfig, tokenizer: Any, target: Any | None, reference: Any | None):
        from toolbench.core.generation import stop_ids

        self.config, self.target, self.reference = config, target, reference
        self.pad_id = tokenizer.pad_token_id or 0
        self.stop = stop_ids(target, tokenizer) if target is not None else set()
        self.on_policy_steps = 0
        self.rank = _process_index()

    def answers(self, model: Any, batch: dict[str, Any]) -> dict[str, Any]:
        """Online: generate this step's answers and return a full training batch."""
        from toolbench.distill.draft.teacher_cache import generate_batch

        config, step = self.config, int(batch["step"])
        on_policy = on_policy_step(step, config.lmbda)
        self.on_policy_steps += on_policy
        generator = _unwrap(model) if on_policy else self.target
        rollouts = generate_batch(
            generator,
            batch["prompts"],
            max_new_tokens=config.cache.max_new_tokens,
            stop=self.stop,
            pad_id=self.pad_id,
            temperature=config.student_temperature if on_policy else config.cache.temperature,
            seed=config.train.seed * 1_000_003 + step * 1_009 + self.rank,
            batch_size=len(batch["prompts"]),
        )
        device = batch["attention_mask"].device
        full = sequence_batch(batch["prompts"], [r.response for r in rollouts], self.pad_id)
        # the Trainer counts batch["attention_mask"] as the step's tokens: make that the real sequences
        batch["attention_mask"] = full["attention_mask"]
        return {k: v.to(device) for k, v in full.items()}

    def __call__(self, model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
        import torch

        config = self.config
        if "prompts" in batch:
            batch = self.answers(model, batch)
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        logits, labels, mask = shifted(batch, model(**inputs).logits)
        teacher = None
        if config.signal == "white":
            if "teacher_ids" in batch:
                teacher = TopK(batch["teacher_ids"][:, :-1], batch["teacher_logprobs"][:, :-1])
            else:
                with torch.no_grad():
                    teacher = self.target(**inputs).logits[:, :-1]
        per_token = self.per_token(logits, labels, teacher, config.loss)
        if self.reference is not None:
            with torch.no_grad():
                reference_logits = self.reference(**inputs).logits[:, :-1]
                reference = self.per_token(reference_logits, labels, teacher, config.loss)
            mask = adaspec_select(per_token, reference, mask, config.adaspec_fraction)
        return masked_sum(per_token, mask)

    def per_token(self, logits: Any, labels: Any, teacher: Any, loss: str) -> Any:
        if teacher is None:
            return token_cross_entropy(logits, labels)
        return per_token_loss(loss, logits, teacher, self.config.beta)


# ------------------------------------------------------------------- prompts and cache on disk


def _identity(config: DistillConfig) -> dict[str, Any]:
    return {"target": str(Path(config.target).resolve()), "scenario": config.scenario.model_dump()}


def prepared_prompts(
    config: DistillConfig, target: Any, tokenizer: Any, folder: Path
) -> tuple[list[list[int]], dict]:
    """The scenario's prompt ids, made once into `folder/prompts.jsonl` (+ prompts.json: identity
    and counts) and read back by every later run and every other process."""
    from toolbench.distill.draft.scenarios import scenario_prompts
    from toolbench.foundation.io import iter_jsonl, write_json, write_jsonl

    meta_path, rows_path = folder / "prompts.json", folder / "prompts.jsonl"
    identity = _identity(config)
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta["identity"] != identity:
            raise UserError(
                f"{folder} holds prompts made for another target or scenario; pass another --teacher-cache"
            )
        return [row["ids"] for _, row in iter_jsonl(rows_path)], meta["counts"]
    folder.mkdir(parents=True, exist_ok=True)
    prompts, ids, counts = scenario_prompts(config.scenario, target, tokenizer, folder)
    write_jsonl(rows_path, [{**p.model_dump(), "ids": i} for p, i in zip(prompts, ids, strict=True)])
    write_json(meta_path, {"identity": identity, "counts": counts})
    return ids, counts


def total_steps(examples: int, train: TrainConfig) -> int:
    per_epoch = examples // train.batch_size
    if per_epoch == 0:
        raise UserError(f"{examples} distillation prompts are fewer than one batch of {train.batch_size}")
    return train.max_steps or max(1, int(per_epoch * train.epochs))


def plan(config: DistillConfig, out: Path) -> dict[str, Any]:
    """The resolved run, printed by `--plan` before anything heavy is loaded."""
    cache = Path(config.cache_dir) if config.cache_dir else out / "teacher-cache"
    stages = [f"prompts (scenario {config.scenario.scenario})"]
    if config.mode == "offline":
        stages.append(f"teacher cache: target answers + top-{config.cache.top_k} log-probs → {cache}")
    if config.select == "adaspec":
        stages.append(
            f"reference draft (FKL, {config.reference_share:.0%} of the steps) → {out / 'reference'}"
        )
    stages.append(f"draft: {config.label()} → {out}")
    if config.eval_per_tool:
        stages.append(f"analytic α before/after on {config.eval_per_tool} held-out prompts per tool")
    return {"setting": config.label(), "stages": stages, "config": config.model_dump(mode="json")}


# ------------------------------------------------------------------- the run


def _cache_progress(done: int, total: int) -> None:
    print(f"teacher cache: {done}/{total} answers", flush=True)


def run_distill(
    config: DistillConfig, out: Path, resume: bool = True, progress: bool = True
) -> dict[str, Any]:
    """Distill `config.draft` against `config.target` into the HF folder `out`; returns a summary
    (training figures, cache cost, α before/after when `eval_per_tool` > 0)."""
    import torch
    from accelerate import PartialState

    from toolbench.distill.draft.teacher_cache import build_cache, load_cache
    from toolbench.distill.training.models import (
        check_same_vocabulary,
        load_causal_lm,
        load_tokenizer,
        parameter_count,
    )
    from toolbench.distill.training.trainer import Trainer, is_trained

    out = Path(out)
    state = PartialState(cpu=config.train.device == "cpu" or not torch.cuda.is_available())
    tokenizer = load_tokenizer(config.target)
    check_same_vocabulary(tokenizer, load_tokenizer(config.draft), config.target, config.draft)
    target = load_causal_lm(config.target, "target").to(state.device).eval()
    for parameter in target.parameters():
        parameter.requires_grad_(False)
    folder = Path(config.cache_dir) if config.cache_dir else out / "teacher-cache"
    summary: dict[str, Any] = {"setting": config.label(), "out": str(out)}
    with state.main_process_first():
        prompt_ids, counts = prepared_prompts(config, target, tokenizer, folder)
        summary["prompts"] = counts
        if config.mode == "offline":
            identity = {**_identity(config), "kind": "offline"}
            summary["cache"] = build_cache(
                target,
                tokenizer,
                prompt_ids,
                folder,
                config.cache,
                identity,
                _cache_progress if progress else None,
            )
    if config.mode == "offline":
        examples = offline_examples(load_cache(folder), white=config.signal == "white")
        collate_fn = collate_offline
    else:
        examples = [{"input_ids": ids, "labels": [IGNORE] * len(ids)} for ids in prompt_ids]
        collate_fn = collate_prompts
    steps = total_steps(len(examples), config.train)
    info = {"config": config.model_dump(mode="json"), "prompts": counts, "cache": summary.get("cache")}
    reference = None
    if config.select == "adaspec":
        reference_steps = max(1, round(steps * config.reference_share))
        steps = max(1, steps - reference_steps)
        reference_out = out / "reference"
        if not is_trained(reference_out):
            ref_config = config.model_copy(update={"loss": "fkl", "select": "none"})
            Trainer(
                load_causal_lm(config.draft, "draft"),
                tokenizer,
                examples,
                config.train.model_copy(update={"max_steps": reference_steps}),
                reference_out,
                loss_fn=DistillLoss(ref_config, tokenizer, target, None),
                collate_fn=collate_fn,
                name="adaspec reference",
                record={**info, "stage": "adaspec reference"},
                progress=progress,
            ).train(resume)
        reference = load_causal_lm(reference_out, "reference draft").to(state.device).eval()
        for parameter in reference.parameters():
            parameter.requires_grad_(False)
        summary["reference_steps"] = reference_steps
    loss = DistillLoss(config, tokenizer, target, reference)
    if is_trained(out):
        summary["train"] = json.loads((out / "train_record.json").read_text())["counts"]
    else:
        draft = load_causal_lm(config.draft, "draft")
        info["parameters"] = parameter_count(draft)
        summary["train"] = Trainer(
            draft,
            tokenizer,
            examples,
            config.train.model_copy(update={"max_steps": steps}),
            out,
            loss_fn=loss,
            collate_fn=collate_fn,
            name=f"distill {config.label()}",
            record=info,
            progress=progress,
        ).train(resume)
    if config.eval_per_tool and state.is_main_process:
        summary["alpha"] = evaluate_alpha(
            config.target,
            {"before": config.draft, "after": str(out)},
            config.scenario.tools,
            config.eval_per_tool,
            config.cache.max_new_tokens,
        )
        from toolbench.foundation.io import write_json

        write_json(out / "alpha.json", summary["alpha"])
    return summary


# ------------------------------------------------------------------- analytic α on held-out prompts


def heldout_sequences(
    target: Any, tokenizer: Any, target_path: str, tools: list[str], per_tool: int, max_new_tokens: int
) -> tuple[list[Prompt], list[list[int]], list[int]]:
    """(prompts, prompt + target greedy answer ids, prompt lengths) on the held-out test half; the
    target's answers are cached under the toolbench cache dir, keyed by the target's weights."""
    from toolbench.core.generation import stop_ids
    from toolbench.distill.draft.scenarios import heldout_tasks, render, task_prompts
    from toolbench.distill.draft.teacher_cache import generate_batch
    from toolbench.distill.training.models import weights_fingerprint
    from toolbench.foundation.io import default_cache_dir, write_json

    prompts, ids = render(task_prompts(heldout_tasks(tools, per_tool)), tokenizer, 10_000)
    key = json.dumps([weights_fingerprint(target_path), tools, per_tool, max_new_tokens, ids])
    path = default_cache_dir() / "distill-heldout" / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"
    if path.exists():
        answers = json.loads(path.read_text())
    else:
        rollouts = generate_batch(
            target,
            ids,
            max_new_tokens=max_new_tokens,
            stop=stop_ids(target, tokenizer),
            pad_id=tokenizer.pad_token_id or 0,
        )
        answers = [r.response for r in rollouts]
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, answers)
    return prompts, [p + a for p, a in zip(ids, answers, strict=True)], [len(p) for p in ids]


def evaluate_alpha(
    target_path: str,
    drafts: dict[str, str],
    tools: list[str],
    per_tool: int,
    max_new_tokens: int = 320,
    device: str = "cpu",
    dtype: str = "float32",
) -> dict[str, Any]:
    """Analytic α (mean over answer positions of Σ_v min(p, q), `draft.alpha.analytic_alpha`) of
    each named draft against the target, on the target's greedy answers to held-out prompts
    (models on `device` in `dtype`, `toolbench.foundation.devices` names)."""
    from collections import defaultdict

    import torch

    from toolbench.distill.draft.alpha import analytic_alpha
    from toolbench.distill.training.models import check_same_vocabulary, load_causal_lm, load_tokenizer
    from toolbench.foundation.devices import placement

    device, torch_dtype = placement(device, dtype)
    tokenizer = load_tokenizer(target_path)
    target = load_causal_lm(target_path, "target", torch_dtype).to(device).eval()
    prompts, sequences, lengths = heldout_sequences(
        target, tokenizer, target_path, tools, per_tool, max_new_tokens
    )
    results: dict[str, Any] = {
        "definition": "analytic α = mean over target-answer positions of Σ_v min(p_target, p_draft)",
        "prompts": len(prompts),
        "answer_tokens": sum(n - p for n, p in zip(map(len, sequences), lengths, strict=True)),
        "drafts": {},
    }
    for name, path in drafts.items():
        check_same_vocabulary(tokenizer, load_tokenizer(path), target_path, path)
        draft = load_causal_lm(path, "draft", torch_dtype).to(device).eval()
        overlap = analytic_alpha(target, draft, sequences, lengths, pad_id=tokenizer.pad_token_id or 0)
        per_tool_values: dict[str, list[torch.Tensor]] = defaultdict(list)
        for prompt, values in zip(prompts, overlap.per_sequence, strict=True):
            per_tool_values[prompt.tool].append(values)
        results["drafts"][name] = {
            "path": path,
            "alpha": round(overlap.mean, 4),
            "per_tool": {
                t: round(float(torch.cat(v).double().mean()), 4) for t, v in sorted(per_tool_values.items())
            },
        }
    return results
