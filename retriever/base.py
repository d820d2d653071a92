"""One interface for every retriever: `build`, `save`, `load`, `search(query, k)`.

Each retriever only scores the whole corpus for a query (`scores`); ranking, filtering (e.g.
"demos of the offered tools only", "never the task itself") and k larger than the corpus are
handled once, here. An index folder holds `meta.json` (kind, model, corpus hash, sizes,
versions), `documents.jsonl`, and the retriever's own files.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from toolbench.foundation.errors import UserError
from toolbench.foundation.io import atomic_open, read_records, write_jsonl
from toolbench.foundation.runinfo import now, package_versions
from toolbench.retriever.corpus import Document, corpus_hash


@dataclass
class Hit:
    document: Document
    score: float
    rank: int


class Retriever:
    kind: ClassVar[str]

    def __init__(self) -> None:
        self.documents: list[Document] = []
        self.hash: str | None = None

    # -- what a retriever implements
    def _build(self, documents: Sequence[Document]) -> None:
        raise NotImplementedError

    def scores(self, query: str) -> np.ndarray:
        """A score per document, higher is better."""
        raise NotImplementedError

    def _save(self, folder: Path) -> None:
        raise NotImplementedError

    def _load(self, folder: Path, meta: dict[str, Any]) -> None:
        raise NotImplementedError

    def meta(self) -> dict[str, Any]:
        return {}

    # -- shared behaviour
    def build(self, documents: Sequence[Document]) -> Retriever:
        if not documents:
            raise UserError(f"cannot build a {self.kind} index over an empty corpus")
        self.documents = list(documents)
        self.hash = corpus_hash(self.documents)
        self._build(self.documents)
        return self

    def search(self, query: str, k: int, allow: Callable[[Document], bool] | None = None) -> list[Hit]:
        """The top-k documents (fewer when fewer exist or pass `allow`), best first; ties keep corpus order."""
        if k <= 0 or not self.documents:
            return []
        scores = np.asarray(self.scores(query), dtype=np.float64)
        if allow is None:
            candidates = np.flatnonzero(np.isfinite(scores))
            if len(candidates) > k:
                candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
            top = sorted(candidates.tolist(), key=lambda i: (-scores[i], i))
        else:
            # walk the ranking and ask `allow` only until k documents pass: the filter is Python,
            # the corpus can be large, and most queries stop after a handful of documents
            top = []
            for i in np.argsort(-scores, kind="stable").tolist():
                if not np.isfinite(scores[i]):
                    break
                if allow(self.documents[i]):
                    top.append(i)
                    if len(top) == k:
                        break
        return [Hit(self.documents[i], float(scores[i]), rank) for rank, i in enumerate(top)]

    def save(self, folder: Path, source: dict[str, Any] | None = None) -> None:
        folder = Path(folder)
        staging = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        write_jsonl(staging / "documents.jsonl", self.documents)
        self._save(staging)
        meta = {
            "kind": self.kind,
            "corpus_hash": self.hash,
            "documents": len(self.documents),
            "created": now(),
            "packages": package_versions(),
            "source": source or {},
            **self.meta(),
        }
        with atomic_open(staging / "meta.json", "w") as handle:
            json.dump(meta, handle, indent=2)
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)

    @staticmethod
    def read_meta(folder: Path) -> dict[str, Any]:
        path = Path(folder) / "meta.json"
        if not path.is_file():
            raise UserError(
                f"{folder}: not an index folder (no meta.json); build one with `toolbench index build`"
            )
        return json.loads(path.read_text())

    @classmethod
    def load(cls, folder: Path, expected_hash: str | None = None) -> Retriever:
        folder = Path(folder)
        meta = cls.read_meta(folder)
        if meta["kind"] != cls.kind:
            raise UserError(f"{folder}: holds a {meta['kind']} index, not {cls.kind}")
        if expected_hash is not None and meta["corpus_hash"] != expected_hash:
            raise UserError(
                f"{folder}: stale index: it was built from another corpus (hash {meta['corpus_hash'][:12]}…, "
                f"now {expected_hash[:12]}…); rebuild it with `toolbench index build`"
            )
        retriever = cls.__new__(cls)
        Retriever.__init__(retriever)
        retriever.documents = read_records(folder / "documents.jsonl", Document)
        retriever.hash = meta["corpus_hash"]
        if corpus_hash(retriever.documents) != retriever.hash:
            raise UserError(
                f"{folder}: documents.jsonl does not match the index's corpus hash; rebuild the index"
            )
        retriever._load(folder, meta)
        return retriever
