"""Guided decoding: what it changes in a local model's tool success, and what it costs.

Runs `toolbench eval` twice on the same tasks, prompts and model, once decoding freely and once
guided (`--guided`: only answers that parse and fit the offered tools), answer cache off, and
prints per setting: success and state F1 (macro over tools), the share of answers that did not
parse, the wall time and the decoded tokens per second; the guided run's throughput as a ratio of
the free run's, measured in the same process.

    python benchmarks/guided.py --model runs/demo/models/target [--task-set indist] [--limit 24] [--k 0]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _eval_args import eval_arguments, eval_config  # noqa: E402
from _machine import describe_machine  # noqa: E402

from toolbench.pipelines.evaluate import run_eval  # noqa: E402


def main() -> None:
    parser = eval_arguments(__doc__, task_set="indist", limit=24)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    print(f"machine: {describe_machine()}")
    print(f"model {args.model}, {args.task_set} tasks, {args.limit} per tool of {args.tools}, k = {args.k}\n")
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        for guided in (False, True):
            config = eval_config(args, scratch, batch_size=args.batch_size, guided=guided)
            began = time.perf_counter()
            run = run_eval(config, Path(scratch) / ("guided" if guided else "free"))
            seconds = time.perf_counter() - began
            tokens = run.cost.completion_tokens or 0
            rows["guided" if guided else "free"] = (run.summary, seconds, tokens)

    print(f"{'decoding':<8} {'success':>8} {'state F1':>9} {'unparsed':>9} {'wall s':>8} {'tokens/s':>9}")
    for name, (summary, seconds, tokens) in rows.items():
        macro = summary.macro
        print(
            f"{name:<8} {100 * macro.success:>7.1f}% {100 * macro.state_f1:>8.1f}% "
            f"{100 * macro.parse_error_rate:>8.1f}% {seconds:>8.1f} {tokens / seconds:>9.1f}"
        )
    print("\nper tool, success free -> guided:")
    for tool, free in rows["free"][0].per_tool.items():
        print(
            f"  {tool:<14} {100 * free.success:5.1f}% -> {100 * rows['guided'][0].per_tool[tool].success:5.1f}%"
        )
    free_rate = rows["free"][2] / rows["free"][1]
    guided_rate = rows["guided"][2] / rows["guided"][1]
    print(
        f"\nguided throughput: {guided_rate / free_rate:.2f}x the free run's ({guided_rate:.1f} vs {free_rate:.1f} tokens/s)"
    )


if __name__ == "__main__":
    main()
