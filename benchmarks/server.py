"""`toolbench serve` under load: latency, throughput and memory, batched against one at a time.

Starts the server (`toolbench.app.server.run_server`, as `toolbench serve` does) in a child process on
127.0.0.1 with a tiny random model (tests/fixtures/tiny_model.py) and drives it with the real async
`openai` client, greedy, as `toolbench eval --model openai:...` does, with two workloads built from
the frozen single-tool test tasks:

- tools: system prompt, the task's tools and its query (700 to 2,400 prompt tokens), 32 new tokens;
  prefill-bound: the tiny model has almost no weights, so attention over the prompt is its work.
- short: the query alone (20 to 70 prompt tokens), 64 new tokens; decode-bound, like a real model,
  whose every decoding step reads all its weights.

1. p50/p95 latency and throughput at concurrency 1, 8 and 50, for the batching server and for the
   same server with max_batch=1 (requests one at a time), measured back to back, medians of 3; with --compare-with DIR,
   also for an older toolbench (`git archive REV | tar -x -C DIR`), served as its `serve` did.
2. The server process's RSS after a warm-up and after 1,000 more requests at concurrency 50, the
   two workloads mixed (flat means within 10%).

    python benchmarks/server.py [--max-batch 16] [--requests 200] [--memory-requests 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe_machine  # noqa: E402

LEVELS = (1, 8, 50)
NAME = "tiny"


WORKLOADS = {"tools": 32, "short": 64}  # new tokens per request


def workload(name: str, n: int) -> list[dict]:
    """n chat requests from the frozen single-tool test tasks (whose prompts with tools fit the tiny
    model's 4,096-token context), cycling through them."""
    from toolbench.core.chat_messages import openai_tools
    from toolbench.core.prompts import DEFAULT_SYSTEM_PROMPT
    from toolbench.core.registry import get_tool
    from toolbench.core.task_files import load_tasks
    from toolbench.pipelines.tasks import builtin_task_files

    tasks = [n.task for path in builtin_task_files() for n in load_tasks(path) if len(n.task.tools) == 1]
    tasks = tasks[:: max(1, len(tasks) // 400)]
    requests = []
    for i in range(n):
        task = tasks[i % len(tasks)]
        if name == "short":
            requests.append({"messages": [{"role": "user", "content": task.query}]})
            continue
        specs = [spec for tool in task.tools for spec in get_tool(tool).specs.values()]
        messages = [
            {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
            {"role": "user", "content": task.query},
        ]
        requests.append({"messages": messages, "tools": openai_tools(specs)})
    return [{**request, "max_tokens": WORKLOADS[name]} for request in requests]


class Server:
    """`run_server` in a child process; its RSS read from /proc through psutil."""

    def __init__(self, model: Path, max_batch: int, log: Path, old_tree: Path | None = None):
        import httpx

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.log = log
        code = (
            "import sys; from toolbench.app.server import run_server; "
            "run_server(sys.argv[1], port=int(sys.argv[2]), model_name='tiny', max_batch=int(sys.argv[3]), "
            "max_queue=1000, max_tokens_limit=64)"
        )
        if old_tree is not None:  # an older toolbench, served as its run_server did
            code = (
                f"import sys; sys.path.insert(0, {str(old_tree)!r}); import uvicorn; "
                "from toolbench.app.server import create_app; "
                "app = create_app(sys.argv[1], model_name='tiny', max_tokens_limit=64); "
                "uvicorn.run(app, host='127.0.0.1', port=int(sys.argv[2]), log_level='info')"
            )
        with log.open("wb") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-c", code, str(model), str(self.port), str(max_batch)],
                stdout=handle,
                stderr=subprocess.STDOUT,
                cwd=old_tree or ROOT,
                env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
            )
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(600):
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise SystemExit("the server did not start within 60 s")

    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def health(self) -> dict | None:
        import httpx

        answer = httpx.get(f"{self.url}/health", timeout=5)
        return answer.json() if answer.status_code == 200 else None  # (an old server has none)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def drive(url: str, requests: list[dict], concurrency: int) -> tuple[list[float], float]:
    """(latency of each request in seconds, wall time) for `requests` sent `concurrency` at a time."""
    import httpx
    import openai

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = openai.AsyncOpenAI(
        base_url=f"{url}/v1",
        api_key="x",
        max_retries=0,
        timeout=600,
        http_client=openai.DefaultAsyncHttpxClient(limits=limits),
    )
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(request: dict) -> None:
        async with gate:
            started = time.perf_counter()
            await client.chat.completions.create(model=NAME, temperature=0, seed=0, **request)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(one(r) for r in requests))
    finally:
        await client.close()
    return latencies, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def measure(server: Server, requests: list[dict], level: int, count: int) -> dict:
    latencies, wall = asyncio.run(drive(server.url, requests[:count], level))
    return {
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "rps": count / wall,
        "n": count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-batch", type=int, default=16, help="The batching server's max_batch.")
    parser.add_argument("--requests", type=int, default=200, help="Requests per concurrency level.")
    parser.add_argument("--memory-requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100, help="Requests per workload before measuring.")
    parser.add_argument("--no-baseline", action="store_true", help="Skip the max_batch=1 server.")
    parser.add_argument(
        "--compare-with", type=Path, help="A folder holding an older toolbench to measure too."
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="Each cell measured this many times, the median kept."
    )
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="Which: tools, short or both.")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    names = [name for name in args.workloads.split(",") if name]
    if not names or set(names) - set(WORKLOADS):
        parser.error(f"--workloads takes names from {', '.join(WORKLOADS)}")
    print(f"machine: {describe_machine()}")

    import torch

    from tests.fixtures.tiny_model import build_tiny_model

    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads")
    count = max(args.requests, args.warmup, args.memory_requests)
    requests = {name: workload(name, count) for name in names}
    mixed = [request for group in zip(*requests.values(), strict=True) for request in group]
    configs: list[tuple[str, int, Path | None]] = [("batched", args.max_batch, None)]
    if not args.no_baseline:
        configs.append(("serial", 1, None))
    if args.compare_with:
        configs.append(("old", 1, args.compare_with.resolve()))
    results: dict = {"machine": describe_machine(), "configs": {label: batch for label, batch, _ in configs}}
    figures: dict = {label: {name: {} for name in names} for label, _, _ in configs}
    with tempfile.TemporaryDirectory() as folder:
        model = build_tiny_model(Path(folder) / "tiny")
        # All servers up at once, each level measured on each in turn, `rounds` times, medians kept:
        # a shared machine's load drifts, and back-to-back runs see the same drift (an idle server
        # takes no CPU).
        servers: dict[str, Server] = {}
        try:
            for label, max_batch, old_tree in configs:
                servers[label] = Server(model, max_batch, Path(folder) / f"{label}.log", old_tree)
            for server in servers.values():
                for name in names:
                    asyncio.run(drive(server.url, requests[name][: args.warmup], 50))
            for name in names:
                new_tokens = WORKLOADS[name]
                print(f"\n{name} ({new_tokens} new tokens):  p50 / p95 latency, throughput", flush=True)
                for level in LEVELS:
                    n = args.requests if level > 1 else max(20, args.requests // 4)
                    rounds: dict[str, list[dict]] = {label: [] for label in servers}
                    for _ in range(args.rounds):
                        for label, server in servers.items():
                            rounds[label].append(measure(server, requests[name], level, n))
                    cells = []
                    for label in servers:
                        row = figures[label][name][level] = {
                            key: statistics.median(r[key] for r in rounds[label]) for key in rounds[label][0]
                        }
                        cells.append(
                            f"{label} {1000 * row['p50']:6.0f} / {1000 * row['p95']:6.0f} ms {row['rps']:5.1f}/s"
                        )
                    print(f"  concurrency {level:>2} ({n} requests): " + " | ".join(cells), flush=True)
            batched = servers["batched"]
            warm = batched.rss_mb()
            asyncio.run(drive(batched.url, mixed[: args.memory_requests], 50))
            after = batched.rss_mb()
            change = 100 * (after - warm) / warm
            print(
                f"\nbatched server RSS: after warm-up {warm:.0f} MB, after {args.memory_requests} more "
                f"requests ({' and '.join(names)}, concurrency 50) {after:.0f} MB ({change:+.1f}%)"
            )
            results["rss_mb"] = {"after_warmup": warm, "after_requests": after, "change_pct": change}
            health = batched.health()
            if health is not None:
                batches = max(1, health["batches"])
                mean = health["generated"] / batches
                print(
                    f"batched server: {batches} batches, mean size {mean:.1f}, sizes {health['batch_sizes']}"
                )
                results["batch_sizes"] = health["batch_sizes"]
        finally:
            for server in servers.values():
                server.stop()
    results["figures"] = figures
    for label in ("serial", "old"):
        if label not in figures:
            continue
        print(f"\nbatched against {label} (same run, measured back to back):")
        for name in names:
            for level in LEVELS:
                fast, slow = figures["batched"][name][level], figures[label][name][level]
                print(
                    f"  {name:>5}, concurrency {level:>2}: throughput x{fast['rps'] / slow['rps']:.2f}, "
                    f"p50 {slow['p50'] / fast['p50']:.2f}x lower, p95 {slow['p95'] / fast['p95']:.2f}x lower"
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
