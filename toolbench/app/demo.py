"""`toolbench demo`: the whole product on the embedded default, from templates to a distilled draft.

Each step writes into the run folder and is skipped when its output is complete, so a killed demo
resumes where it stopped (the training steps also resume mid-run from their checkpoints) and a
second run only rebuilds the report. `demo.json` keeps every step's time; `report.html` shows it all.

Steps: generate + export training data; verify the frozen test tasks and score gold/corrupted
replays; train the tokenizer, a generic draft and the target; measure the target's tool success
(k = 0/3 demos x system prompt on/off) against an untrained model of the same size; distill the
generic draft against the target; time speculative decoding with the generic and the distilled
draft; put the eval runs side by side (OUT/leaderboard.*); write the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from rich.console import Console

from toolbench.app.report import format_seconds
from toolbench.core.backends.base import ANSWER_TOKENS
from toolbench.foundation.errors import UserError
from toolbench.foundation.run_folder import read_run_file, write_run_folder
from toolbench.foundation.runinfo import finish_record, start_record
from toolbench.foundation.summaries import DemoStep, DemoSummary


class DemoPreset(BaseModel):
    """How big each step is. `quick` fits `make demo` in 15 minutes on 2 cores; `full` is the
    [models] sizes and the whole test sets; `smoke` is for tests (tiny models, seconds)."""

    name: str
    data_samples: int = Field(10_000, description="Generated samples over every tool (the training-set job).")
    vocab_size: int = 4096
    tokenizer_samples_per_tool: int = 2000
    target_preset: str = "target"
    draft_preset: str = "draft"
    draft_steps: int = Field(description="Generic-draft pretraining steps.")
    target_samples: int = Field(description="Generated SFT samples for the target.")
    target_pretrain_steps: int = 40
    target_copy_head: bool = Field(
        True,
        description="The target (and its untrained floor) with a copy head (toolbench/core/pointer_llama.py).",
    )
    eval_limit: int | None = Field(description="Test tasks per tool in the success grid (None: all 120).")
    distill_samples: int = Field(description="Scenario II prompts the target answers for distillation.")
    distill_steps: int | None = Field(None, description="Distillation steps (None: one epoch).")
    alpha_per_tool: int = Field(description="Held-out prompts per tool for analytic α before/after.")
    spec_limit: int = Field(description="Test tasks per tool timed with speculative decoding.")
    max_new_tokens: int = Field(256, description="Longest answer in distillation and spec.")
    eval_max_new_tokens: int = Field(
        ANSWER_TOKENS,
        description="Longest answer in the success grid (eval's own default: no task cut short).",
    )


PRESETS: dict[str, DemoPreset] = {
    "quick": DemoPreset(
        name="quick",
        draft_steps=300,
        # 5,000 samples made the copy-head SFT 10 min and the demo 17.5 min on 2 idle cores (goal 15)
        target_samples=3000,
        target_pretrain_steps=0,
        eval_limit=10,
        distill_samples=400,
        distill_steps=150,
        alpha_per_tool=10,
        spec_limit=4,
    ),
    "full": DemoPreset(
        name="full",
        draft_steps=600,
        target_samples=20000,
        target_pretrain_steps=0,
        eval_limit=None,
        distill_samples=600,
        distill_steps=150,
        alpha_per_tool=20,
        spec_limit=20,
    ),
    "smoke": DemoPreset(
        name="smoke",
        data_samples=200,
        vocab_size=700,
        tokenizer_samples_per_tool=40,
        target_preset="tiny",
        draft_preset="tiny",
        draft_steps=3,
        target_samples=40,
        target_pretrain_steps=2,
        eval_limit=1,
        distill_samples=48,
        distill_steps=2,
        alpha_per_tool=1,
        spec_limit=1,
        max_new_tokens=12,
        eval_max_new_tokens=12,
    ),
}


@dataclass
class Step:
    name: str
    done: Callable[[], bool]
    run: Callable[[], Any]


def _exists(path: Path) -> Callable[[], bool]:
    return path.exists


def _trained(path: Path) -> Callable[[], bool]:
    from toolbench.distill.training.trainer import is_trained

    return lambda: is_trained(path)


class Demo:
    """The demo's steps over one run folder; `run()` executes the missing ones."""

    def __init__(self, out: Path, preset: DemoPreset, console: Console, cache_dir: Path | None = None):
        from toolbench.foundation.io import default_cache_dir

        self.out = Path(out)
        self.preset = preset
        self.console = console
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.models = self.out / "models"

    # ------------------------------------------------------------ steps

    def steps(self) -> list[Step]:
        m, out = self.models, self.out
        steps = [
            Step(
                f"generate {self.preset.data_samples:,} samples from templates + OpenAI export",
                _exists(out / "data.openai.jsonl"),
                self.generate,
            ),
            Step(
                "verify test tasks, score gold and corrupted replays",
                _exists(out / "replay" / "corrupted" / "summary.json"),
                self.replays,
            ),
            Step("train the tokenizer", _exists(m / "tokenizer" / "tokenizer.json"), self.tokenizer),
            Step(
                f"pretrain the generic draft ({self.preset.draft_steps} steps)",
                _trained(m / "draft-generic"),
                self.draft,
            ),
            Step(
                f"align the target (SFT on {self.preset.target_samples:,} samples)",
                _trained(m / "target"),
                self.target,
            ),
            Step(
                "save an untrained target (the floor)",
                _exists(m / "random" / "config.json"),
                self.random_model,
            ),
        ]
        for model in ("target", "random"):
            for k, system in self.eval_settings(model):
                name = f"success of the {model} model, k = {k}, system prompt {'on' if system else 'off'}"
                steps.append(
                    Step(
                        name,
                        self._eval_done(model, k, system),
                        lambda m=model, k=k, s=system: self.evaluate(m, k, s),
                    )
                )
        for k in (0, 3):  # the second column: can it copy values into calls it has seen the shape of?
            steps.append(
                Step(
                    f"success of the target model on in-distribution tasks, k = {k}, system prompt on",
                    self._eval_done("target", k, True, "indist"),
                    lambda k=k: self.evaluate("target", k, True, "indist"),
                )
            )
        steps += [
            Step("distill the generic draft against the target", _trained(m / "draft"), self.distill),
            Step(
                "speculative decoding with the generic draft",
                _exists(out / "spec" / "before" / "summary.json"),
                lambda: self.spec("before", m / "draft-generic"),
            ),
            Step(
                "speculative decoding with the distilled draft",
                _exists(out / "spec" / "after" / "summary.json"),
                lambda: self.spec("after", m / "draft"),
            ),
        ]
        return steps

    @staticmethod
    def eval_settings(model: str) -> list[tuple[int, bool]]:
        if model == "random":
            return [(0, True)]
        return [(0, True), (3, True), (0, False), (3, False)]

    def generate(self) -> None:
        from toolbench.core.registry import tool_names
        from toolbench.pipelines.export import export_file, export_path
        from toolbench.pipelines.generate import GenerateConfig, generate

        data = self.out / "data.jsonl"
        generate(
            GenerateConfig(
                tools=tool_names(), n=self.preset.data_samples, seed=0, distractors=1, relevance=0.05
            ),
            data,
        )
        export_file(data, export_path(data, "openai"), "openai", split="train", multi_turn=True)

    def replays(self) -> None:
        from toolbench.core.replay import corrupt_predictions, gold_predictions
        from toolbench.core.task_files import load_tasks, verify_tasks
        from toolbench.foundation.io import write_jsonl
        from toolbench.pipelines.results import score_files
        from toolbench.pipelines.tasks import builtin_task_files

        files = builtin_task_files()
        for path in files:
            _, _, problems = verify_tasks(path)
            if problems:
                raise UserError(f"{path}: {len(problems)} gold labels fail; run `toolbench tasks verify`")
        tasks = [numbered.task for path in files for numbered in load_tasks(path)]
        folder = self.out / "replay"
        tasks_path = folder / "tasks.jsonl"
        write_jsonl(tasks_path, tasks)
        for name, make in (("gold", gold_predictions), ("corrupted", corrupt_predictions)):
            predictions = folder / f"{name}.predictions.jsonl"
            write_jsonl(predictions, make(tasks))
            _, summary = score_files(tasks_path, predictions, "python", folder / name)
            self.console.print(
                f"  {name} replay of {len(tasks)} tasks in {len(files)} files: "
                f"macro success {100 * summary.macro.success:.1f}%",
                highlight=False,
            )

    def tokenizer(self) -> None:
        from toolbench.distill.training.tokenizer import TokenizerConfig, train_tokenizer

        train_tokenizer(
            TokenizerConfig(
                vocab_size=self.preset.vocab_size, samples_per_tool=self.preset.tokenizer_samples_per_tool
            ),
            self.models / "tokenizer",
            self.cache_dir,
        )

    def draft(self) -> None:
        from toolbench.distill.training.pretrain import PretrainConfig, pretrain
        from toolbench.distill.training.trainer import TrainConfig

        train = TrainConfig(max_steps=self.preset.draft_steps, learning_rate=2e-3, log_every=10)
        pretrain(
            PretrainConfig(preset=self.preset.draft_preset, train=train),
            self.models / "tokenizer",
            self.models / "draft-generic",
            self.cache_dir,
        )

    def target(self) -> None:
        from toolbench.distill.training.align import AlignConfig, align_target

        config = AlignConfig(
            preset=self.preset.target_preset,
            samples=self.preset.target_samples,
            copy_head=self.preset.target_copy_head,
        )
        if self.preset.target_pretrain_steps:
            config.pretrain.train.max_steps = self.preset.target_pretrain_steps
        else:
            config.pretrain = None
        align_target(config, self.models / "tokenizer", self.models / "target", self.cache_dir)

    def random_model(self) -> None:
        from toolbench.distill.training.models import load_tokenizer, new_model, save_tokenizer

        tokenizer = load_tokenizer(self.models / "tokenizer")
        folder = self.models / "random"
        model = new_model(
            self.preset.target_preset, tokenizer, seed=0, copy_head=self.preset.target_copy_head
        )
        save_tokenizer(tokenizer, folder)
        model.save_pretrained(str(folder))

    def _eval_config(self, model: str, k: int, system: bool, task_set: str = "test"):
        from toolbench.core.prompts import DEFAULT_SYSTEM_PROMPT
        from toolbench.distill.training.align import SFT_TOOLS
        from toolbench.pipelines.evaluate import EvalConfig

        return EvalConfig(
            model=f"hf:{self.models / model}",
            tools=list(SFT_TOOLS),
            mode="chat",
            k_demos=k,
            system_prompt=DEFAULT_SYSTEM_PROMPT if system else None,
            limit=self.preset.eval_limit,
            max_tokens=self.preset.eval_max_new_tokens,
            cache_dir=str(self.cache_dir),
            task_set=task_set,
        )

    def _eval_folder(self, model: str, k: int, system: bool, task_set: str = "test") -> Path:
        """OUT/eval/<model>/<setting> for the held-out tasks (the leaderboard's runs: one task set),
        OUT/eval-indist/<model>/<setting> for the in-distribution ones."""
        from toolbench.pipelines.evaluate import setting_name

        root = self.out / ("eval" if task_set == "test" else f"eval-{task_set}")
        return root / model / setting_name(self._eval_config(model, k, system, task_set))

    def _eval_done(self, model: str, k: int, system: bool, task_set: str = "test") -> Callable[[], bool]:
        return lambda: (self._eval_folder(model, k, system, task_set) / "summary.json").exists()

    def evaluate(self, model: str, k: int, system: bool, task_set: str = "test") -> None:
        from toolbench.pipelines.evaluate import run_eval, select_tasks

        config = self._eval_config(model, k, system, task_set)
        with self._bar(f"{model}, k = {k} ({task_set})", len(select_tasks(config))) as advance:
            summary = run_eval(config, self._eval_folder(model, k, system, task_set), advance).summary
        per_tool = ", ".join(f"{t} {100 * v.success:.0f}" for t, v in summary.per_tool.items())
        self.console.print(
            f"  macro success {100 * summary.macro.success:.1f}% ({per_tool})", highlight=False
        )

    def distill(self) -> None:
        from toolbench.distill.draft.distillation import DistillConfig, run_distill
        from toolbench.distill.draft.scenarios import ScenarioConfig

        config = DistillConfig(
            target=str(self.models / "target"),
            draft=str(self.models / "draft-generic"),
            scenario=ScenarioConfig(samples=self.preset.distill_samples),
            cache_dir=str(self.out / "distill-cache"),
            eval_per_tool=self.preset.alpha_per_tool,
        )
        config.cache.max_new_tokens = self.preset.max_new_tokens
        if self.preset.distill_steps:
            config.train.max_steps = self.preset.distill_steps
        summary = run_distill(config, self.models / "draft")
        drafts = summary.get("alpha", {}).get("drafts", {})
        if drafts:
            self.console.print(
                f"  analytic α on held-out prompts: generic {drafts['before']['alpha']:.3f} → "
                f"distilled {drafts['after']['alpha']:.3f}",
                highlight=False,
            )

    def spec(self, name: str, draft: Path) -> None:
        from toolbench.distill.speculative.spec_eval import SpecConfig, run_spec
        from toolbench.distill.training.align import SFT_TOOLS

        config = SpecConfig(
            target=str(self.models / "target"),
            draft=str(draft),
            tools=list(SFT_TOOLS),
            limit=self.preset.spec_limit,
            max_tokens=self.preset.max_new_tokens,
            assisted=False,
            cache_dir=str(self.cache_dir),
        )
        with self._bar(f"speculative decoding, {name}", self.preset.spec_limit * len(SFT_TOOLS)) as advance:
            overall = run_spec(config, self.out / "spec" / name, advance).overall
        self.console.print(
            f"  α {overall.alpha:.3f}, mean accepted length {overall.mean_accepted_length:.2f}, "
            f"{overall.spec_tokens_per_s:.0f} vs {overall.target_tokens_per_s:.0f} tokens/s "
            f"({overall.speedup:.2f}× target-only)",
            highlight=False,
        )

    @contextmanager
    def _bar(self, description: str, total: int) -> Iterator[Callable[..., None]]:
        """A transient rich bar for a step's inner loop (training steps draw their own)."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (
            TextColumn("  {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.console, transient=True) as progress:
            task = progress.add_task(description, total=total)
            yield lambda *_: progress.advance(task)

    # ------------------------------------------------------------ the run

    def run(self) -> DemoSummary:
        """Run the missing steps; demo.json (`DemoSummary`) is rewritten after each one, so a killed
        demo keeps the times of the steps it finished."""
        self.out.mkdir(parents=True, exist_ok=True)
        log_path = self.out / "demo.json"
        previous: dict[str, DemoStep] = {}
        if log_path.exists():
            before = read_run_file(log_path, DemoSummary)
            made_with = before.preset.get("name")
            if made_with and made_with != self.preset.name:
                raise UserError(
                    f"{self.out} holds a '{made_with}' demo; its steps would be skipped as done. "
                    f"Pass another --out for the '{self.preset.name}' preset"
                )
            previous = {step.name: step for step in before.steps}
        config = {"out": str(self.out), "preset": self.preset.name, "cache_dir": str(self.cache_dir)}
        record = start_record("demo", config, seed=0)  # every step that draws uses seed 0
        log = DemoSummary(preset=self.preset.model_dump(), run=record)
        started = time.perf_counter()
        steps = self.steps()
        for i, step in enumerate(steps, 1):
            label = f"[{i}/{len(steps)}] {step.name}"
            if step.done():
                self.console.print(f"[dim]· {label}: done, skipped[/]", highlight=False)
                done = previous.get(step.name)
                log.steps.append(
                    DemoStep(name=step.name, seconds=done.seconds if done else None, skipped=True)
                )
                continue
            self.console.print(f"[bold]▶ {label}[/]", highlight=False)
            began = time.perf_counter()
            step.run()
            seconds = time.perf_counter() - began
            self.console.print(f"[green]✓[/] {step.name} ({format_seconds(seconds)})", highlight=False)
            log.steps.append(DemoStep(name=step.name, seconds=round(seconds, 1), skipped=False))
            log.total_seconds = _total(log)
            write_run_folder(self.out, log, name="demo")
        log.total_seconds = _total(log)
        log.last_run_seconds = round(time.perf_counter() - started, 1)
        finish_record(record, steps=len(steps), ran=sum(not step.skipped for step in log.steps))
        write_run_folder(self.out, log, name="demo")
        return log


def _total(log: DemoSummary) -> float:
    """Every step's time, each from its first run (a skipped step keeps the time it took then)."""
    return round(sum(step.seconds or 0 for step in log.steps), 1)


