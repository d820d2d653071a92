"""Runs the factory over candidate indices in order, dedupes, and streams JSONL to disk.

- Streaming: memory holds only the 8-byte dedupe keys (packed: `KeySet`) and a bounded window
  of chunks.
- Dedupe first: a one-process run hands its kept keys to the factory, which rejects a repeated
  request before rendering, parsing or running its program (exactly: the writer then only records
  the keys); worker processes remember the keys of the valid candidates they made (a bounded
  set), and the writer checks every key they send.
- One write per chunk: a chunk's kept lines go to the file as one joined buffer.
- Parallel: chunks are made by worker processes and consumed strictly in index order, so
  `--workers` never changes the bytes.
- Resumable: output goes to `OUT.partial`; after every chunk a small checkpoint records the
  byte length, next index, counts and a config fingerprint. `--resume` truncates to the last
  checkpoint, rebuilds the dedupe keys from the file, and continues: the same final file as an
  uninterrupted run, with nothing lost or duplicated.
- Atomic: the finished file is renamed into place; a run record is written beside it.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import resource
import time
from array import array
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Callable, Container, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from toolbench.foundation.errors import UserError
from toolbench.foundation.io import check_disk_space, remove_stale_temps, write_json
from toolbench.foundation.runinfo import finish_record, start_record
from toolbench.pipelines.generate.engine import (
    Candidate,
    GenerateConfig,
    SampleFactory,
    StageClock,
    query_key,
)

EXHAUSTED_AFTER = 20_000  # candidates in a row without a new sample: the templates ran dry
CHECKPOINT_SECONDS = 1.0  # fsync + checkpoint at most this often: a kill loses at most ~1 s of work

WORKER_KEYS_MAX = 1 << 22  # keys a worker process remembers (~50 MB at most), then it starts over


class KeySet:
    """A set of 8-byte dedupe keys in ~13 bytes each (a Python set of `bytes` takes ~75): the
    keys as 64-bit integers in 4,096 sorted arrays, picked by their top 12 bits. Membership and
    insertion are a binary search (~0.5 µs). What keeps memory flat while the output streams to
    disk: a million samples add ~13 MB."""

    _BITS = 12

    def __init__(self, keys: Iterable[bytes] = ()):
        self._buckets = [array("Q") for _ in range(1 << self._BITS)]
        self._size = 0
        for key in keys:
            self.add(key)

    def __len__(self) -> int:
        return self._size

    def __contains__(self, key: object) -> bool:
        number = int.from_bytes(key, "big")  # type: ignore[arg-type]
        bucket = self._buckets[number >> (64 - self._BITS)]
        at = bisect_left(bucket, number)
        return at < len(bucket) and bucket[at] == number

    def add(self, key: bytes) -> None:
        number = int.from_bytes(key, "big")
        bucket = self._buckets[number >> (64 - self._BITS)]
        at = bisect_left(bucket, number)
        if at == len(bucket) or bucket[at] != number:
            bucket.insert(at, number)
            self._size += 1

    def update(self, keys: Iterable[bytes]) -> None:
        for key in keys:
            self.add(key)

    def clear(self) -> None:
        for bucket in self._buckets:
            del bucket[:]
        self._size = 0


_factory: SampleFactory | None = None
_known = KeySet()  # a worker's: keys of the valid candidates it made, all below _known_upto
_known_upto = 0


def _init_worker(config_json: str) -> None:
    """A worker process: its factory, and the collector tuned as `_batch_gc` tunes the writer's
    (for the worker's whole life: it only makes chunks)."""
    global _factory
    _factory = SampleFactory(GenerateConfig.model_validate_json(config_json))
    gc.freeze()
    gc.set_threshold(max(gc.get_threshold()[0], 20_000), *gc.get_threshold()[1:])


def _work(start: int, size: int) -> list[Candidate]:
    """A chunk made in a worker. A key this worker saw on a valid candidate of a lower index
    belongs to a sample the writer keeps (or to an earlier duplicate of one), so a candidate with
    it is rejected as a duplicate early. Chunks reach a worker in increasing order; should one
    not, the worker forgets what it knew rather than use keys from above `start`."""
    global _known_upto
    assert _factory is not None
    if start < _known_upto or len(_known) >= WORKER_KEYS_MAX:
        _known.clear()
    candidates = _factory.make_range(start, size, _known)
    _known.update(c.key for c in candidates if c.reject is None)  # type: ignore[misc]
    _known_upto = start + size
    _set_aside()
    return candidates


def iter_candidates(
    config: GenerateConfig,
    start: int,
    workers: int = 1,
    chunk_size: int = 500,
    seen: Container[bytes] | None = None,
    clock: StageClock | None = None,
    factory: SampleFactory | None = None,
) -> Iterator[list[Candidate]]:
    """Chunks of candidates from `start` on, forever, in index order. In one process, `seen` (the
    keys kept so far, which the consumer updates between chunks) lets the factory reject
    duplicates before doing their work. `factory`: one already made for `config` (its template
    errors were raised when it was made)."""
    if workers <= 1:
        factory = factory or SampleFactory(config, clock)
        index = start
        while True:
            yield factory.make_range(index, chunk_size, seen)
            index += chunk_size
    if factory is None:
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


@contextmanager
def _batch_gc() -> Iterator[bool]:
    """The garbage collector tuned for the run, as batch jobs do: what exists when it starts
    (modules, catalogs, pools, compiled templates) is set aside from collections (`gc.freeze`),
    and the youngest generation is collected every 20,000 new objects instead of every 700 (the
    pipeline makes and drops millions of short-lived dicts and lists; memory stays bounded).
    Both are undone when the run ends (objects a caller froze before stay frozen). Yields whether
    the run may set aside what outlives each chunk too (`_set_aside`): only when it unfreezes
    everything at the end, so that nothing it made stays frozen."""
    thresholds = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], 20_000), *thresholds[1:])
    try:
        yield not frozen_before
    finally:
        gc.set_threshold(*thresholds)
        if not frozen_before:
            gc.unfreeze()


