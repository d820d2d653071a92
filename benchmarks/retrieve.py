"""Retrieval speed: index build time and per-query latency (p50/p95) for BM25, dense and hybrid
over generated demos, and bm25s against `rank_bm25` on the same tokens in the same run.

    python benchmarks/retrieve.py [--n 10000] [--queries 300]

Dense queries are also timed as they ran before issue 24 (the same index and model, on torch's
own thread count: `query_threads=None`), query by query alternating with the current setting (one
torch thread per query), so that both see the same machine load.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe_machine  # noqa: E402

from toolbench.core.registry import tool_names  # noqa: E402
from toolbench.pipelines.generate import GenerateConfig, generate  # noqa: E402
from toolbench.pipelines.tasks import builtin_task_files, load_tasks  # noqa: E402
from toolbench.retriever import demo_documents, make_retriever  # noqa: E402
from toolbench.retriever.bm25 import tokenize  # noqa: E402

K = 3


def latencies(search, queries: list[str]) -> np.ndarray:
    for query in queries[:5]:
        search(query)  # warm caches (and the encoder)
    times = []
    for query in queries:
        started = time.perf_counter()
        search(query)
        times.append(time.perf_counter() - started)
    return np.array(times) * 1000


def paired_latencies(first, second, queries: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Latencies of two search functions, each query timed with both, in alternating order."""
    for query in queries[:5]:
        first(query)
        second(query)
    times: tuple[list[float], list[float]] = ([], [])
    for i, query in enumerate(queries):
        order = ((0, first), (1, second)) if i % 2 == 0 else ((1, second), (0, first))
        for slot, search in order:
            started = time.perf_counter()
            search(query)
            times[slot].append(time.perf_counter() - started)
    return np.array(times[0]) * 1000, np.array(times[1]) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="demos in the corpus")
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    with tempfile.TemporaryDirectory() as folder:
        samples = Path(folder) / "train.jsonl"
        generate(GenerateConfig(tools=tool_names(), n=args.n, seed=0, split="train"), samples)
        documents = demo_documents(samples)
    queries = [n.task.query for path in builtin_task_files() for n in load_tasks(path)]
    queries = [queries[i] for i in np.random.default_rng(0).permutation(len(queries))[: args.queries]]
    print(
        f"corpus: {len(documents)} demos from {', '.join(tool_names())}; {len(queries)} test queries; top-{K}"
    )
    print(f"{'retriever':<10} {'build s':>9} {'p50 ms':>8} {'p95 ms':>8}")
    results = {}
    for kind in ("bm25", "dense", "hybrid"):
        started = time.perf_counter()
        retriever = make_retriever(kind).build(documents)
        build = time.perf_counter() - started
        ms = latencies(lambda q, r=retriever: r.search(q, K), queries)
        results[kind] = ms
        print(f"{kind:<10} {build:>9.2f} {np.percentile(ms, 50):>8.2f} {np.percentile(ms, 95):>8.2f}")
        if kind == "dense":
            dense_before_and_after(retriever, queries)

    from rank_bm25 import BM25Okapi

    tokens = tokenize([doc.text for doc in documents])
    started = time.perf_counter()
    baseline = BM25Okapi(tokens)
    build = time.perf_counter() - started

    def rank_bm25_search(query: str) -> list[int]:
        scores = baseline.get_scores(tokenize([query])[0])
        return np.argsort(-scores)[:K].tolist()

    ms = latencies(rank_bm25_search, queries)
    print(f"{'rank_bm25':<10} {build:>9.2f} {np.percentile(ms, 50):>8.2f} {np.percentile(ms, 95):>8.2f}")
    ratio = np.percentile(ms, 50) / np.percentile(results["bm25"], 50)
    print(f"bm25s is {ratio:.1f}x faster than rank_bm25 at p50 on the same tokens")
    print("goals: bm25 p50 <= 5 ms, dense p50 <= 15 ms")


def dense_before_and_after(retriever, queries: list[str]) -> None:
    from toolbench.retriever.dense import DenseRetriever

    before = DenseRetriever(retriever.model_name, query_threads=None)  # as before issue 24
    before.documents, before.hash, before.embeddings = (
        retriever.documents,
        retriever.hash,
        retriever.embeddings,
    )
    now, then = paired_latencies(lambda q: retriever.search(q, K), lambda q: before.search(q, K), queries)
    for label, ms in ((f"  torch's {torch_threads()} threads (before)", then), ("  1 thread (now)", now)):
        print(f"{label:<32} p50 {np.percentile(ms, 50):>7.2f} ms  p95 {np.percentile(ms, 95):>7.2f} ms")
    print(
        f"  dense, same queries alternating: p50 {np.percentile(then, 50):.2f} -> {np.percentile(now, 50):.2f} ms"
    )


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
