"""`toolbench serve` over real HTTP: the tiny model behind uvicorn, talked to with the real openai
client. The server must give the library's text, OpenAI's shapes, and OpenAI-style errors, serve
concurrent requests in batches with the same text as one at a time, and bound its queue and the
time a request may take."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn

from toolbench.app import server as server_module
from toolbench.app.server import (
    BatchScheduler,
    ChatMessage,
    assistant_message,
    bind_socket,
    create_app,
    template_messages,
)
from toolbench.core.generation import GenerationParams, LocalModel, load_local_model
from toolbench.foundation.errors import UserError

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


@contextmanager
def running(app) -> Iterator[str]:
    """`app` behind uvicorn on a free port, until the block ends; yields its base URL."""
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
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def app(tiny_model_dir: Path):
    return create_app(
        str(tiny_model_dir), max_request_bytes=BODY_LIMIT, max_tokens_limit=TOKENS_LIMIT, model_name=NAME
    )


@pytest.fixture(scope="module")
def base_url(app) -> Iterator[str]:
    with running(app) as url:
        yield url


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


def test_concurrent_sampled_requests_agree(client):
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
    ids = [c["id"] for c in calls]
    assert len(set(ids)) == 2 and all(len(i) == 9 and i.isalnum() for i in ids)  # valid for every template
    assert {c["type"] for c in calls} == {"function"}
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


@pytest.mark.parametrize(
    "text",
    [
        '<|python_tag|>{"name": "search", "parameters": {"city": "Austin"}}; {"name": "count", "parameters": {"beds": 2}}',
        '[TOOL_CALLS] [{"name": "search", "arguments": {"city": "Austin"}}, {"name": "count", "arguments": {"beds": 2}}]',
        '[search(city="Austin"), count(beds=2)]',
    ],
)
def test_every_familys_native_calls_become_tool_calls(text):
    message, finish = assistant_message(text, "stop", True)
    assert finish == "tool_calls" and message["content"] is None
    calls = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message["tool_calls"]]
    assert calls == [("search", {"city": "Austin"}), ("count", {"beds": 2})]


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


# --- concurrency: batching, the queue bound, timeouts -----------------------------------------------


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@contextmanager
def model_held() -> Iterator[None]:
    """Stall the worker at the model (it waits for the process-wide generation lock before it
    renders or generates), so that requests pile up in the queue meanwhile."""
    server_module._GENERATION_LOCK.acquire()
    try:
        yield
    finally:
        server_module._GENERATION_LOCK.release()


def completion_body(prompt: str, **overrides) -> dict:
    return {"model": NAME, "prompt": prompt, "max_tokens": 16, "temperature": 0, **overrides}


def test_concurrent_greedy_requests_are_batched_and_equal_unbatched_answers(app, base_url, model, home_tasks):
    """Requests that arrive while the model is busy are generated together, one batch per set of
    settings, and each answer is the text, finish reason and usage of that prompt generated alone."""
    scheduler: BatchScheduler = app.state.scheduler
    before = dict(scheduler.batch_sizes)
    # Prompts of 3 to ~60 tokens (so the batch is left-padded), two kinds of settings.
    prompts = [task.query[: 10 + 17 * i] for i, task in enumerate(home_tasks[:13])]
    settings = [{}, {"stop": [" a", "zz"]}]
    bodies = [completion_body(prompt, **settings[i % 2]) for i, prompt in enumerate(prompts)]

    def post(body: dict) -> httpx.Response:
        return httpx.post(f"{base_url}/v1/completions", json=body, timeout=120)

    with ThreadPoolExecutor(len(bodies)) as pool:
        with model_held():
            futures = [pool.submit(post, bodies[0])]
            wait_for(lambda: scheduler.stats()["active"] == 1, "the worker to take the first request")
            futures += [pool.submit(post, body) for body in bodies[1:]]
            wait_for(lambda: scheduler.stats()["waiting"] == len(bodies) - 1, "the others to queue")
        answers = [future.result() for future in futures]

    sizes = {size: count - before.get(size, 0) for size, count in scheduler.batch_sizes.items()}
    # The first alone (it was taken before the others came), then one batch per kind of settings.
    assert sorted(size for size, count in sizes.items() for _ in range(count)) == [1, 6, 6]
    health = httpx.get(f"{base_url}/health").json()
    assert health["status"] == "ok" and health["batch_sizes"]["6"] >= 2 and health["waiting"] == 0
    for body, answer in zip(bodies, answers, strict=True):
        assert answer.status_code == 200, answer.text
        params = GenerationParams(max_new_tokens=16, stop=tuple(body.get("stop", ())))
        alone = model.generate([body["prompt"]], params, batch_size=1)[0]
        choice, usage = answer.json()["choices"][0], answer.json()["usage"]
        assert choice["text"] == alone.text, body["prompt"]
        assert choice["finish_reason"] == alone.finish_reason
        assert (usage["prompt_tokens"], usage["completion_tokens"]) == (
            alone.prompt_tokens,
            alone.completion_tokens,
        )
    assert len({answer.json()["choices"][0]["text"] for answer in answers}) > 1  # not one text for all


def test_batched_generation_equals_one_at_a_time_in_the_library(model, home_tasks):
    """The property the server's batching rests on, over more prompts than the HTTP test."""
    prompts = [
        model.render_chat([{"role": "user", "content": t.query[: 5 + 9 * i]}])
        for i, t in enumerate(home_tasks[:24])
    ]
    params = GenerationParams(max_new_tokens=24)
    batched = model.generate(prompts, params, batch_size=len(prompts))
    alone = [model.generate([prompt], params, batch_size=1)[0] for prompt in prompts]
    assert [(c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens) for c in batched] == [
        (c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens) for c in alone
    ]


