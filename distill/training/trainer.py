"""One training loop for every model this project trains (generic pretraining, target SFT and,
later, draft distillation), built on `accelerate` so `accelerate launch` runs it on many
processes, GPUs or nodes unchanged.

Choices that matter:
- **Deterministic global batches.** Step `s` of epoch `e` always trains on the same examples (a
  seeded permutation per epoch, grouped by length); each process takes its share of that global batch. Resuming is
  then just "start at step s", and 1 and N processes see the same data in the same order.
- **Loss normalised by the number of valid tokens in the global batch**, not per process or
  per micro-batch (the gradient-accumulation bug TRL and others shipped): each process returns a
  loss *sum* and a token count, the counts are summed across processes, and the gradient is the
  exact mean over every valid token of the step.
- **Checkpoints** (`accelerate` state: model, optimizer, scheduler, RNG) every N steps into
  `checkpoints/step-N`, written to a temp folder and renamed; `resume=True` continues from the
  newest one. `train_log.jsonl` has one line per logged step, `loss.png` plots it.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from toolbench.foundation.devices import training_precision
from toolbench.foundation.io import atomic_dir, atomic_open, write_json
from toolbench.foundation.runinfo import finish_record, start_record

IGNORE = -100
LossFn = Callable[[Any, dict[str, Any]], tuple[Any, Any]]  # (model, batch) -> (loss sum, valid tokens)
# (model) -> figures logged beside the loss, e.g. the copy probe's value accuracy (distill/training/copy_probe.py)
Probe = Callable[[Any], dict[str, float]]


class TrainConfig(BaseModel):
    learning_rate: float = Field(1e-3, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="Cosine decay ends at lr x this.")
    warmup_steps: int = Field(30, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(16, ge=1, description="Global batch (all processes together).")
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="Overrides epochs.")
    grad_clip: float = Field(1.0, gt=0)
    device: str = Field("auto", description="auto (an accelerator if there is one), cpu, cuda, mps.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Autocast precision of forward passes (weights stay float32). auto = bfloat16 "
        "where the hardware computes it (about 1.6x faster than float32 on a 2-core AVX-512 CPU), "
        "else float32 (an AVX2-only CPU emulates bf16, ~20x slower): "
        "toolbench.foundation.devices.training_precision.",
    )
    seed: int = 0
    checkpoint_every: int = Field(100, ge=1)
    log_every: int = Field(10, ge=1)
    probe_every: int = Field(50, ge=1, description="Steps between runs of the trainer's probe, if any.")
    hold: list[str] = Field(
        default_factory=list,
        description="Name prefixes of parameters held still at the start, e.g. the copy prior's circuit "
        "(copy_prior.CIRCUIT): weights written by hand that the first, noisy steps would wear away.",
    )
    hold_steps: int = Field(0, ge=0, description="Steps during which the held parameters do not move.")
    release_steps: int = Field(
        0, ge=0, description="Steps over which the held parameters' rate then ramps from 0 to the schedule's."
    )
    position_skip: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of rows whose positions skip ahead at a turn boundary (PoSE, "
        "distill/training/positions.py): distances up to the model's window trained on short rows.",
    )
    skip_before: list[str] = Field(
        default_factory=list,
        description="Tokens before which a position skip may go, e.g. the target's `<|user|>`.",
    )


def causal_lm_loss(model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
    """Summed next-token cross-entropy over positions whose label is not -100: the model's own
    loss (transformers' causal-LM convention, labels shifted inside, a sum with
    `num_items_in_batch=1`), so a model that computes it without full logits (the copy head's)
    can. `position_ids`, where the trainer skips positions (`TrainConfig.position_skip`), go with it."""
    labels = batch["labels"]
    outputs = model(
        input_ids=batch["input_ids"],
        attention_mask=needed_mask(batch["attention_mask"]),
        position_ids=batch.get("position_ids"),
        labels=labels,
        num_items_in_batch=1,
    )
    return outputs.loss, (labels[:, 1:] != IGNORE).sum()


def needed_mask(mask: Any) -> Any:
    """The attention mask, or None where the padding is all at the rows' ends (as `collate` pads).

    Causal attention never lets a position see the padding after it, so every real position's
    output is the same without the mask, and without it attention takes its causal kernel (the
    mask turns it into a masked one that computes the half the causal one skips)."""
    right_padded = mask.shape[1] < 2 or bool((mask[:, 1:] <= mask[:, :-1]).all())
    return None if right_padded else mask


PAD_TO_MULTIPLE = 64


def collate(
    examples: Sequence[dict[str, list[int]]], pad_id: int, multiple: int = PAD_TO_MULTIPLE
) -> dict[str, Any]:
    """Right-pad a list of {input_ids, labels} to the longest one, rounded up to `multiple`.

    Rounding matters on CPU: every new batch shape makes oneDNN build and cache new kernels, and
    with free lengths resident memory grew ~37 MB per step (7 GB after 120 SFT steps); with lengths
    in multiples of 64 it stays flat, for ~8% padding."""
    import torch

    width = -(-max(len(e["input_ids"]) for e in examples) // multiple) * multiple
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example["input_ids"])
        ids[row, :n] = torch.tensor(example["input_ids"])
        labels[row, :n] = torch.tensor(example["labels"])
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def global_batches(
    lengths: Sequence[int], batch_size: int, epoch: int, seed: int, group: int = 16
) -> list[list[int]]:
    """The global batches of one epoch: a seeded shuffle, then, within windows of `group` batches,
    examples sorted by length so a batch pads little (SFT conversations run from ~100 to ~750
    tokens: padding to the longest of 16 random ones wasted about half the compute), then the
    batches shuffled again. A pure function of (lengths, seed, epoch), so resuming and N processes
    see the same batches."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    order = order[: len(order) // batch_size * batch_size]
    batches = []
    window = batch_size * group
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def _lr_factor(step: int, total: int, config: TrainConfig) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, progress))
    )


