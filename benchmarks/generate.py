"""Generator throughput: validated samples/s against bare Jinja rendering of the same templates.

Baseline (measured in the same run, same templates, same slot values): `Template.render` of the
query and every action, the floor cost of any template-based generator. The pipeline adds slot
sampling, parsing, JSON-schema validation, execution on the simulator, label agreement checks,
dedupe and a streamed, checkpointed JSONL file.

    python benchmarks/generate.py [--n 20000] [--tool home_search] [--rounds 5] [--before REV]
                                  [--memory TOOL]

- The table: bare renders/s, validated samples/s in one process and its ratio to the bare rate
  (goal: >= 5,000/s and >= 0.3 of the bare rate, per tool), then with 2 worker processes; beside
  it, the diversity of the one-process run's requests (distinct-1/2/3) and its function-set
  coverage (`benchmarks/coverage.py` defines both; run that script for before/after figures).
  A compose entry's bare baseline renders its frame, one phrase per clause drawn and its actions.
- `--rounds R` (default 5): per tool, the bare render and the one-process pipeline are measured
  R times, alternately, and each rate is the best of its R (on a shared machine other processes
  slow one measurement or another; alternating and keeping the best of each treats both alike,
  and the ratio of bests is far steadier than that of one pair). Every pipeline run is a fresh
  process, as a `toolbench generate` command is (no simulator memo carries over from a previous
  run); its rate is `generate`'s own, template loading included. The load average is printed
  before and after the table.
- `--before REV`: the same pipeline at git revision REV (a `git archive` copy, run in a child
  process), measured in the same run, one tool at a time between the bare render and this tree.
- The profile: where a kept sample's time goes, per stage, in microseconds (a separate,
  one-process run with a `StageClock`; its total is a little above the table's, the clock's own
  cost). Stages: startup (templates compiled, simulators indexed), slots (RNG, template choice,
  slot values), render (query, then actions, setup and goal), dedupe (request key and lookups,
  early and in the writer), parse, schema, execute (simulator reset, calls, state snapshot;
  episodes: every step and its observation), check (goal predicates, alternative labels reach the
  same state), serialise (canonical action text, JSON line), write (file, checkpoints).
- `--memory TOOL`: peak RSS of a one-process run of TOOL at 100k and at 1M samples (each in a
  fresh process), to show memory stays flat while the output streams to disk.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe_machine  # noqa: E402

from toolbench.core.registry import resolve_tools  # noqa: E402
from toolbench.core.templating import ComposedEntry, make_environment  # noqa: E402
from toolbench.pipelines.generate import GenerateConfig, SampleFactory, generate  # noqa: E402
from toolbench.pipelines.generate.engine import STAGES, StageClock  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _load_coverage() -> Any:
    """benchmarks/coverage.py, by path (its module name would shadow the `coverage` package)."""
    spec = importlib.util.spec_from_file_location("_bench_coverage", Path(__file__).with_name("coverage.py"))
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


measure = _load_coverage().measure
GOAL_RATE = 5_000
GOAL_RATIO = 0.3


def bare_jinja_rate(config: GenerateConfig, n: int) -> float:
    """Renders/s of the same templates through the plain Jinja API (`Template.render`, the
    templates compiled by a Jinja environment configured as the generator's), slots drawn
    beforehand."""
    factory = SampleFactory(config)
    env = make_environment()
    compiled = {}  # entry id -> (queries, actions) as plain jinja2.Template objects
    for tool in config.tools:
        for entry in factory.entries[tool]:
            if isinstance(entry, ComposedEntry):
                continue  # its templates depend on the clauses drawn: compiled per sample below
            sources = [source for _, source in entry.sources]
            templates = [env.from_string(source) for source in sources]
            n_queries = len(entry.entry.queries)
            compiled[id(entry)] = (templates[:n_queries], templates[n_queries:])
    work = []
    for index in range(n):
        rng = random.Random(index)
        tool = config.tools[index % len(config.tools)]
        entry = rng.choice(factory.entries[tool])
        if isinstance(entry, ComposedEntry):  # the frame, one phrase per clause, the actions
            slots, frame = entry.draw(rng)
            sources = entry.bare_sources(slots, frame)
            templates = [_cached(env, source) for source in sources]
            work.append((templates[0], templates[1:], slots | {"clauses": "", "items": ""}))
            continue
        slots = entry.draw_slots(rng)
        queries, actions = compiled[id(entry)]
        work.append((queries[rng.randrange(len(queries))], actions, slots))
    started = time.perf_counter()
    for query, actions, slots in work:
        query.render(slots)
        for action in actions:
            action.render(slots)
    return n / (time.perf_counter() - started)


_JINJA: dict[str, Any] = {}


def _cached(env: Any, source: str) -> Any:
    template = _JINJA.get(source)
    if template is None:
        template = _JINJA[source] = env.from_string(source)
    return template


_PIPELINE_CHILD = """
import sys
from pathlib import Path
from toolbench.pipelines.generate import GenerateConfig, generate
from toolbench.core.registry import get_tool
config = GenerateConfig.model_validate_json(sys.argv[1])
for tool in config.tools:  # imported, as the bare render's factory imports it in this process
    get_tool(tool)
print(generate(config, Path(sys.argv[2]), workers=int(sys.argv[3])).samples_per_second)
"""


def pipeline_rate(
    config: GenerateConfig, workers: int, tree: Path | None = None
) -> tuple[float, list[bytes]]:
    """Validated samples/s (`generate`'s own figure: from its start, templates loaded, to the
    output renamed into place), and the samples (for the diversity and coverage columns). Each
    run is a fresh process, as a `toolbench generate` command is: no memo a simulator module
    keeps (a search cache, known places) carries over from an earlier run of the same tool. The
    tool's module is imported before the run starts, as it was when runs shared this process
    (the bare render's factory imports it). `tree`: run the code of that tree (`checkout`)."""
    env = {**os.environ, "PYTHONPATH": str(tree)} if tree is not None else None
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out.jsonl"
        done = subprocess.run(
            [sys.executable, "-c", _PIPELINE_CHILD, config.model_dump_json(), str(out), str(workers)],
            cwd=tree if tree is not None else REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        lines = out.read_bytes().splitlines()
    return float(done.stdout.strip().splitlines()[-1]), lines


def profile(config: GenerateConfig) -> tuple[dict[str, float], int, float]:
    """Microseconds per kept sample per stage, kept samples, and samples/s of the timed run."""
    clock = StageClock()
    with tempfile.TemporaryDirectory() as folder:
        report = generate(config, Path(folder) / "out.jsonl", clock=clock)
    return (
        {s: clock.seconds.get(s, 0.0) / report.kept * 1e6 for s in STAGES},
        report.kept,
        report.samples_per_second,
    )


# ------------------------------------------------------------------- the tree at another revision
def checkout(rev: str, folder: Path) -> Path:
    """The files of `rev` (read with `git archive`; the repository is not touched), laid out so
    that `PYTHONPATH=<folder>` imports them as the installed package does."""
    archive = folder / "tree.tar"
    with archive.open("wb") as handle:
        subprocess.run(["git", "archive", "--format=tar", rev], cwd=REPO, stdout=handle, check=True)
    root = folder / "tree"
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    for package, source in (
        ("tools", "tools"),
        ("templates", "templates"),
        ("retriever", "retriever"),
        ("distill", "distill"),
    ):
        if (root / source).is_dir() and not (root / "toolbench" / package).exists():
            (root / "toolbench" / package).symlink_to(root / source, target_is_directory=True)
    return root


def before_rate(tree: Path, config: GenerateConfig) -> float:
    return pipeline_rate(config, 1, tree)[0]


# ------------------------------------------------------------------------------------- memory
_MEMORY_CHILD = """
import sys, tempfile, resource
from pathlib import Path
from toolbench.pipelines.generate import GenerateConfig, generate
config = GenerateConfig(tools=[sys.argv[1]], n=int(sys.argv[2]), seed=0, split=sys.argv[3])
with tempfile.TemporaryDirectory() as folder:
    out = Path(folder) / "out.jsonl"
    report = generate(config, out)
    size = out.stat().st_size
# this process's own peak: VmHWM (ru_maxrss would count the `git` the run record calls, and on
# Linux starts from the peak of the process that spawned this one)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
try:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
except OSError:
    pass
print(report.kept, peak, size / 2**20, report.samples_per_second)
"""


def memory(
    tool: str, split: str, tree: Path | None = None, sizes: tuple[int, ...] = (100_000, 1_000_000)
) -> None:
    print(
        f"memory: peak RSS of one process generating {tool} ({split} templates), each size in a fresh "
        "process (VmHWM of the generating process itself)"
    )
    for label, source in (("before", tree), ("now", None)):
        if label == "before" and source is None:
            continue
        env = {**os.environ, "PYTHONPATH": str(source)} if source is not None else None
        for n in sizes:
            done = subprocess.run(
                [sys.executable, "-c", _MEMORY_CHILD, tool, str(n), split],
                capture_output=True,
                text=True,
                check=True,
                env=env,
                cwd=source,
            )
            kept, rss, size, rate = done.stdout.split()
            print(
                f"  {label:<6} {int(kept):>9,} samples: peak RSS {float(rss):7.1f} MB, "
                f"output {float(size):7.1f} MB, {float(rate):,.0f} samples/s"
            )


def _load() -> str:
    try:
        return ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:  # not on this platform
        return "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--tool", default="all")
    parser.add_argument("--split", default="train", help="train (training data, the default), test or all")
    parser.add_argument("--before", metavar="REV", help="also measure the pipeline of git revision REV")
    parser.add_argument("--no-profile", action="store_true", help="skip the per-stage profile")
    parser.add_argument("--memory", metavar="TOOL", help="peak RSS at 100k and 1M samples of TOOL")
    parser.add_argument(
        "--rounds", type=int, default=5, help="alternate measurements of bare and pipeline rates per tool"
    )
    args = parser.parse_args()
    tools = resolve_tools(args.tool)
    print(f"machine: {describe_machine()}")
    print(f"{args.n:,} samples per tool from the {args.split} templates")
    with tempfile.TemporaryDirectory() as scratch:
        tree = checkout(args.before, Path(scratch)) if args.before else None
        run(args, tools, tree)


def run(args: argparse.Namespace, tools: list[str], tree: Path | None) -> None:
    before_head = f" {'before/s':>9} {'ratio':>6}" if tree else ""
    print(f"load average (1, 5, 15 min): {_load()}")
    print(
        f"{'tool':<14} {'bare jinja/s':>13}{before_head} {'validated/s (1 core)':>21} {'ratio':>6} "
        f"{'2 workers/s':>12} {'scaling':>8}  goal   {'dist-1':>6} {'dist-2':>6} {'dist-3':>6} "
        f"{'function-set coverage':>21}"
    )
    for tool in tools:
        config = GenerateConfig(tools=[tool], n=args.n, seed=0, split=args.split)
        bare = one = old = 0.0
        for _ in range(max(1, args.rounds)):  # alternately, best of each (see the docstring)
            bare = max(bare, bare_jinja_rate(config, min(args.n, 20_000)))
            if tree is not None:
                old = max(old, before_rate(tree, config))
            rate, lines = pipeline_rate(config, 1)
            one = max(one, rate)
        before = f" {old:>9,.0f} {old / bare:>6.2f}" if tree is not None else ""
        two, _ = pipeline_rate(config, 2)
        met = one >= GOAL_RATE and one / bare >= GOAL_RATIO
        quality = measure(lines, tool)
        print(
            f"{tool:<14} {bare:>13,.0f}{before} {one:>21,.0f} {one / bare:>6.2f} {two:>12,.0f} "
            f"{two / one:>7.2f}x  {'met   ' if met else 'MISSED'} "
            f"{quality['distinct_1']:>6.4f} {quality['distinct_2']:>6.4f} {quality['distinct_3']:>6.4f} "
            f"{100 * quality['coverage']:>7.1f}% of {quality['valid']:,}"
        )
    print(f"load average (1, 5, 15 min): {_load()}; rates: best of {max(1, args.rounds)} alternate rounds")
    print(
        f"goal: >= {GOAL_RATE:,} validated samples/s on one core per tool and >= {GOAL_RATIO} of the bare "
        "render rate (validated = rendered, parsed, schema-checked, executed, deduped, written)"
    )
    print(
        "dist-n: distinct n-grams / n-grams of the requests; coverage: valid function sets the samples "
        "use / valid sets (benchmarks/coverage.py defines both)"
    )
    if not args.no_profile:
        print()
        print("profile: microseconds per kept sample, by stage (one process, StageClock run)")
        print(f"{'tool':<14}" + "".join(f"{stage:>10}" for stage in STAGES) + f"{'total':>10}{'/s':>9}")
        for tool in tools:
            config = GenerateConfig(tools=[tool], n=args.n, seed=0, split=args.split)
            per_stage, _, rate = profile(config)
            print(
                f"{tool:<14}"
                + "".join(f"{per_stage[stage]:>10.1f}" for stage in STAGES)
                + f"{sum(per_stage.values()):>10.1f}{rate:>9,.0f}"
            )
    if args.memory:
        print()
        memory(args.memory, args.split, tree)


if __name__ == "__main__":
    main()
