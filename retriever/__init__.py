"""Demo retrieval and prompt building (installed as `toolbench.retriever`)."""

from __future__ import annotations

from pathlib import Path

from toolbench.foundation.errors import UserError
from toolbench.foundation.io import file_sha256
from toolbench.retriever.base import Hit, Retriever
from toolbench.retriever.bm25 import BM25Retriever
from toolbench.retriever.corpus import Document, api_documents, corpus_hash, demo_documents
from toolbench.retriever.dense import DEFAULT_MODEL, DenseRetriever
from toolbench.retriever.hybrid import HybridRetriever

RETRIEVERS: dict[str, type[Retriever]] = {
    "bm25": BM25Retriever,
    "dense": DenseRetriever,
    "hybrid": HybridRetriever,
}


def make_retriever(kind: str, model: str | None = None) -> Retriever:
    if kind not in RETRIEVERS:
        raise UserError(f"unknown retriever {kind!r}; known: {', '.join(RETRIEVERS)}")
    return BM25Retriever() if kind == "bm25" else RETRIEVERS[kind](model or DEFAULT_MODEL)


def open_index(folder: Path, documents: list[Document] | None = None) -> Retriever:
    """Load an index, refusing it when it is stale: when `documents` are given their hash must
    match; otherwise the file it was built from, if still there, must be unchanged."""
    meta = Retriever.read_meta(folder)
    source = meta.get("source", {})
    if documents is None and source.get("path") and Path(source["path"]).is_file():
        if file_sha256(Path(source["path"])) != source.get("sha256"):
            raise UserError(
                f"{folder}: stale index: {source['path']} changed since the index was built; "
                "rebuild it with `toolbench index build`"
            )
    if meta.get("kind") not in RETRIEVERS:
        raise UserError(f"{folder}: unknown index kind {meta.get('kind')!r}")
    return RETRIEVERS[meta["kind"]].load(folder, corpus_hash(documents) if documents is not None else None)


__all__ = [
    "RETRIEVERS",
    "Document",
    "Hit",
    "Retriever",
    "api_documents",
    "demo_documents",
    "file_sha256",
    "make_retriever",
    "open_index",
]
