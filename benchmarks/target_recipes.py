"""Target SFT recipes side by side: which option moves the embedded target's tool success.

Trains the target once per recipe with `toolbench train target` (the same data, seed and steps;
each recipe adds options to the base command) and scores each on the frozen tasks of its five
tools, in distribution and held out, at k = 0 and 3 retrieved demos, system prompt on. Prints per
recipe the training time, the copy probe at the end, success / state F1 / unparsed answers per
cell, each recipe's success minus the first recipe's (measured in the same run), why the failed
answers failed, and each k = 3 cell split at the recipe's training length. Everything
goes under --out and resumes: a trained model is not trained again, a scored cell not scored again
(`results.json` there holds every figure, the settings, package versions and git revision).

This is the experiment [target]'s goals wait on (README "Train the embedded models"). Measured
2026-12-08 (2 AVX-512 cores): in distribution at k = 3 the default 16.7%, own-template demos
25.8%, position skipping (PoSE) 19.2%, both 27.5% (45.2% on the prompts within 1,024 tokens);
position skipping turns most past-1,024 answers from unparsable into near-k=0 ones (state F1 2 ->
30) though none of those long tasks succeeds; held out 0-2.5% everywhere.
On a GPU each recipe takes minutes; on 2 AVX-512 cores with bf16 about an hour (51 min of
training, 5 min of answers), on 2 AVX2 cores 1.5-2 hours.

    python benchmarks/target_recipes.py [--recipes default,own-template,long,no-gate-view,...]
        [--sft-steps 1200] [--samples 20000] [--limit 24] [--device cuda] [--out runs/recipes]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _eval_args import TOOLS  # noqa: E402
from _machine import describe_machine  # noqa: E402

from toolbench.foundation.runinfo import start_record  # noqa: E402

RECIPES = {  # name: options added to `toolbench train target`
    "default": [],
    "own-template": ["--own-template-demos", "0.5"],
    "long": ["--max-length", "2048"],
    "no-gate-view": ["--no-gate-view"],
    "own-template+long": ["--own-template-demos", "0.5", "--max-length", "2048"],
    "position-skip": ["--position-skip", "0.5"],
    "own-template+position-skip": ["--own-template-demos", "0.5", "--position-skip", "0.5"],
}
CELLS = [(task_set, k) for task_set in ("indist", "test") for k in (0, 3)]


def toolbench(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "toolbench", *args], check=True, cwd=ROOT)


def train(recipe: str, args: argparse.Namespace, tokenizer: Path) -> dict:
    """The recipe's model (trained unless its record exists), its SFT time and final copy probe."""
    folder = args.out / recipe / "model"
    if not (folder / "train_record.json").exists():
        toolbench(
            "train", "target", "--tokenizer", str(tokenizer), "--out", str(folder),
            "--samples", str(args.samples), "--sft-steps", str(args.sft_steps), "--echo", "0",
            "--device", args.device, "--seed", str(args.seed), *RECIPES[recipe],
        )  # fmt: skip
    log = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines() if line]
    probe = next((row for row in reversed(log) if "copy_span_acc" in row), {})
    return {
        "steps": log[-1]["step"] if log else 0,
        "train_seconds": log[-1].get("seconds") if log else None,
        "copy_value_acc": probe.get("copy_value_acc"),
        "copy_span_acc": probe.get("copy_span_acc"),
    }


def eval_config(recipe: str, task_set: str, k: int, args: argparse.Namespace):
    from toolbench.core.prompts import DEFAULT_SYSTEM_PROMPT
    from toolbench.pipelines.evaluate import EvalConfig

    return EvalConfig(
        model=f"hf:{args.out / recipe / 'model'}",
        tools=TOOLS.split(","),
        task_set=task_set,
        mode="chat",
        k_demos=k,
        retriever="bm25",
        system_prompt=DEFAULT_SYSTEM_PROMPT,
        limit=args.limit,
        batch_size=args.batch_size,
        cache_dir=str(args.out / "cache"),
        device=args.device,
    )


def score(recipe: str, args: argparse.Namespace) -> dict:
    """Success, state F1 and unparsed share of every cell, scored once (the eval folders resume)."""
    from toolbench.pipelines.evaluate import run_eval

    cells = {}
    for task_set, k in CELLS:
        config = eval_config(recipe, task_set, k, args)
        summary = run_eval(config, args.out / recipe / f"eval-{task_set}-k{k}").summary
        failures: Counter[str] = Counter()
        for group in summary.per_category.values():
            failures.update(group.diagnoses)
        cells[f"{task_set} k={k}"] = {
            "success": summary.macro.success,
            "state_f1": summary.macro.state_f1,
            "unparsed": summary.macro.parse_error_rate,
            "failures": dict(failures.most_common()),
        }
    return cells


def prompt_lengths(recipe: str, task_set: str, k: int, args: argparse.Namespace) -> dict[str, int]:
    """Tokens of each task's prompt as the recipe's model reads it (its chat template, the demos
    the eval retrieved), to split a cell at the longest conversation the model trained on."""
    from toolbench.core.generation import load_local_model
    from toolbench.pipelines.evaluate import build_requests, demo_index, select_tasks
    from toolbench.retriever.prompt import PromptBuilder

    config = eval_config(recipe, task_set, k, args)
    tasks = select_tasks(config)
    demos = demo_index(config, args.out / "cache") if k else None
    requests = build_requests(config, tasks, PromptBuilder(demos, k, config.system_prompt))
    model = load_local_model(str(args.out / recipe / "model"), "cpu")
    return {
        task.id: model.count_tokens(model.render_chat(request.messages or [], request.tools))
        for task, request in zip(tasks, requests, strict=True)
    }


