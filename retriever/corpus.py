"""Corpora the retrievers index: demonstrations (a train sample's request → its action) and
API docs (one document per function). A document is its searchable text plus a payload."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, Field

from toolbench.core.prompts import api_doc
from toolbench.core.registry import get_tool
from toolbench.foundation.errors import UserError
from toolbench.foundation.io import iter_jsonl


class Document(BaseModel):
    id: str
    text: str
    payload: dict[str, Any] = Field(default_factory=dict)


def corpus_hash(documents: Iterable[Document]) -> str:
    """Identity of a corpus: any change to an id, a text or a payload changes it."""
    digest = hashlib.sha256()
    for doc in documents:
        digest.update(orjson.dumps(doc.model_dump(), option=orjson.OPT_SORT_KEYS))
        digest.update(b"\n")
    return digest.hexdigest()


def function_set(program: list[dict[str, Any]]) -> list[str]:
    return sorted({call["name"] for call in program})


def demo_documents(samples_path: Path, split: str = "train") -> list[Document]:
    """Demos from generated samples (`toolbench generate`): only the given split, so held-out
    templates never leak into prompts; relevance samples (no call) are not demonstrations."""
    documents = []
    for number, value in iter_jsonl(samples_path):
        if not isinstance(value, dict) or not {"id", "query", "action", "labels"} <= value.keys():
            raise UserError(
                f"{samples_path}:{number}: not a generated sample (needs id, query, action, labels)"
            )
        if (split != "all" and value.get("split", "train") != split) or not value["labels"][0]:
            continue
        documents.append(
            Document(
                id=value["id"],
                text=value["query"],
                payload={
                    "query": value["query"],
                    "action": value["action"],
                    "tool": value["tool"],
                    "template": value.get("meta", {}).get("template"),
                    "functions": function_set(value["labels"][0]),
                    "calls": value["labels"][0],
                },
            )
        )
    return documents


def api_documents(tools: Iterable[str]) -> list[Document]:
    """One document per function: its ToolBench-style doc block is both the text and the payload."""
    documents = []
    for tool in tools:
        for spec in get_tool(tool).specs.values():
            text = api_doc(spec)
            documents.append(
                Document(
                    id=f"{tool}.{spec.name}",
                    text=text,
                    payload={"tool": tool, "function": spec.name, "doc": text},
                )
            )
    return documents
