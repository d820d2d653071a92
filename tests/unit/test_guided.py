"""Guided decoding: the grammar never forbids a right answer, forbids the failures small models
make, and a real (tiny, random) model decoded under it writes only answers that parse."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolbench.core.chat_messages import openai_tools
from toolbench.core.guided import CallGuide, accepts, call_schema, loosen
from toolbench.core.registry import spec_index
from toolbench.core.task_files import load_tasks, tool_task_files
from toolbench.pipelines.categories import categories_dir
from toolbench.retriever.prompt import PromptBuilder

BUILDER = PromptBuilder(None, 0, "default")


def gold_text(task, hermes: bool = False) -> str:
    """A task's first right answer as the toolbench chat template writes it (Hermes: newlines)."""
    open_, close = ("<tool_call>\n", "\n</tool_call>\n") if hermes else ("<tool_call>", "</tool_call>\n")
    return "".join(
        open_ + json.dumps({"name": call.name, "arguments": call.arguments}) + close
        for call in task.labels[0]
    )


def chat_tools(task) -> list[dict]:
    return BUILDER.chat(task)[1]


def frozen_tasks(per_file: int):
    files = [path for task_set in ("test", "indist") for path in tool_task_files(task_set).values()]
    files += sorted(categories_dir().glob("*.jsonl"))
    for path in files:
        for numbered in load_tasks(path)[:per_file]:
            if numbered.task.category != "episode" and numbered.task.labels[0]:
                yield numbered.task


def test_every_tools_right_answers_are_allowed():
    """The guide must never forbid a right answer: the first answers of every frozen file (every
    tool, both task sets, every category), in toolbench's and in Hermes' layout."""
    tasks = list(frozen_tasks(per_file=4))
    assert len(tasks) >= 60
    for task in tasks:
        tools = chat_tools(task)
        assert accepts(tools, gold_text(task)), task.id
        assert accepts(tools, gold_text(task, hermes=True), require_call=True), task.id


def offered(tool: str) -> list[dict]:
    return openai_tools(list(spec_index((tool,)).specs.values()))


WEATHER = offered("weather")
CALL = '<tool_call>{"name": "forecast", "arguments": {"city": "Paris", "cnt": 2}}</tool_call>\n'


@pytest.mark.parametrize(
    ("answer", "allowed"),
    [
        (CALL, True),
        (CALL + CALL, True),  # parallel calls: one block after another
        ("None of these tools can book a table.", True),  # the "no tool fits" reply
        (
            '<tool_call>{"name": "forecast", "arguments": {"city": "Paris", "cnt": 2 101.35}}</tool_call>',
            False,
        ),
        ('<tool_call>{"name": "forecast", "arguments": {"city": "Paris", "cnt": "2"}}</tool_call>', False),
        ('<tool_call>{"name": "forcast", "arguments": {"city": "Paris"}}</tool_call>', False),
        ('<tool_call>{"name": "forecast", "arguments": {"town": "Paris"}}</tool_call>', False),
        (
            '<tool_call>{"name": "forecast", "arguments": {"city": "Paris", "units": "kelvin"}}</tool_call>',
            False,
        ),
        ('<tool_call>{"name": "forecast", "arguments": {"city": "Paris"}', False),  # cut off
        ('<tool_call>{"name": "forecast"}</tool_call>', False),  # arguments are required
        ("Sure: <tool_call>", False),  # text, then a call
    ],
)
def test_the_failures_small_models_make_are_forbidden(answer, allowed):
    assert accepts(WEATHER, answer) is allowed


def test_required_keys_and_type_unions():
    spreadsheet = offered("spreadsheet")
    # the chat tools drop null from ["string", "number", "null"]; the guide gives it back
    row = '<tool_call>{"name": "append_row", "arguments": {"values": ["Total", null, "=SUM(C2:C9)"]}}</tool_call>'
    assert accepts(spreadsheet, row)
    assert not accepts(spreadsheet, '<tool_call>{"name": "append_row", "arguments": {}}</tool_call>')
    assert not accepts(WEATHER, "plain text", require_call=True)
    cut = '<tool_call>{"name": "forecast", "arguments": {"city": "Par'
    assert accepts(WEATHER, cut, whole=False) and not accepts(WEATHER, cut)
    assert not accepts(WEATHER, cut.replace("forecast", "forcast"), whole=False)


