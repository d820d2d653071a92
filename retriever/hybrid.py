"""Hybrid retrieval: reciprocal-rank fusion of BM25 and dense rankings (Cormack et al., k = 60).
RRF needs no score calibration between the two, which is why it is the usual default."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from toolbench.retriever.base import Retriever
from toolbench.retriever.bm25 import BM25Retriever
from toolbench.retriever.corpus import Document
from toolbench.retriever.dense import DEFAULT_MODEL, DenseRetriever

RRF_K = 60


def ranks(scores: np.ndarray) -> np.ndarray:
    """0-based rank of every document (ties broken by corpus order)."""
    order = np.lexsort((np.arange(len(scores)), -scores))
    result = np.empty(len(scores), dtype=np.int64)
    result[order] = np.arange(len(scores))
    return result


class HybridRetriever(Retriever):
    kind = "hybrid"

    def __init__(self, model: str = DEFAULT_MODEL):
        super().__init__()
        self.sparse, self.dense = BM25Retriever(), DenseRetriever(model)

    def _build(self, documents: Sequence[Document]) -> None:
        self.sparse.build(documents)
        self.dense.build(documents)

    def scores(self, query: str) -> np.ndarray:
        return 1.0 / (RRF_K + 1 + ranks(self.sparse.scores(query))) + 1.0 / (
            RRF_K + 1 + ranks(self.dense.scores(query))
        )

    def meta(self) -> dict[str, Any]:
        return {"model": self.dense.model_name, "rrf_k": RRF_K}

    def _save(self, folder: Path) -> None:
        self.sparse._save(folder)
        self.dense._save(folder)

    def _load(self, folder: Path, meta: dict[str, Any]) -> None:
        self.sparse, self.dense = BM25Retriever(), DenseRetriever(meta["model"])
        for part in (self.sparse, self.dense):
            part.documents, part.hash = self.documents, self.hash
        self.sparse._load(folder, meta)
        self.dense._load(folder, meta)