def _held_factor(step: int, config: TrainConfig) -> float:
    """The held parameters' share of the rate: 0 while held, then a linear ramp to 1. A sudden
    release at the full rate breaks a hand-written circuit as surely as no hold at all (README
    "Train the embedded models"); so does freezing it with requires_grad, because Adam's moments then
    start from nothing at the release. Here the gradients flow all along (the moments are warm when
    the rate returns) and only the step size is zero."""
    if step < config.hold_steps:
        return 0.0
    if config.release_steps == 0:
        return 1.0
    return min(1.0, (step - config.hold_steps + 1) / config.release_steps)


def parameter_groups(model: Any, config: TrainConfig) -> list[dict[str, Any]]:
    """AdamW's groups: weight decay on matrices only, and the held parameters (`config.hold`)
    apart, so their rate can follow `_held_factor`. Each group says whether it is held."""
    named = list(model.named_parameters())
    held = {name for name, _ in named if any(name.startswith(prefix) for prefix in config.hold)}
    if config.hold and not held:
        raise ValueError(f"TrainConfig.hold {config.hold} names no parameter of the model")
    groups = []
    for is_held in (False, True):
        for decay in (True, False):
            params = [p for n, p in named if (n in held) == is_held and (p.ndim >= 2) == decay]
            if params:
                groups.append(
                    {"params": params, "weight_decay": config.weight_decay if decay else 0.0, "held": is_held}
                )
    return groups


def latest_checkpoint(out: Path) -> Path | None:
    folders = [p for p in (out / "checkpoints").glob("step-*") if (p / "trainer_state.json").exists()]
    return max(folders, key=lambda p: int(p.name.split("-")[1]), default=None)


