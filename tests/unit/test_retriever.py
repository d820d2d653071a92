"""Retrievers: persistence, staleness, edge cases, filtering, and the prompt builder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from toolbench.core.prompts import DEFAULT_SYSTEM_PROMPT
from toolbench.core.templating import normalise_query
from toolbench.foundation.errors import UserError
from toolbench.foundation.records import Task
from toolbench.pipelines.generate import GenerateConfig, generate
from toolbench.retriever import RETRIEVERS, Document, demo_documents, file_sha256, make_retriever, open_index
from toolbench.retriever.prompt import PromptBuilder
from toolbench.retriever.quality import recall_at_k

os.environ.setdefault("HF_HUB_OFFLINE", "1")
QUERIES = [
    "rent a condo in Denver with 2 bedrooms",
    "homes for sale in Austin under $500k",
    "3 car garage and a pool",
]


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demos") / "train.jsonl"
    generate(GenerateConfig(tools=["home_search"], n=240, seed=5, split="train"), path)
    return path


@pytest.fixture(scope="module")
def documents(samples) -> list[Document]:
    return demo_documents(samples)


@pytest.fixture(scope="module")
def built(documents):
    return {kind: make_retriever(kind).build(documents) for kind in RETRIEVERS}


@pytest.mark.parametrize("kind", list(RETRIEVERS))
def test_save_then_load_gives_identical_rankings(built, tmp_path, kind, samples):
    retriever = built[kind]
    retriever.save(tmp_path / kind, {"path": str(samples), "sha256": file_sha256(samples)})
    loaded = open_index(tmp_path / kind)
    for query in QUERIES:
        before = [(h.document.id, round(h.score, 6)) for h in retriever.search(query, 10)]
        after = [(h.document.id, round(h.score, 6)) for h in loaded.search(query, 10)]
        assert before == after and len(before) == 10


def test_rankings_make_sense(built):
    for kind, retriever in built.items():
        top = retriever.search("Find condos for rent in Boston", 3)
        assert any("ondo" in hit.document.text and "rent" in hit.document.text.lower() for hit in top), kind
        assert [hit.rank for hit in top] == [0, 1, 2] and top[0].score >= top[-1].score


def test_stale_index_is_refused(built, tmp_path, samples, documents):
    copy = tmp_path / "samples.jsonl"
    copy.write_bytes(samples.read_bytes())
    built["bm25"].save(tmp_path / "idx", {"path": str(copy), "sha256": file_sha256(copy)})
    open_index(tmp_path / "idx")
    with open(copy, "ab") as handle:
        handle.write(samples.read_bytes().splitlines(keepends=True)[0])
    with pytest.raises(UserError, match="stale index: .* changed since the index was built"):
        open_index(tmp_path / "idx")
    with pytest.raises(UserError, match="stale index: it was built from another corpus"):
        open_index(tmp_path / "idx", documents[:-1])


def test_empty_corpus_and_oversized_k_are_clear(built, documents):
    with pytest.raises(UserError, match="empty corpus"):
        make_retriever("bm25").build([])
    everything = built["bm25"].search("condo", len(documents) + 50)
    assert len(everything) == len(documents)
    assert built["dense"].search("condo", 0) == []
    assert built["bm25"].search("condo", 5, allow=lambda doc: False) == []
    assert len(built["bm25"].search("zzzz qqqq", 3)) == 3  # no matching word: still k answers, all scored 0


def test_not_an_index_folder(tmp_path):
    with pytest.raises(UserError, match="not an index folder"):
        open_index(tmp_path)


def test_unknown_retriever():
    with pytest.raises(UserError, match="unknown retriever 'tfidf'; known: bm25, dense, hybrid"):
        make_retriever("tfidf")


def _task(documents: list[Document], index: int = 0) -> Task:
    doc = documents[index]
    return Task(id=doc.id, tool="home_search", query=doc.text, labels=[[]])


def test_demos_never_include_the_task_itself(built, documents):
    task = _task(documents)
    for kind, retriever in built.items():
        demos = PromptBuilder(retriever, k=5).demos_for(task)
        assert len(demos) == 5, kind
        assert all(
            d.id != task.id and normalise_query(d.text) != normalise_query(task.query) for d in demos
        ), kind


def test_training_prompts_take_demos_from_other_templates_only(built, documents):
    """Retrieval-augmented SFT asks for demos of *other* templates (what a held-out template sees);
    without the option the nearest demos of a request are mostly its own template's."""
    doc = documents[0]
    task = _task(documents).model_copy(update={"meta": {"template": doc.payload["template"]}})
    same = PromptBuilder(built["bm25"], k=5).demos_for(task)
    assert any(d.payload["template"] == doc.payload["template"] for d in same)
    other = PromptBuilder(built["bm25"], k=5, other_templates=True).demos_for(task)
    assert len(other) == 5
    assert all(d.payload["template"] != doc.payload["template"] for d in other)


