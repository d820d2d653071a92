"""The prompt builder: ToolBench's two levers in one place, retrieved demonstrations and a
system prompt, in the two shapes models are asked in.

(a) completion: the ToolBench scaffold (API docs of the offered tools, top-k demos,
    `Task: …`, `Actions:`), answered with python-format calls;
(b) chat: OpenAI-style messages with `tools`, demos as complete few-shot turns (user →
    assistant tool_calls → tool results → closing assistant reply), answered with `tool_calls`.

Demos come only from the offered tools and never include the task itself (same id or the same
normalised request), so a test query cannot be answered by copying its own label.
"""

from __future__ import annotations

from typing import Any

from toolbench.core.chat_messages import demo_turns, openai_tools
from toolbench.core.prompts import completion_prompt
from toolbench.core.registry import spec_index
from toolbench.core.templating import normalise_query
from toolbench.foundation.records import Call, FunctionSpec, Task
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
        other_templates: bool = False,
    ):
        """`other_templates`: demos never come from the task's own template (its `meta.template`).
        Training prompts use it so a model learns to take a call's structure from *similar* requests
        and its values from the request itself, which is what a held-out template asks of it."""
        if k > 0 and demos is None:
            raise ValueError("k > 0 demos needs a demo retriever")
        self.demos, self.k, self.system_prompt = demos, k, system_prompt
        self.api_docs, self.k_docs = api_docs, k_docs
        self.other_templates = other_templates

    def demos_for(self, task: Task) -> list[Document]:
        if not self.k or self.demos is None:
            return []
        offered = set(task.offered_tools)
        own = normalise_query(task.query)
        template = task.meta.get("template") if self.other_templates else None

        def allow(doc: Document) -> bool:
            return (
                doc.payload.get("tool") in offered
                and doc.id != task.id
                and normalise_query(doc.payload.get("query", doc.text)) != own
                and (template is None or doc.payload.get("template") != template)
            )

        return [hit.document for hit in self.demos.search(task.query, self.k, allow)]

    def specs_for(self, task: Task) -> list[FunctionSpec]:
        """Every offered function, or the top-k of them by the API-doc retriever. A task that carries
        its own functions (BFCL's) offers all of them: the API-doc index knows only the tools'."""
        if task.functions is not None:
            return list(task.functions)
        specs = spec_index(tuple(task.offered_tools)).specs
        if self.api_docs is None or self.k_docs is None:
            return list(specs.values())
        hits = self.api_docs.search(task.query, self.k_docs, lambda doc: doc.payload.get("function") in specs)
        return [specs[hit.document.payload["function"]] for hit in hits]

    def completion(self, task: Task) -> str:
        demos = [(doc.payload["query"], doc.payload["action"]) for doc in self.demos_for(task)]
        return completion_prompt(task.query, self.specs_for(task), demos, self.system_prompt)

    def chat(self, task: Task) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(messages, tools) for a chat-completions request: demos as complete turns in the shape
        every real chat template accepts (`toolbench.core.chat_messages`)."""
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        for doc in self.demos_for(task):
            calls = [Call.trusted(c["name"], c["arguments"]) for c in doc.payload["calls"]]
            messages += demo_turns(doc.payload["query"], calls, key=doc.id)
        messages.append({"role": "user", "content": task.query})
        return messages, openai_tools(self.specs_for(task))