def test_requests_beyond_the_queue_bound_get_503_at_once(tiny_model_dir):
    small = create_app(str(tiny_model_dir), model_name=NAME, max_batch=1, max_queue=2)
    scheduler: BatchScheduler = small.state.scheduler
    body = completion_body("Homes in Austin", max_tokens=4)
    with running(small) as url, ThreadPoolExecutor(6) as pool:

        def post() -> httpx.Response:
            return httpx.post(f"{url}/v1/completions", json=body, timeout=120)

        with model_held():
            first = pool.submit(post)
            wait_for(lambda: scheduler.stats()["active"] == 1, "the worker to take the first request")
            rest = [pool.submit(post) for _ in range(5)]
            # Two wait in the queue; three are refused while the model is still busy.
            wait_for(lambda: sum(future.done() for future in rest) == 3, "three refusals")
            assert scheduler.stats()["waiting"] == 2 and scheduler.rejected == 3
        answers = [first.result()] + [future.result() for future in rest]
    assert sorted(answer.status_code for answer in answers) == [200, 200, 200, 503, 503, 503]
    for answer in answers:
        if answer.status_code == 503:
            error = assert_openai_error(answer, 503, "busy", "2 requests")
            assert error["type"] == "server_error" and error["code"] == "server_overloaded"
            assert answer.headers["retry-after"] == "1"


def test_a_request_past_its_timeout_gets_504_and_is_never_generated(tiny_model_dir):
    quick = create_app(str(tiny_model_dir), model_name=NAME, request_timeout=0.5)
    scheduler: BatchScheduler = quick.state.scheduler
    with running(quick) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=30)
        with model_held():
            started = time.monotonic()
            late = httpx.post(f"{url}/v1/completions", json=completion_body("Homes"), timeout=30)
            waited = time.monotonic() - started
            with pytest.raises(openai.InternalServerError) as raised:
                client.completions.create(**completion_body("Homes"))
        error = assert_openai_error(late, 504, "0.5 s")
        assert error["code"] == "timeout" and error["type"] == "server_error"
        assert 0.4 < waited < 10
        assert raised.value.status_code == 504
        wait_for(lambda: scheduler.stats()["dropped"] == 2, "the worker to drop both requests")
        assert scheduler.timed_out == 2 and not scheduler.batch_sizes  # neither was generated
        assert client.completions.create(**completion_body("Homes", max_tokens=2)).choices[0].text is not None


def test_a_client_that_leaves_is_dropped_from_the_queue(tiny_model_dir):
    patient = create_app(str(tiny_model_dir), model_name=NAME, request_timeout=60)
    scheduler: BatchScheduler = patient.state.scheduler
    with running(patient) as url:
        with model_held():
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(f"{url}/v1/completions", json=completion_body("Homes"), timeout=0.3)
            wait_for(lambda: scheduler.disconnected == 1, "the server to see the client go")  # (every second)
        wait_for(lambda: scheduler.stats()["dropped"] == 1, "the worker to drop the request")
        assert not scheduler.batch_sizes and scheduler.stats()["active"] == 0


