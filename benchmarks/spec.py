"""Speculative decoding speed on one (target, draft) pair by draft policy, every figure measured in
the same run.

1. Draft policies against each other and against target-only decoding (our KV-cache loops, greedy,
   same prompts): fixed γ over a sweep (the best fixed γ is picked on these very prompts, which
   favours the baseline), the confidence policy and the learned acceptance-head policy with the
   threshold and budget chosen on *training* prompts by `toolbench train acceptance-head` (read
   from the head's `head.json`; `--confidence` / `--learned` override them, and extra settings can
   be swept with `--sweep`, which is tuning on the test prompts and is labelled so). The verdict is
   the ratio best adaptive (train-chosen settings) / best fixed γ in tokens/s.
2. Per policy: mean accepted length τ = 1 + A/S, wasted draft tokens per target call (D − A)/S,
   target calls per generated token S/N, speedup; per tool, and per token class α = A/(A+R),
   drafted and wasted tokens, and where adaptive policies ended their rounds.
3. Optionally (`--hf`) HF `generate` and HF assisted generation (`assistant_model=draft`, γ =
   `--hf-gamma`, constant schedule), for the implementation's overhead.

Methods are interleaved prompt by prompt and each prompt's best time of `--repeats` is kept, so
drift on a shared machine hits all methods alike. Every output is checked against target greedy.

    python benchmarks/spec.py [--target runs/demo/models/target] [--draft runs/demo/models/draft]
        [--head DRAFT/acceptance-head] [--tools cat_api,…] [--limit 6] [--gammas 1,2,3,4,5,6,8]
        [--sweep confidence:0.3/8,learned:0.2/10] [--threads 1] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe_machine  # noqa: E402

from toolbench.foundation.tables import markdown_table  # noqa: E402

SFT_TOOLS = "cat_api,home_search,spreadsheet,trip_booking,weather"


def parse_setting(text: str) -> tuple[str, float, int | None]:
    """`confidence:0.3/8` → ("confidence", 0.3, 8); the budget is optional."""
    name, _, rest = text.partition(":")
    threshold, _, budget = rest.partition("/")
    if name not in ("confidence", "learned") or not threshold:
        raise SystemExit(f"--sweep entry {text!r}: expected confidence:T[/B] or learned:T[/B]")
    return name, float(threshold), int(budget) if budget else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="runs/demo/models/target")
    parser.add_argument("--draft", default="runs/demo/models/draft")
    parser.add_argument("--head", default=None, help="acceptance head folder (default DRAFT/acceptance-head)")
    parser.add_argument("--tools", default=SFT_TOOLS, help="comma-separated tools or categories, or all")
    parser.add_argument("--limit", type=int, default=6, help="prompts per task file")
    parser.add_argument("--gammas", default="1,2,3,4,5,6,8", help="fixed γ values to time")
    parser.add_argument(
        "--confidence", default=None, help="T[/B]: confidence threshold/budget (default: head.json's)"
    )
    parser.add_argument(
        "--learned", default=None, help="T[/B]: learned threshold/budget (default: head.json's)"
    )
    parser.add_argument(
        "--sweep", default="", help="extra settings tuned on these prompts: confidence:T/B,learned:T/B"
    )
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2, help="best time of this many runs per prompt")
    parser.add_argument("--hf", action="store_true", help="also time HF generate and HF assisted generation")
    parser.add_argument("--hf-gamma", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    args = parser.parse_args()
    for role in ("target", "draft"):
        path = Path(getattr(args, role))
        if not (path / "config.json").exists():
            raise SystemExit(
                f"no {role} model at {path}: train the embedded pair first (`make demo`, or "
                f"`toolbench train target|draft`), or pass --{role} PATH"
            )
    head_path = Path(args.head) if args.head else Path(args.draft) / "acceptance-head"
    if not (head_path / "head.json").exists():
        raise SystemExit(
            f"no acceptance head at {head_path}: train one with `toolbench train acceptance-head "
            f"--target {args.target} --draft {args.draft}`, or pass --head PATH"
        )

    import torch
    from transformers.utils import logging as hf_logging

    from toolbench.core.generation import stop_ids
    from toolbench.core.prompts import DEFAULT_SYSTEM_PROMPT
    from toolbench.distill.speculative.acceptance import acceptance_by_class, acceptance_stats
    from toolbench.distill.speculative.acceptance_head import load_head
    from toolbench.distill.speculative.acceptance_train import draft_features, head_metrics
    from toolbench.distill.speculative.decoding import (
        ConfidenceThreshold,
        FixedLength,
        hf_decode,
        learned_policy,
        speculative_decode,
        target_decode,
    )
    from toolbench.distill.speculative.spec_eval import (
        SpecConfig,
        chat_prompts,
        drafts_by_class,
        load_pair,
    )
    from toolbench.distill.speculative.token_classes import CLASSES, token_classes
    from toolbench.distill.training.models import parameter_count
    from toolbench.foundation.devices import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)  # a shared machine: fewer threads than cores avoids spin-waits
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    device = resolve_device(args.device)
    target, draft, tokenizer = load_pair(args.target, args.draft, device)
    head = load_head(head_path)
    info = head.info
    config = SpecConfig(
        target=args.target,
        draft=args.draft,
        tools=args.tools.split(","),
        limit=args.limit,
        system_prompt=DEFAULT_SYSTEM_PROMPT,
    )
    tasks, prompts = chat_prompts(config, tokenizer)
    stops = stop_ids(target, tokenizer)

    def setting(text: str | None, threshold: float | None, budget: int | None) -> tuple[float, int]:
        """An explicit T[/B], else the head's train-chosen threshold and budget."""
        if text:
            value, _, size = text.partition("/")
            return float(value), int(size) if size else budget or 8
        return threshold if threshold is not None else 0.5, budget or 8

    conf_t, conf_b = setting(args.confidence, info.confidence_threshold, info.confidence_budget)
    learn_t, learn_b = setting(args.learned, info.threshold, info.budget)
    policies: dict[str, tuple[str, object]] = {}  # name → (kind, policy)
    for gamma in (int(g) for g in args.gammas.split(",")):
        policies[f"fixed γ={gamma}"] = ("fixed", FixedLength(gamma))
    policies[f"confidence {conf_t:g}/{conf_b}"] = ("confidence", ConfidenceThreshold(conf_b, conf_t))
    policies[f"learned {learn_t:g}/{learn_b}"] = (
        "learned",
        learned_policy(head, learn_b, learn_t, draft=args.draft),
    )
    for entry in filter(None, args.sweep.split(",")):
        kind, t, b = parse_setting(entry)
        b = b or (conf_b if kind == "confidence" else learn_b)
        policy = ConfidenceThreshold(b, t) if kind == "confidence" else learned_policy(head, b, t)
        policies[f"{kind} {t:g}/{b} (swept on test)"] = (f"{kind}-sweep", policy)

    print(f"machine: {describe_machine()}; device {device}, torch threads {torch.get_num_threads()}")
    print(
        f"pair: target {args.target} ({parameter_count(target) / 1e6:.2f} M params), draft {args.draft} "
        f"({parameter_count(draft) / 1e6:.2f} M); {len(prompts)} chat prompts ({args.tools}), "
        f"mean {sum(map(len, prompts)) / len(prompts):.0f} prompt tokens, greedy, max {args.max_tokens} new tokens"
    )
    print(
        f"head {head_path}: settings chosen on training prompts: confidence {info.confidence_threshold}/"
        f"{info.confidence_budget}, learned {info.threshold}/{info.budget}, best fixed γ {info.best_fixed_gamma}; "
        f"held-out AUC {info.metrics.get('validation', {}).get('auc')} "
        f"(top-1 probability alone {info.metrics.get('validation', {}).get('auc_top1_prob')})"
    )

    methods = {"target-only": lambda p, n: target_decode(target, p, n, stop_ids=stops)}
    for name, (_, policy) in policies.items():
        methods[name] = lambda p, n, policy=policy: speculative_decode(
            target, draft, p, n, policy, stop_ids=stops
        )
    if args.hf:
        pad = tokenizer.pad_token_id
        methods["HF generate"] = lambda p, n: hf_decode(target, p, n, stop_ids=stops, pad_id=pad)
        methods[f"HF assisted γ={args.hf_gamma}"] = lambda p, n: hf_decode(
            target, p, n, draft=draft, gamma=args.hf_gamma, stop_ids=stops, pad_id=pad
        )
    for method in methods.values():
        method(prompts[0], 8)  # warm up: allocation and lazy initialisation are not decoding speed
    runs: dict[str, list] = {name: [] for name in methods}
    for prompt in prompts:
        best: dict = {}
        for _ in range(args.repeats):
            for name, method in methods.items():
                result = method(prompt, args.max_tokens)
                if name not in best or result.seconds < best[name].seconds:
                    best[name] = result
        for name, result in best.items():
            runs[name].append(result)

    reference = runs["target-only"]
    classes = [token_classes(tokenizer, run.tokens) for run in reference]
    tools = [task.tool for task in tasks]

    def rate(name: str, rows: list[int] | None = None) -> float:
        rows = rows if rows is not None else list(range(len(prompts)))
        seconds = sum(runs[name][i].seconds for i in rows)
        return sum(len(runs[name][i].tokens) for i in rows) / seconds if seconds else 0.0

    base = rate("target-only")
    table = {}
    for name in methods:
        figures = {
            "tokens_per_s": rate(name),
            "speedup": rate(name) / base,
            "equal": sum(r.tokens == ref.tokens for r, ref in zip(runs[name], reference, strict=True)),
        }
        if name in policies:
            policy = policies[name][1]
            stats = acceptance_stats(runs[name], policy.max_draft)
            tokens = sum(len(r.tokens) for r in runs[name])
            figures.update(
                kind=policies[name][0],
                budget=policy.max_draft,
                threshold=getattr(policy, "threshold", None),
                mean_accepted_length=stats.mean_accepted_length,
                wasted_per_call=(stats.drafted - stats.accepted) / stats.rounds,
                calls_per_token=stats.rounds / tokens,
                alpha=stats.alpha,
            )
        table[name] = figures

    n = len(prompts)
    print()
    method_rows = []
    for name, f in table.items():
        threshold = "-" if f.get("threshold") is None else f"{f['threshold']:g}"
        extra = (
            [f"{f['mean_accepted_length']:.2f}", f"{f['wasted_per_call']:.2f}", f"{f['calls_per_token']:.3f}"]
            if "budget" in f
            else ["-", "-", "-"]
        )
        method_rows.append(
            [name, str(f.get("budget", "-")), threshold, f"{f['tokens_per_s']:.1f}", f"{f['speedup']:.2f}×"]
            + extra
            + [f"{f['equal']}/{n}"]
        )
    method_header = ["method", "γ / budget", "threshold", "tokens/s", "vs target-only", "τ = 1+A/S"]
    method_header += ["wasted (D−A)/S", "calls S/N", "equal to target"]
    print(markdown_table(method_header, method_rows, ["left"] + ["right"] * 8))

    fixed = [name for name in table if table[name].get("kind") == "fixed"]
    adaptive = [name for name in table if table[name].get("kind") in ("confidence", "learned")]
    swept = [name for name in table if str(table[name].get("kind", "")).endswith("-sweep")]
    best_fixed = max(fixed, key=lambda name: table[name]["tokens_per_s"])
    best_adaptive = max(adaptive, key=lambda name: table[name]["tokens_per_s"])
    ratio = table[best_adaptive]["tokens_per_s"] / table[best_fixed]["tokens_per_s"]
    print()
    print(
        f"best fixed: {best_fixed} ({table[best_fixed]['tokens_per_s']:.1f} tok/s, picked on these prompts); "
        f"best adaptive (settings chosen on training prompts): {best_adaptive} "
        f"({table[best_adaptive]['tokens_per_s']:.1f} tok/s); ratio best adaptive / best fixed = {ratio:.3f}"
    )
    for name in adaptive:
        print(f"  {name}: {table[name]['tokens_per_s'] / table[best_fixed]['tokens_per_s']:.3f}× best fixed")
    for name in swept:
        print(f"  {name}: {table[name]['tokens_per_s'] / table[best_fixed]['tokens_per_s']:.3f}× best fixed")

    # predicted (replayed rounds × measured costs, on held-out training prompts) vs measured here
    chosen = info.selection.get("best", {})
    if chosen:
        print(
            "predicted by the head's selection on training prompts: "
            + ", ".join(f"{k} {v['predicted_speedup']:.2f}×" for k, v in chosen.items())
        )

    # how well the head and the draft's top-1 probability separate accepted from rejected proposals
    # on these (test) prompts: the draft reads the target's answers, as in the head's training data
    data = draft_features(draft, prompts, [run.tokens for run in reference], tools=tools)
    data.classes = torch.tensor([CLASSES.index(c) for row in classes for c in row], dtype=torch.uint8)
    quality = head_metrics(head, data)
    print(
        f"head on these prompts: AUC {quality['auc']} (draft top-1 probability alone {quality['auc_top1_prob']}), "
        f"log loss {quality['log_loss']} (base rate {quality['log_loss_base_rate']}), accepted share "
        f"{quality['accepted_share']}, mean predicted {quality['mean_predicted']}; by class: "
        + ", ".join(
            f"{c} {q['auc']}/{q['auc_top1_prob']} (α {q['accepted_share']})"
            for c, q in quality["by_class"].items()
        )
        + " (AUC head/top-1)"
    )

    # per token class: acceptance, drafts and waste, where adaptive policies stopped
    shown = [best_fixed, *adaptive]
    per_class = {}
    for name in shown:
        budget = table[name]["budget"]
        accepted = acceptance_by_class(runs[name], classes)
        drafted = drafts_by_class(runs[name], classes, budget)
        per_class[name] = {
            c: {**accepted[c].model_dump(), **drafted.get(c, {})} for c in CLASSES if c in accepted
        }
    print()
    print("per token class (class of the output token at the proposal's position):")
    class_rows = []
    for c in CLASSES:
        cells = [c]
        for name in shown:
            row = per_class[name].get(c)
            cells.append(
                "-"
                if row is None
                else f"{row['alpha']:.3f}, {row.get('drafted', 0)}, {row.get('wasted', 0)}, {row.get('policy_stops', 0)}"
            )
        class_rows.append(cells)
    print(markdown_table(["class", *(f"{name}: α, drafted, wasted, stops" for name in shown)], class_rows))

    by_tool: dict[str, list[int]] = defaultdict(list)
    for i, tool in enumerate(tools):
        by_tool[tool].append(i)
    print()
    print("speedup vs target-only per tool:")
    per_tool = {}
    tool_rows = []
    for tool, rows in sorted(by_tool.items()):
        tool_base = rate("target-only", rows)
        per_tool[tool] = {name: rate(name, rows) / tool_base for name in shown}
        tool_rows.append([tool, *(f"{per_tool[tool][name]:.2f}×" for name in shown)])
    print(markdown_table(["tool", *shown], tool_rows, ["left"] + ["right"] * len(shown)))

    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": describe_machine(),
                    "prompts": n,
                    "table": table,
                    "best_fixed": best_fixed,
                    "best_adaptive": best_adaptive,
                    "ratio": ratio,
                    "per_class": per_class,
                    "per_tool": per_tool,
                    "head_on_test_prompts": quality,
                    "head": info.model_dump(mode="json", exclude={"selection"}),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
