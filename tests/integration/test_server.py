"""`toolbench serve` over real HTTP: the tiny model behind uvicorn, talked to with the real openai
client. The server must give the library's text, OpenAI's shapes, and OpenAI-style errors."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn

from toolbench.generation import GenerationParams, LocalModel, load_local_model
from toolbench.server import ChatMessage, assistant_message, create_app, template_messages

pytestmark = pytest.mark.integration

NAME = "tiny"
BODY_LIMIT = 200_000
TOKENS_LIMIT = 64
MESSAGES = [{"role": "system", "content": "You find homes."}, {"role": "user", "content": "Homes in Austin?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search homes.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> LocalModel:
    return load_local_model(str(tiny_model_dir))


@pytest.fixture(scope="module")
def base_url(tiny_model_dir: Path) -> Iterator[str]:
    app = create_app(
        str(tiny_model_dir), max_request_bytes=BODY_LIMIT, max_tokens_limit=TOKENS_LIMIT, model_name=NAME
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # the server takes this socket: no race for the port
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if server.started and httpx.get(f"{url}/v1/models").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0, timeout=30)


def library_text(model: LocalModel, prompt: str, **params) -> str:
    return model.generate([prompt], GenerationParams(**params))[0].text


def assert_openai_error(response: httpx.Response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and isinstance(error["type"], str)
    for word in words:
        assert word in error["message"], error
    return error


# --- values ------------------------------------------------------------------------------------


def test_models_lists_the_served_model(client):
    models = client.models.list()
    assert [m.id for m in models.data] == [NAME]
    assert client.models.retrieve(NAME).id == NAME


def test_greedy_chat_equals_the_library(client, model):
    answer = client.chat.completions.create(model=NAME, messages=MESSAGES, max_tokens=12, temperature=0)
    expected = model.generate([model.render_chat(MESSAGES)], GenerationParams(max_new_tokens=12))[0]
    choice = answer.choices[0]
    assert choice.message.content == expected.text and choice.message.tool_calls is None
    assert choice.finish_reason == expected.finish_reason
    assert answer.usage.prompt_tokens == expected.prompt_tokens
    assert answer.usage.completion_tokens == expected.completion_tokens
    assert answer.usage.total_tokens == expected.prompt_tokens + expected.completion_tokens
    assert answer.model == NAME and answer.object == "chat.completion"


def test_identical_requests_identical_answers_and_seeded_sampling_equals_the_library(client, model):
    request = dict(model=NAME, messages=MESSAGES, max_tokens=12, temperature=0.9, top_p=0.95, seed=5)
    first, second = (client.chat.completions.create(**request).choices[0].message.content for _ in range(2))
    assert first == second
    prompt = model.render_chat(MESSAGES)
    assert first == library_text(model, prompt, max_new_tokens=12, temperature=0.9, top_p=0.95, seed=5)


def test_concurrent_requests_are_serialised_and_agree(client):
    request = dict(model=NAME, messages=MESSAGES, max_tokens=8, temperature=0.7, seed=3)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: client.chat.completions.create(**request), range(4)))
    assert len({a.choices[0].message.content for a in answers}) == 1


def test_tools_are_rendered_into_the_prompt(client, model):
    answer = client.chat.completions.create(model=NAME, messages=MESSAGES, tools=TOOLS, max_tokens=6)
    prompt = model.render_chat(MESSAGES, TOOLS)
    assert '"name": "search"' in prompt
    assert answer.usage.prompt_tokens == model.count_tokens(prompt)
    expected = assistant_message(library_text(model, prompt, max_new_tokens=6), "length", True)[0]
    assert answer.choices[0].message.content == expected["content"]


def test_completion_works_and_honours_stop(client, model):
    prompt = "Homes in Austin under 500k"
    full = client.completions.create(model=NAME, prompt=prompt, max_tokens=24, temperature=0)
    text = full.choices[0].text
    assert text == library_text(model, prompt, max_new_tokens=24)
    assert full.object == "text_completion" and full.choices[0].finish_reason == "length"
    word = re.search(r"[A-Za-z]{2,}", text[3:])
    assert word, f"no stop candidate in {text!r}"
    stop = word.group()
    cut = client.completions.create(
        model=NAME, prompt=[prompt], max_tokens=24, temperature=0, stop=[stop, "zzzz"]
    )
    assert cut.choices[0].text == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].text == library_text(model, prompt, max_new_tokens=24, stop=(stop, "zzzz"))


def test_history_with_string_arguments_renders_as_dicts(client, model):
    history = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "search", "arguments": '{"city": "Austin"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_0", "content": '[{"id": 1}]'},
    ]
    answer = client.chat.completions.create(model=NAME, messages=history, tools=TOOLS, max_tokens=4)
    rendered = model.render_chat(template_messages_from(history), TOOLS)
    assert '<tool_call>{"name": "search", "arguments": {"city": "Austin"}}</tool_call>' in rendered
    assert answer.usage.prompt_tokens == model.count_tokens(rendered)


def template_messages_from(history: list[dict]) -> list[dict]:
    converted = template_messages([ChatMessage.model_validate(m) for m in history])
    assert converted[2]["tool_calls"][0]["function"]["arguments"] == {"city": "Austin"}
    assert converted[2]["content"] == "" and converted[3]["tool_call_id"] == "call_0"
    return converted


# --- turning text into the OpenAI message ------------------------------------------------------


def test_two_tool_call_blocks_become_tool_calls():
    text = (
        'Let me look.\n<tool_call>{"name": "search", "arguments": {"city": "Austin"}}</tool_call>\n'
        '<tool_call>{"name": "count", "arguments": {"beds": 2, "tags": ["pool"]}}</tool_call>'
    )
    message, finish = assistant_message(text, "stop", True)
    assert finish == "tool_calls" and message["content"] == "Let me look."
    calls = message["tool_calls"]
    assert [c["id"] for c in calls] == ["call_0", "call_1"] and {c["type"] for c in calls} == {"function"}
    assert [c["function"]["name"] for c in calls] == ["search", "count"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"city": "Austin"},
        {"beds": 2, "tags": ["pool"]},
    ]
    assert all(isinstance(c["function"]["arguments"], str) for c in calls)
    only_calls, _ = assistant_message(text.split("\n", 1)[1], "stop", True)
    assert only_calls["content"] is None and len(only_calls["tool_calls"]) == 2
    truncated, finish = assistant_message(text, "length", True)
    assert finish == "length" and len(truncated["tool_calls"]) == 2


def test_malformed_or_unparsed_text_stays_content():
    malformed = '<tool_call>{"name": "search", "arguments": {"city": </tool_call>'
    assert assistant_message(malformed, "stop", True) == ({"role": "assistant", "content": malformed}, "stop")
    call = '<tool_call>{"name": "search", "arguments": {}}</tool_call>'
    assert assistant_message(call, "stop", False) == ({"role": "assistant", "content": call}, "stop")
    assert assistant_message(" plain ", "length", True) == (
        {"role": "assistant", "content": " plain "},
        "length",
    )


def test_tool_choice_none_returns_text(client):
    answer = client.chat.completions.create(
        model=NAME, messages=MESSAGES, tools=TOOLS, tool_choice="none", max_tokens=4
    )
    assert answer.choices[0].message.tool_calls is None


# --- errors -------------------------------------------------------------------------------------


def chat_body(**overrides) -> dict:
    return {"model": NAME, "messages": MESSAGES, "max_tokens": 4, **overrides}


def test_oversized_body_is_413(base_url):
    big = chat_body(messages=[{"role": "user", "content": "x" * BODY_LIMIT}])
    assert_openai_error(httpx.post(f"{base_url}/v1/chat/completions", json=big), 413, "larger than")
    data = json.dumps(big).encode()  # chunked: no Content-Length, so the server must count
    chunked = httpx.post(
        f"{base_url}/v1/chat/completions",
        content=(data[i : i + 8192] for i in range(0, len(data), 8192)),
        headers={"content-type": "application/json"},
    )
    assert_openai_error(chunked, 413, "larger than")


def test_max_tokens_over_the_limit_is_400(client, base_url):
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=NAME, messages=MESSAGES, max_tokens=10**6)
    assert "max_tokens" in raised.value.message and raised.value.body["param"] == "max_tokens"
    zero = httpx.post(f"{base_url}/v1/completions", json={"model": NAME, "prompt": "a", "max_tokens": 0})
    assert assert_openai_error(zero, 400, "max_tokens")["param"] == "max_tokens"
    assert_openai_error(
        httpx.post(f"{base_url}/v1/chat/completions", json=chat_body(max_completion_tokens=10**6)),
        400,
        "max_tokens",
    )


def test_wrong_types_and_malformed_json_are_400_naming_the_field(base_url):
    url = f"{base_url}/v1/chat/completions"
    error = assert_openai_error(httpx.post(url, json=chat_body(messages="hello")), 400, "messages")
    assert error["type"] == "invalid_request_error" and error["param"] == "messages"
    error = assert_openai_error(httpx.post(url, json=chat_body(max_tokens="4")), 400, "max_tokens")
    error = assert_openai_error(
        httpx.post(url, json=chat_body(messages=[{"role": "user", "content": 5}])), 400, "messages[0].content"
    )
    assert error["param"] == "messages[0].content"
    assert_openai_error(httpx.post(url, json=chat_body(messages=[])), 400, "messages")
    assert_openai_error(
        httpx.post(
            url, content=b'{"model": "tiny", "messages": [', headers={"content-type": "application/json"}
        ),
        400,
        "malformed JSON",
    )
    bad_args = [
        *MESSAGES,
        {
            "role": "assistant",
            "tool_calls": [{"type": "function", "function": {"name": "s", "arguments": "{x"}}],
        },
    ]
    error = assert_openai_error(httpx.post(url, json=chat_body(messages=bad_args)), 400, "arguments")
    assert error["param"] == "messages[2].tool_calls[0].function.arguments"


def test_unsupported_requests_are_400(client, base_url):
    url = f"{base_url}/v1/chat/completions"
    assert_openai_error(httpx.post(url, json=chat_body(stream=True)), 400, "streaming is not supported")
    assert_openai_error(httpx.post(url, json=chat_body(n=2)), 400, "n=1")
    assert_openai_error(httpx.post(url, json=chat_body(tool_choice="required")), 400, "tool_choice")
    named = {"type": "function", "function": {"name": "nope"}}
    assert_openai_error(httpx.post(url, json=chat_body(tools=TOOLS, tool_choice=named)), 400, "nope")
    assert_openai_error(httpx.post(url, json=chat_body(stop=["a", "b", "c", "d", "e"])), 400, "stop")
    two = httpx.post(f"{base_url}/v1/completions", json={"model": NAME, "prompt": ["a", "b"]})
    assert_openai_error(two, 400, "prompt")
    with pytest.raises(openai.BadRequestError, match="streaming"):
        client.chat.completions.create(model=NAME, messages=MESSAGES, max_tokens=4, stream=True)


def test_prompt_longer_than_the_context_is_400(base_url, model):
    long_prompt = "Austin " * (model.context_length + 10)
    assert len(long_prompt) < BODY_LIMIT
    response = httpx.post(
        f"{base_url}/v1/completions", json={"model": NAME, "prompt": long_prompt, "max_tokens": 1}
    )
    assert assert_openai_error(response, 400, "context")["code"] == "context_length_exceeded"


def test_unknown_paths_and_models_are_404(client, base_url):
    assert_openai_error(httpx.get(f"{base_url}/v1/nothing"), 404)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=4)
