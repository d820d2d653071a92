"""Runs the factory over candidate indices in order, dedupes, and streams JSONL to disk.

- Streaming: memory holds only the 8-byte dedupe keys and a bounded window of chunks.
- Parallel: chunks are made by worker processes and consumed strictly in index order, so
  `--workers` never changes the bytes.
- Resumable: output goes to `OUT.partial`; after every chunk a small checkpoint records the
  byte length, next index, counts and a config fingerprint. `--resume` truncates to the last
  checkpoint, rebuilds the dedupe keys from the file, and continues: the same final file as an
  uninterrupted run, with nothing lost or duplicated.
- Atomic: the finished file is renamed into place; a run record is written beside it.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from toolbench.errors import UserError
from toolbench.generate.engine import Candidate, GenerateConfig, SampleFactory, query_key
from toolbench.io import write_json
from toolbench.runinfo import finish_record, start_record

EXHAUSTED_AFTER = 20_000  # candidates in a row without a new sample: the templates ran dry
CHECKPOINT_SECONDS = 1.0  # fsync + checkpoint at most this often: a kill loses at most ~1 s of work

_factory: SampleFactory | None = None


def _init_worker(config_json: str) -> None:
    global _factory
    _factory = SampleFactory(GenerateConfig.model_validate_json(config_json))


def _work(start: int, size: int) -> list[Candidate]:
    assert _factory is not None
    return _factory.make_range(start, size)


def iter_candidates(
    config: GenerateConfig, start: int, workers: int = 1, chunk_size: int = 500
) -> Iterator[list[Candidate]]:
    """Chunks of candidates from `start` on, forever, in index order."""
    if workers <= 1:
        factory = SampleFactory(config)
        index = start
        while True:
            yield factory.make_range(index, chunk_size)
            index += chunk_size
    SampleFactory(config)  # fail fast, in this process, on template errors
    with multiprocessing.get_context("fork").Pool(workers, _init_worker, (config.model_dump_json(),)) as pool:
        window: deque = deque()
        index = start
        while True:
            while len(window) < 2 * workers:
                window.append(pool.apply_async(_work, (index, chunk_size)))
                index += chunk_size
            yield window.popleft().get()


@dataclass
class GenerateReport:
    out: Path
    kept: int
    candidates: int
    rejects: dict[str, int]
    seconds: float
    peak_rss_mb: float
    resumed_from: int = 0
    by_split: dict[str, int] = field(default_factory=dict)

    @property
    def samples_per_second(self) -> float:
        return (self.kept - self.resumed_from) / self.seconds if self.seconds else 0.0


def _peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


class _Checkpoint:
    def __init__(self, out: Path):
        self.partial = out.with_name(out.name + ".partial")
        self.state = out.with_name(out.name + ".partial.json")

    def load(self, config: GenerateConfig) -> dict | None:
        if not self.state.exists() or not self.partial.exists():
            return None
        data = orjson.loads(self.state.read_bytes())
        if data["fingerprint"] != config.fingerprint():
            raise UserError(
                f"{self.partial}: was started with a different configuration ({data['config']}); "
                "rerun with the same options, or without --resume to start over"
            )
        return data

    def save(
        self, config: GenerateConfig, handle, next_index: int, kept: int, rejects: Counter, by_split: Counter
    ) -> None:
        handle.flush()
        os.fsync(handle.fileno())
        write_json(
            self.state,
            {
                "fingerprint": config.fingerprint(),
                "config": config.model_dump(),
                "bytes": handle.tell(),
                "next_index": next_index,
                "kept": kept,
                "rejects": dict(rejects),
                "by_split": dict(by_split),
            },
        )


def generate(
    config: GenerateConfig,
    out: Path,
    workers: int = 1,
    resume: bool = False,
    chunk_size: int = 500,
    on_progress: Callable[[int], None] | None = None,
) -> GenerateReport:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = start_record(
        "generate", {**config.model_dump(), "workers": workers, "out": str(out)}, seed=config.seed
    )
    checkpoint = _Checkpoint(out)
    started = time.perf_counter()
    seen: set[bytes] = set()
    rejects: Counter = Counter()
    by_split: Counter = Counter()
    next_index = kept = 0
    state = checkpoint.load(config) if resume else None
    if state is None and not resume and checkpoint.partial.exists():
        raise UserError(
            f"{checkpoint.partial}: an unfinished run of this output exists; pass --resume to continue it, "
            "or delete it to start over"
        )
    if state is not None:
        with checkpoint.partial.open("r+b") as handle:
            handle.truncate(state["bytes"])
        with checkpoint.partial.open("rb") as handle:
            for line in handle:
                seen.add(query_key(orjson.loads(line)["query"]))
        next_index, kept = state["next_index"], state["kept"]
        rejects.update(state["rejects"])
        by_split.update(state["by_split"])
    resumed_from = kept
    since_new = 0
    last_checkpoint = time.perf_counter()
    with checkpoint.partial.open("ab" if state is not None else "wb") as handle:
        for chunk in iter_candidates(config, next_index, workers, chunk_size):
            for candidate in chunk:
                if kept >= config.n:
                    break
                next_index = candidate.index + 1
                if candidate.reject is not None:
                    rejects[candidate.reject] += 1
                elif candidate.key in seen:
                    rejects["duplicate"] += 1
                else:
                    seen.add(candidate.key)
                    handle.write(candidate.line)
                    kept += 1
                    since_new = -1
                    by_split[candidate.split] += 1
                since_new += 1
            if on_progress:
                on_progress(kept)
            if kept >= config.n:
                break
            if time.perf_counter() - last_checkpoint >= CHECKPOINT_SECONDS:
                checkpoint.save(config, handle, next_index, kept, rejects, by_split)
                last_checkpoint = time.perf_counter()
            if since_new > EXHAUSTED_AFTER:
                raise UserError(
                    f"the templates of {', '.join(config.tools)} (split {config.split}) gave only {kept} "
                    f"distinct samples in {next_index} candidates; ask for fewer or add templates"
                )
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(checkpoint.partial, out)
    checkpoint.state.unlink(missing_ok=True)
    report = GenerateReport(
        out,
        kept,
        next_index,
        dict(sorted(rejects.items())),
        time.perf_counter() - started,
        _peak_rss_mb(),
        resumed_from,
        dict(sorted(by_split.items())),
    )
    finish_record(
        record,
        kept=kept,
        candidates=next_index,
        rejects=report.rejects,
        by_split=report.by_split,
        seconds=round(report.seconds, 3),
        samples_per_second=round(report.samples_per_second, 1),
        peak_rss_mb=round(report.peak_rss_mb, 1),
        resumed_from=resumed_from,
    )
    write_json(run_record_path(out), record)
    return report


def run_record_path(out: Path) -> Path:
    return out.with_name(out.stem + ".run.json")
