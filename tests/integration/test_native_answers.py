"""Gold answers written the way each model family writes tool calls score 100% on the frozen test
tasks with the default reader (`auto`), and a wrong call on a relevance task scores 0 in every
form: the reader never mistakes a call it cannot place for "no call"."""

from __future__ import annotations

import json

import pytest

from toolbench.core.registry import formatter, get_tool, tool_names
from toolbench.core.score import Scorer
from toolbench.core.task_files import load_tasks
from toolbench.foundation.records import Call, Program, Task
from toolbench.pipelines.categories import CATEGORIES, categories_dir
from toolbench.pipelines.results import score_text

pytestmark = pytest.mark.integration

NATIVE = ("json", "python", "hermes", "chat-native", "llama-json", "pythonic", "mistral")


def all_tasks() -> list[Task]:
    files = [get_tool(name).tasks_file() for name in tool_names()]
    files += [categories_dir() / f"{name}.jsonl" for name in CATEGORIES]
    return [numbered.task for path in files for numbered in load_tasks(path)]


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    return all_tasks()


def family_variants(task: Task, program: Program) -> dict[str, str]:
    """The forms real models emit, beyond each reader's own rendering: Llama's `<|python_tag|>`
    prefix, `; `-separated calls and `<|eom_id|>` end, Mistral's space after the control token,
    Qwen's block per line, an OpenAI `tool_calls` object and calls in a Markdown fence."""
    tools = tuple(task.offered_tools)
    texts = {fmt: formatter(tools, fmt).render(program) for fmt in NATIVE}
    if program:
        llama = [json.dumps({"name": c.name, "parameters": c.arguments}) for c in program]
        texts["llama-python-tag"] = "<|python_tag|>" + "; ".join(llama) + "<|eom_id|>"
        texts["llama-plain"] = "; ".join(llama)
        payload = [{"name": c.name, "arguments": c.arguments} for c in program]
        texts["mistral-space"] = "[TOOL_CALLS] " + json.dumps(payload)
        texts["openai-object"] = json.dumps(
            {
                "tool_calls": [
                    {"type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                    for c in program
                ]
            }
        )
        texts["fenced-json"] = "Here you go:\n```json\n" + json.dumps(payload) + "\n```"
        texts["qwen-lines"] = "\n".join(
            f"<tool_call>\n{json.dumps({'name': c.name, 'arguments': c.arguments})}\n</tool_call>"
            for c in program
        )
    return texts


def test_gold_answers_in_every_family_form_score_100_percent_with_auto(tasks):
    scorer = Scorer()
    failures: list[str] = []
    counted = 0
    for task in tasks:
        for form, text in family_variants(task, task.labels[0]).items():
            score = score_text(task, text, "auto", scorer)
            counted += 1
            if not score.success:
                failures.append(f"{task.id} [{form}] {score.error_type}: {text[:120]!r}")
    assert counted > 10_000 and not failures, f"{len(failures)} failures, e.g. {failures[:5]}"


def test_a_wrong_call_on_a_relevance_task_scores_zero_in_every_form(tasks):
    relevance = [task for task in tasks if all(len(label) == 0 for label in task.labels)]
    assert len(relevance) >= 50
    scorer = Scorer()
    for task in relevance:
        specs = formatter(tuple(task.offered_tools), "json").context.specs
        name = sorted(specs)[0]
        wrong = Program([Call.trusted(name, {})])
        for form, text in family_variants(task, wrong).items():
            score = score_text(task, text, "auto", scorer)
            assert not score.success and (score.n_calls == 1 or score.error_type.startswith("parse:")), (
                task.id,
                form,
                text,
                score.error_type,
            )
        polite = "None of the functions offered can do that, so I made no call."
        assert score_text(task, polite, "auto", scorer).success
