"""Generator throughput: validated samples/s against bare Jinja rendering of the same templates.

Baseline (measured in the same run, same templates, same slot values): `Template.render` of the
query and every action, the floor cost of any template-based generator. The pipeline adds slot
sampling, parsing, JSON-schema validation, execution on the simulator, label agreement checks,
dedupe and a streamed, checkpointed JSONL file.

    python benchmarks/generate.py [--n 20000] [--tool home_search]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe_machine  # noqa: E402

from toolbench.generate import GenerateConfig, SampleFactory, generate  # noqa: E402
from toolbench.registry import resolve_tools  # noqa: E402


def bare_jinja_rate(config: GenerateConfig, n: int) -> float:
    """Renders/s of the same templates through the plain Jinja API, slots drawn beforehand."""
    factory = SampleFactory(config)
    work = []
    for index in range(n):
        rng = random.Random(index)
        tool = config.tools[index % len(config.tools)]
        entry = rng.choice(factory.entries[tool])
        slots = entry.draw_slots(rng)
        work.append((entry.queries[rng.randrange(len(entry.queries))], entry.actions, slots))
    started = time.perf_counter()
    for query, actions, slots in work:
        query.render(slots)
        for action in actions:
            action.render(slots)
    return n / (time.perf_counter() - started)


def pipeline_rate(config: GenerateConfig, workers: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as folder:
        report = generate(config, Path(folder) / "out.jsonl", workers=workers)
    return report.samples_per_second, report.peak_rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--tool", default="all")
    parser.add_argument("--split", default="train", help="train (training data, the default), test or all")
    args = parser.parse_args()
    tools = resolve_tools(args.tool)
    print(f"machine: {describe_machine()}")
    print(f"{args.n:,} samples per tool from the {args.split} templates")
    print(
        f"{'tool':<14} {'bare jinja/s':>13} {'validated/s (1 core)':>21} {'ratio':>7} {'2 workers/s':>12} {'scaling':>8}"
    )
    for tool in tools:
        config = GenerateConfig(tools=[tool], n=args.n, seed=0, split=args.split)
        bare = bare_jinja_rate(config, min(args.n, 20_000))
        one, _ = pipeline_rate(config, 1)
        two, _ = pipeline_rate(config, 2)
        print(f"{tool:<14} {bare:>13,.0f} {one:>21,.0f} {one / bare:>7.2f} {two:>12,.0f} {two / one:>7.2f}x")
    goal = 5_000
    print(
        f"goal: >= {goal:,} validated samples/s on one core per tool "
        "(validated = rendered, parsed, schema-checked, executed, deduped, written)"
    )


if __name__ == "__main__":
    main()