def demo_leaderboard(out: Path, console: Console) -> None:
    """The demo's own eval runs side by side (the target in each setting, the untrained floor):
    OUT/leaderboard.{md,csv,html,png,json}, rebuilt on every run like the report. The settings
    differ by design, so the table is built with allow_mixed and marked as mixed."""
    from toolbench.app.leaderboard import make_leaderboard

    runs = sorted(path.parent for path in (Path(out) / "eval").glob("*/*/summary.json"))
    if len(runs) < 2:
        return
    board = make_leaderboard(runs, Path(out), allow_mixed=True)
    leader = board.rows[0]
    noise = [row.label for row in board.rows[1:] if row.vs_leader and row.vs_leader.within_noise]
    console.print(
        f"leaderboard: {Path(out) / 'leaderboard.md'}; leader {leader.label} "
        f"(overall {100 * leader.overall:.1f}%)"
        + (f", within noise of it: {', '.join(noise)}" if noise else ""),
        highlight=False,
    )


def run_demo(
    out: Path, console: Console, preset: str = "quick", report: bool = True, cache_dir: Path | None = None
) -> DemoSummary:
    if preset not in PRESETS:
        raise UserError(f"unknown demo preset {preset!r}; known: {', '.join(PRESETS)}")
    started = time.perf_counter()
    log = Demo(out, PRESETS[preset], console, cache_dir).run()
    demo_leaderboard(out, console)
    if report:
        from toolbench.app.report import build_report

        md, html = build_report(out)
        console.print(f"report: {html} (and {md})", highlight=False)
    console.print(
        f"demo finished in {format_seconds(time.perf_counter() - started)} → {out}", highlight=False
    )
    return log
