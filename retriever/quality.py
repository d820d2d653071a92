"""Retrieval quality as ToolBench needs it: does a retrieved demo show the right functions?

recall@k = share of test tasks for which at least one of the top-k demos (from the task's
offered tools, never the task itself) was generated from a template with the same set of
functions as the task's gold label.
"""

from __future__ import annotations

from collections import defaultdict

from toolbench.foundation.records import Task
from toolbench.retriever.base import Retriever
from toolbench.retriever.prompt import PromptBuilder


def recall_at_k(retriever: Retriever, tasks: list[Task], k: int = 3) -> dict[str, float]:
    builder = PromptBuilder(retriever, k)
    hits: dict[str, list[bool]] = defaultdict(list)
    for task in tasks:
        if not task.labels[0]:
            continue  # a relevance task has no functions to match
        gold = sorted({call.name for call in task.labels[0]})
        hits[task.tool].append(any(doc.payload["functions"] == gold for doc in builder.demos_for(task)))
    per_tool = {tool: sum(values) / len(values) for tool, values in sorted(hits.items())}
    if per_tool:
        per_tool["macro"] = sum(per_tool.values()) / len(per_tool)
    return per_tool
