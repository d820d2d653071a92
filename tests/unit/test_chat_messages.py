"""Chat messages that real templates accept: demos as complete turns, ids, names, objects, unions,
and parallel calls split only where a template refuses them (found by rendering)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from toolbench.core.chat_messages import (
    call_id,
    demo_turns,
    has_parallel,
    openai_tools,
    split_parallel,
    template_messages,
    template_safe_schema,
    wire_messages,
)
from toolbench.core.registry import get_tool
from toolbench.foundation.errors import UserError
from toolbench.foundation.records import Call

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TWO = [
    Call.trusted("current_weather", {"city": "Paris"}),
    Call.trusted("forecast", {"city": "Rome", "cnt": 3}),
]


def test_call_ids_are_nine_alphanumerics_and_deterministic():
    ids = {call_id("task-1", i) for i in range(50)}
    assert len(ids) == 50 and all(len(i) == 9 and i.isalnum() for i in ids)
    assert call_id("task-1", 3) == call_id("task-1", 3) != call_id("task-2", 3)


def test_a_demo_is_a_complete_exchange_with_objects_names_and_a_closing_reply():
    turns = demo_turns("weather in Paris and Rome", TWO, key="demo-7")
    assert [m["role"] for m in turns] == ["user", "assistant", "tool", "tool", "assistant"]
    calls = turns[1]["tool_calls"]
    assert [c["function"]["arguments"] for c in calls] == [{"city": "Paris"}, {"city": "Rome", "cnt": 3}]
    assert [t["tool_call_id"] for t in turns[2:4]] == [c["id"] for c in calls]
    assert [t["name"] for t in turns[2:4]] == ["current_weather", "forecast"]
    assert turns[1]["content"] == "" and turns[-1]["content"] and "tool_calls" not in turns[-1]
    no_call = demo_turns("sing me a song", [], key="x")
    assert [m["role"] for m in no_call] == ["user", "assistant"] and "tool_calls" not in no_call[1]


def test_split_parallel_interleaves_each_call_with_its_own_result():
    turns = demo_turns("q", TWO, key="k")
    split = split_parallel(turns)
    assert [m["role"] for m in split] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert split[2]["tool_call_id"] == split[1]["tool_calls"][0]["id"]
    assert split[4]["tool_call_id"] == split[3]["tool_calls"][0]["id"]
    assert not has_parallel(split) and has_parallel(turns)
    assert split_parallel(split) == split  # nothing left to split


def test_wire_and_template_forms_convert_arguments_both_ways():
    turns = demo_turns("q", TWO, key="k")
    wire = wire_messages(turns)
    assert json.loads(wire[1]["tool_calls"][1]["function"]["arguments"]) == {"city": "Rome", "cnt": 3}
    assert turns[1]["tool_calls"][1]["function"]["arguments"] == {"city": "Rome", "cnt": 3}  # not mutated
    assert template_messages(wire) == turns
    odd = [{"role": "assistant", "content": "x", "tool_calls": None}]
    assert template_messages(odd) == [{"role": "assistant", "content": "x"}]


def test_template_safe_schema_drops_null_from_unions_and_keeps_the_rest():
    schema = {
        "type": "object",
        "properties": {
            "value": {"type": ["string", "number", "null"], "description": "d"},
            "end": {"anyOf": [{"type": "integer", "minimum": 2}, {"type": "null"}], "default": None},
            "both": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "only_null": {"type": ["null"]},
        },
    }
    safe = template_safe_schema(schema)["properties"]
    assert safe["value"] == {"type": ["string", "number"], "description": "d"}
    assert safe["end"] == {"type": "integer", "minimum": 2, "default": None}
    assert safe["both"] == schema["properties"]["both"] and safe["only_null"] == {"type": ["null"]}
    every_tool = json.dumps(
        [openai_tools(list(get_tool(n).specs.values())) for n in ("spreadsheet", "cat_api")]
    )
    assert '"null"' not in every_tool


# ------------------------------------------------------------ through a strict template
def strict_model(tiny_model_dir: Path, folder: Path, allow_parallel: bool) -> Path:
    from transformers import AutoTokenizer

    shutil.copytree(tiny_model_dir, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    template = (FIXTURES / "strict_chat_template.jinja").read_text()
    tokenizer.chat_template = template.replace("ALLOW_PARALLEL", "true" if allow_parallel else "false")
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def strict_models(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("strict")
    return {allow: strict_model(tiny_model_dir, root / f"parallel-{allow}", allow) for allow in (True, False)}


@pytest.mark.integration
@pytest.mark.parametrize("allow_parallel", [True, False])
def test_prompts_with_parallel_demos_render_through_a_strict_template(strict_models, allow_parallel):
    from toolbench.core.generation import LocalModel

    model = LocalModel(str(strict_models[allow_parallel]), device="cpu")
    assert model.allows_parallel_calls is allow_parallel
    system = {"role": "system", "content": "be brief"}
    messages = [system, *demo_turns("Paris and Rome", TWO, "d0"), *demo_turns("Oslo", TWO[:1], "d1")]
    messages.append({"role": "user", "content": "weather in Lima and Quito"})
    tools = openai_tools(
        list(get_tool("weather").specs.values()) + list(get_tool("spreadsheet").specs.values())
    )
    text = model.render_chat(messages, tools)
    blocks = text.count("<tool_call>")
    assert blocks == 3 and text.count('"arguments": {"city": "Rome", "cnt": 3}') == 1
    per_turn = text.split("<|assistant|>")
    assert max(turn.count("<tool_call>") for turn in per_turn) == (2 if allow_parallel else 1)
    assert "current_weather: " + '{"status": "ok"}' in text
    # the same conversation with the OpenAI wire form (string arguments) renders the same
    assert model.render_chat(wire_messages(messages), tools) == text


@pytest.mark.integration
def test_a_template_that_still_refuses_is_one_line_with_its_message(strict_models):
    from toolbench.core.generation import LocalModel

    model = LocalModel(str(strict_models[True]), device="cpu")
    bad = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    with pytest.raises(UserError, match="chat template refused.*roles must alternate"):
        model.render_chat(bad, None)


class TemplateServer:
    """Stands in for an OpenAI-compatible server whose chat template takes one call per message
    (vLLM with Llama 3.1's template, which cannot run here): it renders each request's messages
    with the strict fixture template and answers HTTP 400 with the template's message when that
    raises, as vLLM does."""

    fingerprint = "template-server"

    def __init__(self):
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message):
            raise ValueError(message)

        source = (FIXTURES / "strict_chat_template.jinja").read_text().replace("ALLOW_PARALLEL", "false")
        source = source.replace("{% generation %}", "").replace("{% endgeneration %}", "")
        env = ImmutableSandboxedEnvironment()
        env.globals["raise_exception"] = raise_exception
        self.template = env.from_string(source)
        self.asked = 0

    def generate(self, requests, params, on_done=None):
        from toolbench.core.backends import BackendResponse

        answers = []
        for i, request in enumerate(requests):
            self.asked += 1
            try:
                self.template.render(messages=template_messages(request.messages), tools=request.tools)
                answer = BackendResponse(text="ok")
            except ValueError as error:
                answer = BackendResponse(error=f"HTTP 400: {error}")
            if on_done:
                on_done(i, answer)
            answers.append(answer)
        return answers


def test_requests_a_server_refuses_for_parallel_demos_are_asked_again_split():
    from toolbench.core.backends import BackendParams, BackendRequest
    from toolbench.pipelines.evaluate import check_refusals, retry_one_call_per_turn

    parallel = [*demo_turns("Paris and Rome", TWO, "d0"), {"role": "user", "content": "Lima?"}]
    single = [*demo_turns("Oslo", TWO[:1], "d1"), {"role": "user", "content": "Lima?"}]
    requests = [BackendRequest(id=str(i), mode="chat", messages=m) for i, m in enumerate([parallel, single])]
    server, params = TemplateServer(), BackendParams()
    answers = server.generate(requests, params)
    assert answers[0].error and "one tool call per message" in answers[0].error and answers[1].text == "ok"
    fixed = retry_one_call_per_turn(server, requests, answers, params, cache=None)
    assert [a.text for a in fixed] == ["ok", "ok"] and server.asked == 3  # only the refused one again
    check_refusals("m", fixed)
    with pytest.raises(UserError, match=r"refused 2 of 2 requests.*HTTP 400: roles must alternate"):
        bad = [
            BackendRequest(id=str(i), mode="chat", messages=[{"role": "assistant", "content": "x"}])
            for i in range(2)
        ]
        check_refusals("m", server.generate(bad, params))