def test_a_chat_template_that_raises_is_a_one_line_400_with_its_own_message(tiny_model_dir, tmp_path):
    folder = tmp_path / "no-system-model"
    shutil.copytree(tiny_model_dir, folder)
    template = folder / "chat_template.jinja"
    template.write_text(
        "{%- if messages[0].role == 'system' %}"
        "{{ raise_exception('System messages are not supported.\\n  Put the instructions in the user turn.') }}"
        "{%- endif %}" + template.read_text()
    )
    strict = create_app(str(folder), model_name=NAME)
    with running(strict) as url:
        refused = httpx.post(f"{url}/v1/chat/completions", json=chat_body(), timeout=60)
        error = assert_openai_error(
            refused, 400, "System messages are not supported. Put the instructions in the user turn."
        )
        assert "\n" not in error["message"] and "chat template" in error["message"]
        assert str(tmp_path) not in error["message"]  # the served name, not the folder it came from
        assert error["param"] == "messages" and error["type"] == "invalid_request_error"
        accepted = httpx.post(f"{url}/v1/chat/completions", json=chat_body(messages=MESSAGES[1:]), timeout=60)
        assert accepted.status_code == 200, accepted.text


def test_bad_limits_and_ports_are_refused_before_any_model_loads(tmp_path):
    from toolbench.app.server import run_server

    missing = str(tmp_path / "no-such-model")  # loading it would be a different error
    for limits, word in [
        ({"max_batch": 0}, "max_batch"),
        ({"max_queue": -1}, "max_queue"),
        ({"max_batch_tokens": 0}, "max_batch_tokens"),
        ({"request_timeout": 0}, "request_timeout"),
        ({"request_timeout": float("nan")}, "request_timeout"),
        ({"max_tokens_limit": 0}, "max_tokens_limit"),
        ({"max_request_bytes": 0}, "max_request_bytes"),
    ]:
        with pytest.raises(UserError, match=word):
            create_app(missing, **limits)
        with pytest.raises(UserError, match=word):
            run_server(missing, port=0, **limits)
    for port in (99999, -1):
        with pytest.raises(UserError, match="port must be between 0 and 65535"):
            run_server(missing, port=port)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"cannot serve on 127.0.0.1:{port}"):
            bind_socket("127.0.0.1", port)
    with pytest.raises(UserError, match="cannot serve on host"):
        bind_socket("no such host.invalid", 8000)


def test_hostile_text_in_requests_gets_an_answer_or_an_openai_error_never_a_crash(base_url):
    """Lone surrogates (valid JSON escapes), NUL and control characters anywhere in a request."""
    url = f"{base_url}/v1/chat/completions"
    hostile = ["\udcff", "a\x00b", "\ud83d", "\x1b[2J\u2028", "x" * 5000]
    for text in hostile:
        bodies = [
            chat_body(messages=[{"role": "user", "content": text}]),
            chat_body(messages=[{"role": "user", "content": "hi"}], stop=[text]),
            chat_body(messages=[{"role": text, "content": "hi"}]),
            chat_body(model=text),
            {"model": NAME, "prompt": text, "max_tokens": 2},
        ]
        for body in bodies:
            data = json.dumps(body).encode()  # ASCII, with \udcff escapes, as Python clients send it
            path = url if "messages" in body else f"{base_url}/v1/completions"
            answer = httpx.post(path, content=data, headers={"content-type": "application/json"}, timeout=60)
            assert answer.status_code in (200, 400, 404), (text, body, answer.text)
            if answer.status_code != 200:
                assert_openai_error(answer, answer.status_code)


# --- the scheduler alone, with a stand-in model -----------------------------------------------------


class StandInModel:
    """Counts words as tokens, answers each prompt in capitals, fails any batch holding "boom"."""

    context_length = 4000

    def __init__(self) -> None:
        self.batches: list[tuple[str, ...]] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, prompts: list[str], params: GenerationParams, batch_size: int = 8):
        from toolbench.core.generation import Completion

        assert batch_size == len(prompts)
        self.batches.append(tuple(prompts))
        if any("boom" in prompt for prompt in prompts):
            raise RuntimeError("boom")
        return [Completion(prompt.upper(), "stop", self.count_tokens(prompt), 1) for prompt in prompts]


class Connected:
    async def is_disconnected(self) -> bool:
        return False


