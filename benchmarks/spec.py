"""Speculative decoding speed on one (target, draft) pair, every figure measured in the same run.

1. speculative vs target-only decoding (both our KV-cache loops, greedy, same prompts): the speedup
   a draft buys (goal with the distilled embedded draft: >= 1.5x);
2. our speculative loop vs HF assisted generation (`generate(assistant_model=draft)`, same γ,
   constant schedule): the implementation's overhead (goal: >= 1.0x);
plus HF `generate` alone, for scale, and whether every output equals the target's greedy output.
Methods are interleaved prompt by prompt and each prompt's best time of `--repeats` is kept, so
drift on a shared machine hits all methods alike.

    python benchmarks/spec.py [--target runs/demo/models/target] [--draft runs/demo/models/draft]
                              [--tools home_search] [--limit 20] [--gamma 5] [--policies fixed,confidence]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe_machine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="runs/demo/models/target")
    parser.add_argument("--draft", default="runs/demo/models/draft")
    parser.add_argument("--tools", default="home_search", help="comma-separated tools or categories, or all")
    parser.add_argument("--limit", type=int, default=20, help="prompts per task file")
    parser.add_argument("--gamma", type=int, default=5)
    parser.add_argument("--policies", default="fixed", help="draft policies to time: fixed, confidence")
    parser.add_argument("--threshold", type=float, default=0.5, help="confidence policy threshold")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2, help="best time of this many runs per prompt")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    for role in ("target", "draft"):
        path = Path(getattr(args, role))
        if not (path / "config.json").exists():
            raise SystemExit(
                f"no {role} model at {path}: train the embedded pair first (`make demo`, or "
                f"`toolbench train target|draft`), or pass --{role} PATH"
            )

    import torch
    from transformers.utils import logging as hf_logging

    from toolbench.distill.acceptance import acceptance_stats
    from toolbench.distill.models import parameter_count
    from toolbench.distill.spec_eval import SpecConfig, chat_prompts, load_pair, resolve_device, stop_ids
    from toolbench.distill.speculative import hf_decode, make_policy, speculative_decode, target_decode
    from toolbench.prompts import DEFAULT_SYSTEM_PROMPT

    if args.threads:
        torch.set_num_threads(args.threads)  # a shared machine: fewer threads than cores avoids spin-waits
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    device = resolve_device(args.device)
    target, draft, tokenizer = load_pair(args.target, args.draft, device)
    config = SpecConfig(
        target=args.target,
        draft=args.draft,
        tools=args.tools.split(","),
        limit=args.limit,
        system_prompt=DEFAULT_SYSTEM_PROMPT,
    )
    tasks, prompts = chat_prompts(config, tokenizer)
    stops = stop_ids(target, tokenizer)
    policies = {
        name: make_policy(name, args.gamma, threshold=args.threshold) for name in args.policies.split(",")
    }
    print(f"machine: {describe_machine()}; device {device}, torch threads {torch.get_num_threads()}")
    print(
        f"pair: target {args.target} ({parameter_count(target) / 1e6:.2f} M params), draft {args.draft} "
        f"({parameter_count(draft) / 1e6:.2f} M); {len(prompts)} chat prompts ({args.tools}), "
        f"mean {sum(map(len, prompts)) / len(prompts):.0f} prompt tokens, greedy, γ = {args.gamma}, "
        f"max {args.max_tokens} new tokens"
    )

    methods = {
        "target-only (ours)": lambda p, n: target_decode(target, p, n, stop_ids=stops),
        "HF generate": lambda p, n: hf_decode(target, p, n, stop_ids=stops, pad_id=tokenizer.pad_token_id),
        **{
            f"speculative {name} (ours)": (
                lambda p, n, policy=policy: speculative_decode(target, draft, p, n, policy, stop_ids=stops)
            )
            for name, policy in policies.items()
        },
        "HF assisted": lambda p, n: hf_decode(
            target, p, n, draft=draft, gamma=args.gamma, stop_ids=stops, pad_id=tokenizer.pad_token_id
        ),
    }
    for method in methods.values():
        method(prompts[0], 8)  # warm up: allocation and lazy initialisation are not decoding speed
    seconds = dict.fromkeys(methods, 0.0)
    tokens = dict.fromkeys(methods, 0)
    equal = dict.fromkeys(methods, 0)
    runs: dict[str, list] = {name: [] for name in methods}
    for prompt in prompts:
        best: dict = {}
        for _ in range(args.repeats):
            for name, method in methods.items():
                result = method(prompt, args.max_tokens)
                if name not in best or result.seconds < best[name].seconds:
                    best[name] = result
        reference = best["target-only (ours)"].tokens
        for name, result in best.items():
            runs[name].append(result)
            seconds[name] += result.seconds
            tokens[name] += len(result.tokens)
            equal[name] += result.tokens == reference

    rate = {name: tokens[name] / seconds[name] for name in methods}
    base = rate["target-only (ours)"]
    n = len(prompts)
    print(f"{'method':<28} {'tokens/s':>10} {'vs target-only':>15}  equal to target greedy")
    for name in methods:
        print(f"{name:<28} {rate[name]:>10.1f} {rate[name] / base:>14.2f}x  {equal[name]}/{n}")
    for name, policy in policies.items():
        key = f"speculative {name} (ours)"
        stats = acceptance_stats(runs[key], policy.max_draft)
        print(
            f"{key}: speedup {rate[key] / base:.2f}x vs target-only (goal >= 1.5x with the distilled draft), "
            f"{rate[key] / rate['HF assisted']:.2f}x vs HF assisted (goal >= 1.0x); "
            f"α = A/(A+R) {stats.alpha:.3f}, draft acceptance A/D {stats.draft_acceptance_rate:.3f}, "
            f"τ = 1+A/S {stats.mean_accepted_length:.2f} (from α: {stats.expected_tau:.2f})"
        )


if __name__ == "__main__":
    main()
