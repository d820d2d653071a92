"""CPU decoding: transformers' concatenating key/value cache against the growing one
(`toolbench/core/kv_cache.py`), and glibc's default allocator against keeping freed memory
(`keep_freed_memory` in toolbench/foundation/devices.py): the same model, prompts and tasks.

Each setting runs in its own child process (the allocator is set once per process): `toolbench
eval`'s hf backend answers the same frozen tasks greedily, answer cache off, so every run decodes
exactly the same tokens. Prints per setting the wall time, decoded tokens per second and the
milliseconds per decoding step of one batch, and each setting's ratio to the first (transformers'
cache, glibc's default), measured in this run. The concatenating baseline is made by giving the
product transformers' `DynamicLayer` back in the child (`--concat-cache`).

    python benchmarks/cpu_decode.py --model runs/demo/models/target [--limit 4] [--k 0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _eval_args import eval_arguments, eval_config  # noqa: E402
from _machine import describe_machine  # noqa: E402


def child(args: argparse.Namespace) -> None:
    """One setting: an eval run, then the per-step time of one batch of 8 prompts."""
    from toolbench.core.generation import GenerationParams, load_local_model
    from toolbench.foundation.devices import keep_freed_memory
    from toolbench.pipelines.evaluate import run_eval

    if args.concat_cache:  # the baseline: transformers' own cache, as before kv_cache existed
        from transformers.cache_utils import DynamicLayer

        from toolbench.core import kv_cache, pointer_llama

        kv_cache.growing_cache = lambda model: None
        pointer_llama.GrowingLayer = DynamicLayer

    with tempfile.TemporaryDirectory() as scratch:
        config = eval_config(args, scratch, device="cpu")
        began = time.perf_counter()
        run = run_eval(config, Path(scratch) / "run")
        seconds = time.perf_counter() - began
    model = load_local_model(args.model, "cpu")
    prompts = ["Weather in Paris tomorrow, please. " * 120] * 8  # ~1,000 tokens, as k = 3 prompts

    def timed(new_tokens: int) -> float:
        began = time.perf_counter()
        model.generate(prompts, GenerationParams(max_new_tokens=new_tokens), batch_size=8)
        return time.perf_counter() - began

    step_ms = 1000 * (timed(130) - timed(2)) / 128  # the prefill cancels out
    print(
        json.dumps(
            {
                "kept": keep_freed_memory(),
                "seconds": seconds,
                "tokens": run.cost.completion_tokens or 0,
                "success": run.summary.macro.success,
                "step_ms": step_ms,
            }
        )
    )


SETTINGS = (  # (name, keep freed memory, concatenating cache)
    ("concat cache, glibc default", "0", True),
    ("concat cache, keep freed", "1", True),
    ("growing cache, glibc default", "0", False),
    ("growing cache, keep freed", "1", False),
)


def main() -> None:
    parser = eval_arguments(__doc__, task_set="test", limit=4)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--concat-cache", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    print(f"machine: {describe_machine()}")
    print(f"model {args.model}, {args.task_set} tasks, {args.limit} per tool of {args.tools}, k = {args.k}\n")
    results = {}
    for setting, keep, concat in SETTINGS:
        command = [
            sys.executable,
            __file__,
            "--child",
            *(["--concat-cache"] if concat else []),
            *sys.argv[1:],
        ]
        env = {**os.environ, "TOOLBENCH_KEEP_FREED_MEMORY": keep}
        out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
        results[setting] = json.loads(out.strip().splitlines()[-1])
    base = results[SETTINGS[0][0]]
    print(
        f"{'setting':<30} {'eval wall s':>11} {'tokens/s':>9} {'success':>8} {'ms/step (batch 8)':>18} {'x first':>14}"
    )
    for setting, row in results.items():
        print(
            f"{setting:<30} {row['seconds']:>11.1f} {row['tokens'] / row['seconds']:>9.1f} "
            f"{100 * row['success']:>7.1f}% {row['step_ms']:>18.1f} "
            f"{base['seconds'] / row['seconds']:>6.2f} / {base['step_ms'] / row['step_ms']:.2f}"
        )
    if not any(row["kept"] for row in results.values()):
        print("\n(this C library is not glibc: every run used its default allocator)")
    assert len({row["tokens"] for row in results.values()}) == 1, "every run should decode the same tokens"
    print(f"\n(x first: eval wall / one step against the first setting; same {base['tokens']} tokens)")


if __name__ == "__main__":
    main()