def test_demos_come_from_offered_tools_only(built, documents):
    task = _task(documents).model_copy(update={"tools": ["home_search"], "tool": "multi_tool"})
    assert PromptBuilder(built["bm25"], k=3).demos_for(task)
    other = Task(id="x", tool="relevance", tools=["some_other_tool"], query=documents[0].text, labels=[[]])
    assert PromptBuilder(built["bm25"], k=3).demos_for(other) == []


def test_completion_prompt_is_the_toolbench_scaffold(built, documents):
    task = _task(documents, 3)
    prompt = PromptBuilder(built["bm25"], k=2, system_prompt=DEFAULT_SYSTEM_PROMPT).completion(task)
    assert prompt.startswith(DEFAULT_SYSTEM_PROMPT)
    assert "I have the following set of API:" in prompt and "API.set_location(value: str)" in prompt
    assert prompt.count("Task: ") == 3 and prompt.endswith(f"Task: {task.query}\nActions:\n")
    no_demos = PromptBuilder(k=0).completion(task)
    assert "examples" not in no_demos and no_demos.count("Task: ") == 1


def test_chat_prompt_has_tools_and_well_formed_demo_turns(built, documents):
    task = _task(documents, 4)
    messages, tools = PromptBuilder(built["bm25"], k=2, system_prompt="S").chat(task)
    assert messages[0] == {"role": "system", "content": "S"} and messages[-1] == {
        "role": "user",
        "content": task.query,
    }
    assert {t["function"]["name"] for t in tools} >= {"set_location", "search"}
    calls = [m for m in messages if m["role"] == "assistant" and "tool_calls" in m]
    closing = [m for m in messages if m["role"] == "assistant" and "tool_calls" not in m]
    answered = [m["tool_call_id"] for m in messages if m["role"] == "tool"]
    assert len(calls) == 2 and answered == [c["id"] for m in calls for c in m["tool_calls"]]
    assert len(closing) == 2 and all(m["content"] for m in closing)  # each demo ends with a reply
    assert all(isinstance(c["function"]["arguments"], dict) for m in calls for c in m["tool_calls"])
    roles = [m["role"] for m in messages if m["role"] in ("user", "assistant") and "tool_calls" not in m]
    assert roles == ["user", "assistant"] * 2 + ["user"]  # user and assistant turns alternate


def test_recall_counts_function_set_matches(built, documents):
    doc = documents[0]
    labels = [[{"name": name, "arguments": {}} for name in doc.payload["functions"]]]
    task = Task(id="t", tool="home_search", query=doc.text + " please", labels=labels)
    assert recall_at_k(built["bm25"], [task], k=3) == {"home_search": 1.0, "macro": 1.0}
    wrong = Task.model_validate({**task.model_dump(), "labels": [[{"name": "teleport", "arguments": {}}]]})
    assert recall_at_k(built["bm25"], [wrong], k=3)["home_search"] == 0.0


def test_dense_queries_run_on_one_torch_thread_and_leave_torch_as_it_was(built):
    import torch

    from toolbench.retriever.dense import torch_threads

    dense = built["dense"]
    assert dense.query_threads == 1
    threads = torch.get_num_threads()
    seen = []
    original = dense.encode_query

    def spy(query):
        seen.append(torch.get_num_threads())
        return original(query)

    dense.encode_query = spy
    try:
        one = dense.scores(QUERIES[0])
        assert seen == [1] and torch.get_num_threads() == threads
        dense.query_threads = None  # torch's own setting: the same scores (up to float rounding)
        assert abs(dense.scores(QUERIES[0]) - one).max() < 1e-5 and seen[-1] == threads
    finally:
        dense.encode_query, dense.query_threads = original, 1
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == threads
