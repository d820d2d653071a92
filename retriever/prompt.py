"""The prompt builder: ToolBench's two levers in one place, retrieved demonstrations and a
system prompt, in the two shapes models are asked in.

(a) completion: the ToolBench scaffold (API docs of the offered tools, top-k demos,
    `Task: …`, `Actions:`), answered with python-format calls;
(b) chat: OpenAI-style messages with `tools`, demos as few-shot turns (user → assistant
    tool_calls → tool acknowledgements), answered with `tool_calls`.

Demos come only from the offered tools and never include the task itself (same id or the same
normalised request), so a test query cannot be answered by copying its own label.
"""

from __future__ import annotations

import json
from typing import Any

from toolbench.export import openai_tools
from toolbench.generate.engine import normalise_query
from toolbench.prompts import completion_prompt
from toolbench.records import FunctionSpec, Task
from toolbench.registry import spec_index
from toolbench.retriever.base import Retriever
from toolbench.retriever.corpus import Document


class PromptBuilder:
    def __init__(
        self,
        demos: Retriever | None = None,
        k: int = 3,
        system_prompt: str | None = None,
        api_docs: Retriever | None = None,
        k_docs: int | None = None,
    ):
        if k > 0 and demos is None:
            raise ValueError("k > 0 demos needs a demo retriever")
        self.demos, self.k, self.system_prompt = demos, k, system_prompt
        self.api_docs, self.k_docs = api_docs, k_docs

    def demos_for(self, task: Task) -> list[Document]:
        if not self.k or self.demos is None:
            return []
        offered = set(task.offered_tools)
        own = normalise_query(task.query)

        def allow(doc: Document) -> bool:
            return (
                doc.payload.get("tool") in offered and doc.id != task.id and normalise_query(doc.text) != own
            )

        return [hit.document for hit in self.demos.search(task.query, self.k, allow)]

    def specs_for(self, task: Task) -> list[FunctionSpec]:
        """Every offered function, or the top-k of them by the API-doc retriever."""
        specs = spec_index(tuple(task.offered_tools)).specs
        if self.api_docs is None or self.k_docs is None:
            return list(specs.values())
        hits = self.api_docs.search(task.query, self.k_docs, lambda doc: doc.payload.get("function") in specs)
        return [specs[hit.document.payload["function"]] for hit in hits]

    def completion(self, task: Task) -> str:
        demos = [(doc.payload["query"], doc.payload["action"]) for doc in self.demos_for(task)]
        return completion_prompt(task.query, self.specs_for(task), demos, self.system_prompt)

    def chat(self, task: Task) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(messages, tools) for a chat-completions request."""
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        for d, doc in enumerate(self.demos_for(task)):
            calls = doc.payload["calls"]
            ids = [f"demo{d}_call{i}" for i in range(len(calls))]
            messages.append({"role": "user", "content": doc.payload["query"]})
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": i,
                            "type": "function",
                            "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
                        }
                        for i, c in zip(ids, calls, strict=True)
                    ],
                }
            )
            messages += [{"role": "tool", "tool_call_id": i, "content": '{"status": "ok"}'} for i in ids]
        messages.append({"role": "user", "content": task.query})
        return messages, openai_tools(self.specs_for(task))
