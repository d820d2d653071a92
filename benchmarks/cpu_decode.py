"""CPU decoding with and without glibc keeping freed memory (`keep_freed_memory` in
toolbench/foundation/devices.py), on the same model, prompts and tasks.

Each setting runs in its own child process (the allocator is set once per process): `toolbench
eval`'s hf backend answers the same frozen tasks greedily, answer cache off, so both runs decode
exactly the same tokens. Prints per setting the wall time, decoded tokens per second and the
milliseconds per decoding step of one batch, and the ratio of the two in this run.

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


def main() -> None:
    parser = eval_arguments(__doc__, task_set="test", limit=4)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    print(f"machine: {describe_machine()}")
    print(f"model {args.model}, {args.task_set} tasks, {args.limit} per tool of {args.tools}, k = {args.k}\n")
    results = {}
    for setting, keep in (("glibc default", "0"), ("keep freed memory", "1")):
        command = [sys.executable, __file__, "--child", *sys.argv[1:]]
        env = {**os.environ, "TOOLBENCH_KEEP_FREED_MEMORY": keep}
        out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
        results[setting] = json.loads(out.strip().splitlines()[-1])
    print(f"{'allocator':<18} {'eval wall s':>11} {'tokens/s':>9} {'success':>8} {'ms/step (batch 8)':>18}")
    for setting, row in results.items():
        print(
            f"{setting:<18} {row['seconds']:>11.1f} {row['tokens'] / row['seconds']:>9.1f} "
            f"{100 * row['success']:>7.1f}% {row['step_ms']:>18.1f}"
        )
    base, kept = results["glibc default"], results["keep freed memory"]
    if not kept["kept"]:
        print("\n(this C library is not glibc: both runs used its default allocator)")
    assert base["tokens"] == kept["tokens"], "both runs should decode the same tokens"
    print(
        f"\nkeeping freed memory: eval {base['seconds'] / kept['seconds']:.2f}x faster, "
        f"a decoding step {base['step_ms'] / kept['step_ms']:.2f}x faster (same {kept['tokens']} tokens)"
    )


if __name__ == "__main__":
    main()
