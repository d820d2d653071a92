"""Distillation training throughput: offline white-box (cached top-k) vs offline black-box vs
online (target run every step), on the same (target, draft) pair, prompts and steps, in one run.

Baseline (measured in the same run): offline white-box with the cached top-k log-probs, the
default setting. Tokens/s counts every token of every trained sequence (prompt + answer) per
second of training, the target's generation included for online runs; the one-off cost of
building the teacher cache is reported beside it (it is paid once per target and prompt set).

    python benchmarks/distill.py --target runs/demo/models/target --draft runs/demo/models/draft-generic
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe_machine  # noqa: E402

from toolbench.distill.draft.distillation import DistillConfig, run_distill  # noqa: E402
from toolbench.distill.draft.scenarios import ScenarioConfig  # noqa: E402
from toolbench.distill.draft.teacher_cache import CacheConfig  # noqa: E402
from toolbench.distill.training.trainer import TrainConfig  # noqa: E402
from toolbench.foundation.tables import markdown_table  # noqa: E402

SETTINGS = [
    ("offline white-box FKL (cached top-k)", {}),
    ("offline black-box (cached text)", {"signal": "black"}),
    ("online white-box FKL (target answers each step)", {"mode": "online"}),
    ("online white-box FKL, on-policy λ=1 (draft samples)", {"mode": "online", "lmbda": 1.0}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="runs/demo/models/target")
    parser.add_argument("--draft", default="runs/demo/models/draft-generic")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--samples", type=int, default=96, help="scenario II prompts")
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--max-new-tokens", type=int, default=320)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    print(f"machine: {describe_machine()}")
    print(
        f"pair: target {args.target}, draft {args.draft}; {args.steps} steps of {args.batch_size} sequences each"
    )
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        base = DistillConfig(
            target=args.target,
            draft=args.draft,
            scenario=ScenarioConfig(samples=args.samples),
            cache=CacheConfig(top_k=args.top_k, max_new_tokens=args.max_new_tokens),
            cache_dir=str(root / "cache"),
            train=TrainConfig(max_steps=args.steps, batch_size=args.batch_size, warmup_steps=2, log_every=1),
            eval_per_tool=0,
        )
        started = time.perf_counter()
        rows = []
        for i, (name, changes) in enumerate(SETTINGS):
            summary = run_distill(base.model_copy(update=changes), root / f"run{i}", progress=False)
            if i == 0:
                cache = summary["cache"]
                print(
                    f"teacher cache (once): {cache['sequences']} answers, {cache['response_tokens']:,} answer tokens, "
                    f"top-{cache['top_k']}: {cache['disk_bytes'] / 1e6:.2f} MB on disk, "
                    f"{cache['topk_memory_bytes'] / 1e6:.2f} MB in memory, {cache['seconds']:.1f} s "
                    f"(prompts + cache: {time.perf_counter() - started:.1f} s)"
                )
            rows.append((name, summary["train"]["tokens_per_second"], summary["train"]["seconds"]))
    baseline = rows[0][1]
    print()
    table = [
        [name, f"{rate:,.0f}", f"{seconds:.1f}", f"{rate / baseline:.2f}×"] for name, rate, seconds in rows
    ]
    header = ["setting", "training tokens/s", "seconds", "vs offline white-box"]
    print(markdown_table(header, table, ["left", "right", "right", "right"]))


if __name__ == "__main__":
    main()
