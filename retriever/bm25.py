"""BM25 over document texts with `bm25s` (sparse matrices; scores the whole corpus in ~1 ms)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bm25s
import numpy as np

from toolbench.retriever.base import Retriever
from toolbench.retriever.corpus import Document

TOKEN_PATTERN = r"(?u)\b\w+\b"  # keep one-character tokens: "3 bedrooms" should match "3"


def tokenize(texts: list[str]) -> list[list[str]]:
    return bm25s.tokenize(
        texts, token_pattern=TOKEN_PATTERN, stopwords="en", return_ids=False, show_progress=False
    )


class BM25Retriever(Retriever):
    kind = "bm25"

    def _build(self, documents: Sequence[Document]) -> None:
        self.index = bm25s.BM25()
        self.index.index(tokenize([doc.text for doc in documents]), show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        vocab = self.index.vocab_dict
        tokens = [token for token in tokenize([query])[0] if token in vocab]
        if not tokens:
            return np.zeros(len(self.documents))
        return self.index.get_scores(tokens)

    def _save(self, folder: Path) -> None:
        self.index.save(folder / "bm25", show_progress=False)

    def _load(self, folder: Path, meta: dict[str, Any]) -> None:
        self.index = bm25s.BM25.load(folder / "bm25", show_progress=False)
