"""Evaluator throughput.

1. requests/s of the `openai:` backend (bounded concurrency, retries, cache off) against a bare
   `AsyncOpenAI` loop with the same concurrency, both against the same local `toolbench serve`
   (a tiny random model, 4 new tokens: the figure is dominated by HTTP and client overhead).
2. scoring speed: predictions scored per second on one core (parse + validate + execute + compare)
   against a baseline of parsing alone, measured in the same run.

    python benchmarks/eval_throughput.py [--requests 200] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe_machine  # noqa: E402

from toolbench.core.backends import BackendParams, BackendRequest, make_backend  # noqa: E402
from toolbench.core.replay import gold_predictions  # noqa: E402
from toolbench.pipelines.results import parse_prediction, score_all  # noqa: E402
from toolbench.pipelines.tasks import builtin_task_files, load_tasks  # noqa: E402


def start_server(model: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "toolbench", "serve", "--model", str(model), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("server did not start")


async def bare_loop(url: str, prompts: list[str], concurrency: int) -> None:
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
    gate = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> None:
        async with gate:
            await client.completions.create(model="tiny", prompt=prompt, max_tokens=4, temperature=0)

    await asyncio.gather(*(one(p) for p in prompts))
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")

    from tests.fixtures.tiny_model import build_tiny_model

    with tempfile.TemporaryDirectory() as folder:
        model = build_tiny_model(Path(folder) / "tiny")
        process, url = start_server(model)
        try:
            prompts = [f"Task: request number {i}\nActions:\n" for i in range(args.requests)]
            backend = make_backend("openai:tiny", base_url=url, concurrency=args.concurrency, retries=2)
            requests = [BackendRequest(id=str(i), mode="completion", prompt=p) for i, p in enumerate(prompts)]
            params = BackendParams(max_tokens=4)
            backend.generate(requests[:10], params)  # warm up
            bare_rates, our_rates = [], []
            for _ in range(3):  # interleaved, best of three each: the server's speed drifts
                started = time.perf_counter()
                asyncio.run(bare_loop(url, prompts, args.concurrency))
                bare_rates.append(args.requests / (time.perf_counter() - started))
                started = time.perf_counter()
                backend.generate(requests, params)
                our_rates.append(args.requests / (time.perf_counter() - started))
            bare, ours = max(bare_rates), max(our_rates)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    print(
        f"requests/s, concurrency {args.concurrency}: openai backend {ours:.1f}, bare AsyncOpenAI {bare:.1f}, "
        f"ratio {ours / bare:.2f} (goal >= 0.9)"
    )

    tasks = [n.task for path in builtin_task_files() for n in load_tasks(path)]
    predictions = {p.id: p for p in gold_predictions(tasks)}
    for task in tasks:  # first pass builds each tool's formatter: not part of the per-prediction cost
        parse_prediction(task, predictions[task.id], "python")
    started = time.perf_counter()
    for task in tasks:
        parse_prediction(task, predictions[task.id], "python")
    parse_only = len(tasks) / (time.perf_counter() - started)
    started = time.perf_counter()
    score_all(tasks, predictions)  # a fresh scorer: every gold label is executed in this pass too
    cold = len(tasks) / (time.perf_counter() - started)
    from toolbench.core.score import Scorer

    scorer = Scorer()
    score_all(tasks, predictions, scorer=scorer)
    rounds = 5
    started = time.perf_counter()
    for _ in range(rounds):
        score_all(tasks, predictions, scorer=scorer)  # gold executions cached, as across an ablation grid
    warm = rounds * len(tasks) / (time.perf_counter() - started)
    print(
        f"scoring, one core, {len(tasks)} tasks: {cold:,.0f} predictions/s with gold labels executed in the same "
        f"pass, {warm:,.0f}/s with gold cached (parse alone: {parse_only:,.0f}/s; goal >= 5,000/s)"
    )


if __name__ == "__main__":
    main()