def run_queued(scheduler: BatchScheduler, jobs: list[tuple[str, GenerationParams]]) -> list:
    """Submit `jobs` while the worker is held (the first is taken alone, the rest queue), then let
    it go; the completions, or the ApiErrors, in order."""

    async def main() -> list:
        def submit(prompt: str, settings: GenerationParams) -> asyncio.Task:
            return asyncio.create_task(scheduler.complete(Connected(), lambda: prompt, settings, "prompt"))

        async def until(condition: Callable[[], bool]) -> None:
            deadline = time.monotonic() + 20
            while not condition():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)

        with model_held():
            tasks = [submit(*jobs[0])]
            await until(lambda: scheduler.stats()["active"] == 1)
            tasks += [submit(*job) for job in jobs[1:]]
            await until(lambda: scheduler.stats()["waiting"] == len(jobs) - 1)
        return await asyncio.gather(*tasks, return_exceptions=True)

    return asyncio.run(main())


def test_the_scheduler_batches_same_greedy_settings_and_isolates_a_failing_request():
    model = StandInModel()
    scheduler = BatchScheduler(model, max_batch=3, max_queue=20)  # type: ignore[arg-type]
    greedy, stopping = GenerationParams(8), GenerationParams(8, stop=("x",))
    sampled = GenerationParams(8, temperature=0.5)
    long_prompt = " ".join(["w"] * 3995)  # 3995 + 8 new tokens > the context of 4000: alone
    jobs = [
        ("a", greedy),
        ("b c", greedy),
        ("d", stopping),
        ("e", sampled),
        ("f boom", greedy),
        ("g", greedy),
        ("h", sampled),
        ("i", stopping),
        (long_prompt, greedy),
        ("j", greedy),
    ]
    results = run_queued(scheduler, jobs)
    assert model.batches == [
        ("a",),
        ("g", "b c", "f boom"),  # the oldest waiting, with up to 2 more of the same settings, shortest first
        ("g",),  # the batch failed: each alone, so only "f boom" fails
        ("b c",),
        ("f boom",),
        ("d", "i"),
        ("e",),  # sampled requests run alone
        ("h",),
        (long_prompt,),  # its budget would shrink in a wider batch
        ("j",),
    ]
    for (prompt, _), result in zip(jobs, results, strict=True):
        if prompt == "f boom":
            assert isinstance(result, server_module.ApiError) and result.status == 500
            assert result.message == "generation failed: RuntimeError"
        else:
            assert result.text == prompt.upper()
    assert dict(scheduler.batch_sizes) == {1: 7, 2: 1}


def test_a_batch_holds_at_most_max_batch_tokens_padded_tokens():
    model = StandInModel()
    scheduler = BatchScheduler(model, max_batch=8, max_batch_tokens=10)  # type: ignore[arg-type]
    greedy = GenerationParams(4)
    run_queued(scheduler, [("first", greedy), ("a b c d", greedy), ("e f", greedy), ("g h i j", greedy)])
    # Shortest first: 2 rows padded to 4 tokens fit in 10; a third would make 12.
    assert model.batches == [("first",), ("e f", "a b c d"), ("g h i j",)]


def test_a_long_prompt_is_not_batched_with_short_ones():
    """Every row is padded to the longest: 300 tokens among 2-token prompts would be 97% padding."""
    model = StandInModel()
    scheduler = BatchScheduler(model, max_batch=8)  # type: ignore[arg-type]
    greedy, long_prompt = GenerationParams(4), " ".join(["w"] * 300)
    jobs = [("first", greedy), ("a b", greedy), (long_prompt, greedy), ("c d", greedy), ("e", greedy)]
    results = run_queued(scheduler, jobs)
    assert model.batches == [("first",), ("e", "a b", "c d"), (long_prompt,)]
    assert [result.text for result in results] == [prompt.upper() for prompt, _ in jobs]


def test_on_cpu_long_prompts_batch_only_with_prompts_of_their_length():
    """Past CPU_PADDED_PROMPT_TOKENS a padded CPU batch loses PyTorch's fused attention: no padding."""
    model = StandInModel()
    scheduler = BatchScheduler(model, max_batch=8, max_batch_tokens=100_000)  # type: ignore[arg-type]
    greedy = GenerationParams(4)
    same, longer = " ".join(["s"] * 1100), " ".join(["l"] * 1101)
    run_queued(scheduler, [("first", greedy), (same, greedy), (longer, greedy), (same + " ", greedy)])
    assert model.batches == [("first",), (same, same + " "), (longer,)]