def length_split(
    recipe: str, args: argparse.Namespace, lengths: dict[tuple[str, int], dict[str, int]]
) -> dict:
    """Each k > 0 cell split into the prompts within the recipe's training length and those past
    it: demos lengthen a prompt past what the model trained on, and there it fails differently."""
    from toolbench.foundation.io import read_records
    from toolbench.foundation.records import Score

    record = json.loads((args.out / recipe / "model" / "train_record.json").read_text())
    limit = record["config"]["config"]["conversations"]["max_length"]
    split = {}
    for (task_set, k), length in lengths.items():
        scores = read_records(args.out / recipe / f"eval-{task_set}-k{k}" / "scores.jsonl", Score)
        for side, rows in (
            ("within", [s for s in scores if length[s.id] <= limit]),
            ("past", [s for s in scores if length[s.id] > limit]),
        ):
            n = max(len(rows), 1)
            split[f"{task_set} k={k} {side} {limit}"] = {
                "tasks": len(rows),
                "success": sum(s.success for s in rows) / n,
                "state_f1": sum(s.state_f1 for s in rows) / n,
                "unparsed": sum(s.diagnosis == "parse_error" for s in rows) / n,
            }
    return split


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipes", default="default,own-template,position-skip,own-template+position-skip")
    parser.add_argument("--sft-steps", type=int, default=1200)
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--limit", type=int, default=24, help="Frozen tasks per tool and set.")
    parser.add_argument("--batch-size", type=int, default=8, help="Answers decoded together (64 on a GPU).")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "recipes")
    args = parser.parse_args()
    recipes = args.recipes.split(",")
    unknown = [name for name in recipes if name not in RECIPES]
    if unknown:
        parser.error(f"--recipes: unknown {', '.join(unknown)}; known: {', '.join(RECIPES)}")
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    print(f"machine: {describe_machine()}")
    print(
        f"{args.sft_steps} SFT steps on {args.samples} samples, seed {args.seed}; {args.limit} tasks per tool\n"
    )
    tokenizer = args.out / "tokenizer"
    if not (tokenizer / "tokenizer.json").exists():
        toolbench("train", "tokenizer", "--out", str(tokenizer))
    results_file = args.out / "results.json"
    settings = {"sft_steps": args.sft_steps, "samples": args.samples, "limit": args.limit, "seed": args.seed}
    saved = json.loads(results_file.read_text()) if results_file.exists() else {"settings": settings}
    if saved["settings"] != settings:
        parser.error(f"{args.out} holds results for {saved['settings']}; give another --out")
    saved["run"] = start_record("benchmarks/target_recipes.py", settings, args.seed).model_dump(mode="json")
    results = saved.setdefault("recipes", {})

    def save() -> None:
        partial = results_file.with_suffix(".tmp")
        partial.write_text(json.dumps(saved, indent=1))
        partial.replace(results_file)

    for recipe in recipes:
        row = results.get(recipe) or {}
        row["train"] = row.get("train") or train(recipe, args, tokenizer)
        cells = row.get("cells") or {}
        # Results of an older version lack the failures; rescoring them reads the answer cache.
        if not cells or any("failures" not in cell for cell in cells.values()):
            cells = score(recipe, args)
        row["cells"] = cells
        results[recipe] = row
        save()

    # The recipes share the tokenizer and the retrieved demos, so one model's prompts serve all.
    lengths = {(task_set, k): prompt_lengths(recipes[0], task_set, k, args) for task_set, k in CELLS if k}
    for recipe in recipes:
        results[recipe]["length_split"] = length_split(recipe, args, lengths)
    save()

    width = max(len(recipe) for recipe in recipes) + 2
    base = results[recipes[0]]["cells"]
    header = "".join(f"{cell:>24}" for cell in base)
    print(f"{'recipe':<{width}}{'steps':>6}{'train s':>9}{'probe value/span':>18}{header}")
    for recipe in recipes:
        trained, cells = results[recipe]["train"], results[recipe]["cells"]
        probe = f"{100 * (trained['copy_value_acc'] or 0):.1f}/{100 * (trained['copy_span_acc'] or 0):.1f}%"
        figures = "".join(
            f"{100 * c['success']:>7.1f}% ({100 * c['state_f1']:.0f}, {100 * c['unparsed']:.0f}%)"
            f"{100 * (c['success'] - base[name]['success']):+6.1f}"
            for name, c in cells.items()
        )
        print(
            f"{recipe:<{width}}{trained['steps']:>6}{trained['train_seconds'] or 0:>9.0f}{probe:>18}{figures}"
        )
    print(
        f"\ncells: success (state F1, unparsed) and success minus {recipes[0]}'s, in points; "
        "system prompt on, BM25 demos"
    )
    print("\nwhy the failed answers failed (the first wrong thing, tasks of all tools):")
    for recipe in recipes:
        for name, c in results[recipe]["cells"].items():
            reasons = ", ".join(f"{why} {count}" for why, count in c["failures"].items())
            print(f"{recipe:<{width}}{name:<12}{reasons}")
    print(
        "\nk = 3 by prompt length, within / past the longest training conversation: success (state F1, unparsed)"
    )
    for recipe in recipes:
        for name, c in results[recipe]["length_split"].items():
            print(
                f"{recipe:<{width}}{name:<26}{c['tasks']:>4} tasks {100 * c['success']:>6.1f}% "
                f"({100 * c['state_f1']:.0f}, {100 * c['unparsed']:.0f}%)"
            )


if __name__ == "__main__":
    main()