def test_loosen_keeps_property_names_and_drops_only_schema_words():
    schema = {
        "type": "object",
        "properties": {"format": {"type": "string", "pattern": "^a"}, "n": {"type": ["integer", "null"]}},
    }
    loose = loosen(schema)
    assert loose["properties"]["format"] == {"type": "string"}
    assert loose["properties"]["n"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert call_schema([{"function": {"name": "f"}}])["properties"]["name"]["enum"] == ["f"]


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=24)


@settings(max_examples=60, deadline=None)
@given(city=TEXT, lang=st.sampled_from(["en", "de", "ja"]), cnt=st.integers(1, 40), ascii_only=st.booleans())
def test_any_string_value_json_can_write_is_allowed(city, lang, cnt, ascii_only):
    """Quotes, backslashes, control characters, non-Latin text: whatever json writes for a string
    value (escaped or not) the guide lets through."""
    arguments = {"city": city, "lang": lang, "cnt": cnt}
    text = json.dumps({"name": "forecast", "arguments": arguments}, ensure_ascii=ascii_only)
    assert accepts(WEATHER, f"<tool_call>{text}</tool_call>")


SET_MODE = [
    {
        "type": "function",
        "function": {
            "name": "set_mode",
            "description": "Set the mode.",
            "parameters": {
                "type": "object",
                "properties": {"mode": {"type": "string", "enum": ["eco", "fast"]}},
                "required": ["mode"],
            },
        },
    }
]


def test_a_random_model_guided_writes_only_answers_that_parse(tiny_model_dir):
    """A tiny random Llama, decoded greedily: unguided it writes no call; guided (calls required)
    every answer is a call of the offered function with an allowed value, or, where the token
    budget ran out, the start of one."""
    import torch

    from toolbench.core.generation import GenerationParams, load_local_model

    model = load_local_model(str(tiny_model_dir))
    tasks = [n.task for n in load_tasks(tool_task_files("test")["weather"])[:4]]
    prompts = [model.render_chat(*BUILDER.chat(task)) for task in tasks]
    free = model.generate(prompts, GenerationParams(max_new_tokens=60), batch_size=4)
    assert not any("<tool_call>" in answer.text for answer in free)

    guide = CallGuide(model.tokenizer, model.end_ids)
    batch = model.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        output = model.model.generate(
            **batch,
            max_new_tokens=300,
            do_sample=False,
            pad_token_id=model.tokenizer.pad_token_id,
            prefix_allowed_tokens_fn=guide.prefix_allowed_tokens_fn([SET_MODE] * 4, require_call=True),
        )
    finished = 0
    for row in output[:, batch["input_ids"].shape[1] :]:
        ids = row.tolist()
        end = next((n for n, i in enumerate(ids) if i in model.end_ids), None)
        text = model.decode(ids[:end])
        assert accepts(SET_MODE, text, require_call=True, whole=False), text
        if end is not None:
            finished += 1
            blocks = [json.loads(b.split("</tool_call>")[0]) for b in text.split("<tool_call>")[1:]]
            assert blocks and all(
                b["name"] == "set_mode" and b["arguments"]["mode"] in ("eco", "fast") for b in blocks
            )
    assert finished >= 1

    # the hf backend's path: each prompt guided by its own tools (text or calls, never broken)
    tools = [chat_tools(task) for task in tasks]
    guided = model.generate(prompts, GenerationParams(max_new_tokens=60), batch_size=4, guides=tools)
    for answer, offered in zip(guided, tools, strict=True):
        assert accepts(offered, answer.text, whole=False), answer.text
        if answer.finish_reason == "stop":
            assert accepts(offered, answer.text)