class Trainer:
    """Train `model` on tokenised examples into the HF folder `out`.

    Examples are {input_ids, labels} by default; a distillation run passes its own `collate_fn`
    (e.g. adding cached teacher top-k logits to each batch) and `loss_fn` (returning a loss sum and
    the number of tokens it covers). Tensors in the batch dict are moved to the device."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        examples: Sequence[dict[str, list[int]]],
        config: TrainConfig,
        out: Path,
        loss_fn: LossFn = causal_lm_loss,
        collate_fn: Callable[[Sequence[Any], int], dict[str, Any]] | None = None,
        name: str = "train",
        record: dict[str, Any] | None = None,
        progress: bool = True,
        probe: Probe | None = None,
    ):
        """`probe(model)`, if given, runs every `config.probe_every` steps (and at the first and
        last step) on the main process, in eval mode without gradients; its figures join that step's
        line of train_log.jsonl, so a curve such as "when does the model start copying" is read
        off the log of the run itself."""
        import torch
        from accelerate import Accelerator

        # cpu=True where there is no GPU makes a multi-process launch a gloo (MULTI_CPU) run;
        # note `accelerate launch --cpu` starts one process, `--multi_gpu --num_processes N` starts N
        # (a process that already set accelerate up, e.g. a test session, keeps its state)
        from accelerate.state import AcceleratorState

        fresh = not AcceleratorState._shared_state
        cpu = config.device == "cpu" or not torch.cuda.is_available()
        options = {"mixed_precision": "no", "cpu": cpu} if fresh else {}
        self.accelerator = Accelerator(**options)
        self.model, self.tokenizer, self.examples = model, tokenizer, examples
        self.config, self.out, self.loss_fn, self.name = config, Path(out), loss_fn, name
        self.collate_fn = collate_fn or collate
        self.progress = progress
        self.probe = probe
        self.run = start_record(f"train {name}", record or {}, seed=config.seed)
        per_epoch = len(examples) // config.batch_size
        if per_epoch == 0:
            from toolbench.foundation.errors import UserError

            raise UserError(
                f"{name}: {len(examples)} examples are fewer than one batch of {config.batch_size}"
            )
        self.steps_per_epoch = per_epoch
        self.total_steps = config.max_steps or max(1, int(per_epoch * config.epochs))
        self.skip_ids = self._skip_ids() if config.position_skip else []

    def _skip_ids(self) -> list[int]:
        from toolbench.foundation.errors import UserError

        known = self.tokenizer.get_vocab()
        if not self.config.skip_before or any(token not in known for token in self.config.skip_before):
            raise UserError(
                f"{self.name}: position_skip needs skip_before tokens the tokenizer has; "
                f"got {self.config.skip_before}"
            )
        return [known[token] for token in self.config.skip_before]

    def _positions(self, batch: dict[str, Any], step: int, rows: Sequence[int]) -> Any:
        """Skipped position ids for the batch (`positions.skipped_positions`), each row seeded by
        (seed, step, example index) so resuming and N processes skip alike."""
        from toolbench.distill.training.positions import skipped_positions

        config = self.config
        return skipped_positions(
            batch["input_ids"],
            batch["attention_mask"],
            window=self.model.config.max_position_embeddings,
            share=config.position_skip,
            boundary_ids=self.skip_ids,
            seeds=[(config.seed * 1_000_003 + step) * 1_000_033 + row for row in rows],
        )

    def _probe_due(self, done: int) -> bool:
        every = self.config.probe_every
        return self.probe is not None and (done == 1 or done % every == 0 or done == self.total_steps)

    def _run_probe(self, model: Any, done: int) -> dict[str, float]:
        import torch

        figures: dict[str, float] = {}
        if self.accelerator.is_main_process:
            model.eval()
            started = time.perf_counter()
            with torch.no_grad():
                figures = self.probe(self.accelerator.unwrap_model(model))  # type: ignore[misc]
            self.probe_seconds += time.perf_counter() - started
            model.train()
        self.accelerator.wait_for_everyone()
        return figures

    def _log_path(self) -> Path:
        return self.out / "train_log.jsonl"

    def _save_checkpoint(self, step: int) -> None:
        acc = self.accelerator
        target = self.out / "checkpoints" / f"step-{step}"
        if acc.is_main_process:
            target.parent.mkdir(parents=True, exist_ok=True)
        acc.wait_for_everyone()
        tmp = target.with_name(f".{target.name}.tmp")
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        if acc.is_main_process:
            (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "name": self.name}))
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
            for old in (self.out / "checkpoints").glob("step-*"):
                if old != target:
                    shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()

    def train(self, resume: bool = False) -> dict[str, Any]:
        import torch

        acc, config = self.accelerator, self.config
        torch.manual_seed(config.seed)
        groups = parameter_groups(self.model, config)
        optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, betas=(0.9, 0.95))

        def factor(held: bool) -> Callable[[int], float]:
            if held:
                return lambda step: _lr_factor(step, self.total_steps, config) * _held_factor(step, config)
            return lambda step: _lr_factor(step, self.total_steps, config)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, [factor(group["held"]) for group in groups])
        held_group = next((i for i, group in enumerate(groups) if group["held"]), None)
        model, optimizer, scheduler = acc.prepare(self.model, optimizer, scheduler)
        start = 0
        checkpoint = latest_checkpoint(self.out) if resume else None
        if checkpoint is not None:
            acc.load_state(str(checkpoint))
            start = json.loads((checkpoint / "trainer_state.json").read_text())["step"]
        log_lines = self._read_log(start) if acc.is_main_process else []
        pad_id = self.tokenizer.pad_token_id
        precision = (
            training_precision(acc.device.type) if config.dtype == "auto" else getattr(torch, config.dtype)
        )
        rank, world = acc.process_index, acc.num_processes
        started = time.perf_counter()
        self.probe_seconds = 0.0
        tokens_seen = 0
        window: list[float] = []
        bar = self._progress_bar(start)
        lengths = [len(example["input_ids"]) for example in self.examples]
        batches: list[list[int]] = []
        batches_epoch = -1
        model.train()
        for step in range(start, self.total_steps):
            epoch, index = divmod(step, self.steps_per_epoch)
            if epoch != batches_epoch:
                batches, batches_epoch = global_batches(lengths, config.batch_size, epoch, config.seed), epoch
            batch_ids = batches[index]
            local = batch_ids[rank::world]
            batch = {
                k: v.to(acc.device) if hasattr(v, "to") else v
                for k, v in self.collate_fn([self.examples[i] for i in local], pad_id).items()
            }
            if self.skip_ids:
                batch["position_ids"] = self._positions(batch, step, local)
            batch["step"] = step  # for schedules inside a loss_fn (distillation's on-policy λ)
            with torch.autocast(acc.device.type, dtype=precision, enabled=precision != torch.float32):
                loss_sum, count = self.loss_fn(model, batch)
            total = acc.reduce(count.detach().float().reshape(1), reduction="sum").clamp(min=1)
            # DDP averages gradients over processes, so scale by world / global count for an exact mean
            acc.backward(loss_sum * world / total)
            acc.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step_loss = acc.reduce(loss_sum.detach().float().reshape(1), reduction="sum") / total
            window.append(float(step_loss))
            tokens_seen += int(batch["attention_mask"].sum()) * world
            done = step + 1
            probed = self._run_probe(model, done) if self._probe_due(done) else {}
            if probed or done % config.log_every == 0 or done == self.total_steps:
                line = {
                    "step": done,
                    "epoch": round(done / self.steps_per_epoch, 4),
                    "loss": round(sum(window) / len(window), 5),
                    "lr": scheduler.get_last_lr()[0],
                    **({"held_lr": scheduler.get_last_lr()[held_group]} if held_group is not None else {}),
                    # training throughput: the probe's own time is not training
                    "tokens_per_second": round(
                        tokens_seen / max(1e-9, time.perf_counter() - started - self.probe_seconds), 1
                    ),
                    "seconds": round(time.perf_counter() - started, 2),
                    **probed,
                }
                window = []
                if acc.is_main_process:
                    log_lines.append(line)
                    with self._log_path().open("a") as handle:
                        handle.write(json.dumps(line) + "\n")
            if bar is not None:
                bar[0].update(bar[1], completed=done, description=f"{self.name} loss {float(step_loss):.3f}")
            if done % config.checkpoint_every == 0 and done < self.total_steps:
                self._save_checkpoint(done)
        if bar is not None:
            bar[0].stop()
        seconds = time.perf_counter() - started
        summary = {
            "steps": self.total_steps,
            "resumed_from_step": start,
            "seconds": round(seconds, 2),
            "tokens_per_second": round(tokens_seen / seconds, 1) if seconds else None,
            "final_loss": log_lines[-1]["loss"] if log_lines else None,
            "processes": world,
        }
        finish_record(self.run, **summary)
        self._save_final(model)
        if acc.is_main_process and log_lines:
            plot_losses(log_lines, self.out / "loss.png", self.name)
        return summary

    def _read_log(self, start: int) -> list[dict[str, Any]]:
        """The log up to the resumed step (lines written after the checkpoint are dropped)."""
        path = self._log_path()
        self.out.mkdir(parents=True, exist_ok=True)
        if not path.exists() or start == 0:
            path.write_text("")
            return []
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        kept = [line for line in lines if line["step"] <= start]
        with atomic_open(path, "w") as handle:
            handle.writelines(json.dumps(line) + "\n" for line in kept)
        return kept

    def _progress_bar(self, start: int):
        if not (self.progress and self.accelerator.is_main_process):
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        task = progress.add_task(self.name, total=self.total_steps, completed=start)
        progress.start()
        return progress, task

    def _save_final(self, model: Any) -> None:
        """The HF folder is `out` itself (config, weights, tokenizer beside the log and plot), so
        `hf:OUT` and `from_pretrained(OUT)` work; `train_record.json`, written last, marks it done."""
        from toolbench.distill.training.models import save_tokenizer

        acc = self.accelerator
        acc.wait_for_everyone()
        if acc.is_main_process:
            unwrapped = acc.unwrap_model(model)
            with atomic_dir(self.out / ".final") as tmp:
                unwrapped.save_pretrained(tmp)
                save_tokenizer(self.tokenizer, tmp)
            for file in (self.out / ".final").iterdir():
                os.replace(file, self.out / file.name)
            shutil.rmtree(self.out / ".final", ignore_errors=True)
            shutil.rmtree(self.out / "checkpoints", ignore_errors=True)
            write_json(self.out / "train_record.json", self.run)
        acc.wait_for_everyone()


def is_trained(out: Path) -> bool:
    return (Path(out) / "train_record.json").exists()


def plot_losses(lines: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5), dpi=110)
    axis.plot([line["step"] for line in lines], [line["loss"] for line in lines], lw=1.5, label="loss")
    axis.set_xlabel("step")
    axis.set_ylabel("loss (mean per valid token)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    probed = [line for line in lines if "copy_value_acc" in line]
    if probed:  # the copy probe (distill/training/copy_probe.py): when the model starts copying values
        copy_axis = axis.twinx()
        steps = [line["step"] for line in probed]
        copy_axis.plot(steps, [line["copy_value_acc"] for line in probed], color="tab:green", lw=1.5)
        tokens = [line.get("copy_token_acc") for line in probed]
        if None not in tokens:
            copy_axis.plot(steps, tokens, color="tab:green", lw=1, ls="--")
        closed = [line.get("copy_span_acc") for line in probed]
        if None not in closed:
            copy_axis.plot(steps, closed, color="tab:olive", lw=1, ls=":")
        copy_axis.set_ylim(0, 1)
        copy_axis.set_ylabel("copied values (solid) / tokens (dashed) / closed (dotted)", color="tab:green")
    figure.tight_layout()
    with atomic_open(path) as handle:
        figure.savefig(handle, format="png")
    plt.close(figure)