def _set_aside() -> None:
    """After a chunk: what is still alive (the factory's caches of parsed lines, memos, the
    chunk's last objects) joins what `_batch_gc` set aside, so no collection scans it again.
    Collections then see only what the next chunk makes: without this, the growing caches were
    scanned over and over (and once more, all together, as the run ended: 3-7% of its time).
    Safe for memory because a sample makes no reference cycles (`tests/unit/
    test_generate_speed_paths.py`): what a chunk leaves behind is freed when it is dropped, frozen
    or not; only cycles would wait for a collection after the run."""
    gc.freeze()


def _peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


class _Checkpoint:
    def __init__(self, out: Path):
        self.partial = out.with_name(out.name + ".partial")
        self.state = out.with_name(out.name + ".partial.json")

    def resumable(self) -> bool:
        """An unfinished run worth continuing: a checkpoint and a partial file with samples in it.
        (A 0-byte partial, or one without its checkpoint, holds nothing a resume could keep.)"""
        return self.state.is_file() and self.partial.is_file() and self.partial.stat().st_size > 0

    def discard(self) -> None:
        """Remove the partial file, its checkpoint and what killed writes of either left behind."""
        for path in (self.partial, self.state):
            path.unlink(missing_ok=True)
            remove_stale_temps(path)

    def load(self, config: GenerateConfig) -> dict | None:
        if not self.resumable():
            return None
        try:
            data = orjson.loads(self.state.read_bytes())
        except orjson.JSONDecodeError:
            raise UserError(
                f"{self.state}: the checkpoint is unreadable; rerun without --resume to start over"
            ) from None
        if data.get("bytes", 0) > self.partial.stat().st_size:
            raise UserError(
                f"{self.partial}: shorter ({self.partial.stat().st_size:,} bytes) than its checkpoint says "
                f"({data['bytes']:,}); rerun without --resume to start over"
            )
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
    clock: StageClock | None = None,
) -> GenerateReport:
    """`clock`: time every stage into it (one process only: workers' stages are not timed)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = start_record(
        "generate", {**config.model_dump(), "workers": workers, "out": str(out)}, seed=config.seed
    )
    checkpoint = _Checkpoint(out)
    started = time.perf_counter()
    seen = KeySet()
    rejects: Counter = Counter()
    by_split: Counter = Counter()
    next_index = kept = 0
    remove_stale_temps(out)
    state = checkpoint.load(config) if resume else None
    if state is None and not resume and checkpoint.resumable():
        raise UserError(
            f"{checkpoint.partial}: an unfinished run of this output exists; pass --resume to continue it, "
            "or delete it to start over"
        )
    if state is None:
        checkpoint.discard()  # what a failed start left: nothing in it to resume
    # template and option errors surface here, before any file is opened
    factory = SampleFactory(config, clock) if workers <= 1 else None
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
    if clock is not None:
        clock.reset()
    # In one process the factory dedupes against `seen` itself, exactly (a valid candidate's key
    # is in neither `seen` nor its chunk before it); worker processes know only their own keys.
    checked = workers <= 1
    disk_checked = False
    try:
        with _batch_gc() as set_aside, checkpoint.partial.open("ab" if state is not None else "wb") as handle:
            wanted, add = config.n, seen.add
            for chunk in iter_candidates(config, next_index, workers, chunk_size, seen, clock, factory):
                lines: list[bytes] = []
                for candidate in chunk:
                    if kept >= wanted:
                        break
                    next_index = candidate.index + 1
                    if candidate.reject is not None:
                        rejects[candidate.reject] += 1
                        since_new += 1
                    elif not checked and candidate.key in seen:
                        rejects["duplicate"] += 1
                        since_new += 1
                    else:
                        add(candidate.key)
                        lines.append(candidate.line)  # type: ignore[arg-type]
                        kept += 1
                        since_new = 0
                        by_split[candidate.split] += 1
                if clock is not None:
                    clock.lap("dedupe")
                if not disk_checked and lines:
                    check_disk_space(out, config.n - kept + len(lines), lines)
                    disk_checked = True
                handle.write(b"".join(lines))
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
                if set_aside:
                    _set_aside()
                if clock is not None:
                    clock.lap("write")
            handle.flush()
            os.fsync(handle.fileno())
            if clock is not None:
                clock.lap("write")
    except UserError:
        checkpoint.discard()  # refused (disk, templates ran dry): nothing worth resuming
        raise
    except BaseException:
        if not checkpoint.resumable():  # killed before the first checkpoint: nothing to resume
            checkpoint.discard()
        raise
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
