r"""Hostile model answers through evaluation's storage: an OpenAI-compatible endpoint that answers
with lone surrogates (`API.set_location('\udcff')`, valid JSON from Python's json.dumps, which once
stopped `eval` in the request cache and made `score` refuse the whole predictions file), NUL, huge
and deeply nested text. Every answer is cached, written, read back unchanged and scored (as a parse
error where it is not a program); a rerun is served from the cache with the same scores."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from toolbench.core.backends.base import BackendParams, BackendRequest, BackendResponse
from toolbench.core.cache import RequestCache, request_key
from toolbench.core.score import Scorer
from toolbench.foundation.io import iter_jsonl, read_records, write_jsonl
from toolbench.foundation.records import Prediction, Score
from toolbench.pipelines.evaluate import EvalConfig, run_eval, to_prediction
from toolbench.pipelines.results import load_predictions, score_all

pytestmark = pytest.mark.integration

HOSTILE = [
    "API.set_location('\udcff')",  # the answer from the issue
    "API.set_location('\udcff')\nAPI.search()",
    "API.set_location('Austin, TX\x00')\nAPI.search()",
    "\x00" * 64,
    "[" * 20_000 + "]" * 20_000,  # deeply nested JSON, as text
    'API.set_location("' + "{" * 3_000 + '")',
    "x" * 1_000_000,
    "\ud83d\ude00 \udc00 API.search()",
    "",
]
ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=300)


def joined(text: str) -> str:
    """The text as JSON holds it (a high surrogate followed by a low one is their character)."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


@pytest.fixture(scope="module")
def tasks(home_tasks):
    return home_tasks[: len(HOSTILE)]


@pytest.fixture(scope="module")
def task_file(tasks, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "tasks.jsonl"
    write_jsonl(path, tasks)
    return path


@pytest.fixture(scope="module")
def endpoint(tasks) -> Iterator[tuple[str, list[str]]]:
    """An OpenAI-compatible server whose model answers each task with its hostile text, written
    with Python's json.dumps as many servers do (lone surrogates as `\\udcff` escapes). Yields its
    URL and the list of prompts it was asked."""
    answers = dict(zip((task.query for task in tasks), HOSTILE, strict=True))
    asked: list[str] = []

    async def completions(request: Request) -> Response:
        body = await request.json()
        asked.append(body["prompt"])
        text = next(answer for query, answer in answers.items() if query in body["prompt"])
        payload = {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        return Response(json.dumps(payload), media_type="application/json")

    app = Starlette(routes=[Route("/v1/completions", completions, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the fake endpoint did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1", asked
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def test_hostile_answers_are_evaluated_cached_written_and_rescored(endpoint, task_file, tasks, tmp_path):
    url, asked = endpoint
    config = EvalConfig(
        model="openai:hostile",
        base_url=url,
        tasks=[str(task_file)],
        k_demos=0,
        cache_dir=str(tmp_path / "cache"),
        concurrency=4,
        retries=0,
    )
    run_eval(config, tmp_path / "first")
    predictions = read_records(tmp_path / "first" / "predictions.jsonl", Prediction)
    assert [p.id for p in predictions] == [t.id for t in tasks]
    assert [p.text for p in predictions] == [joined(text) for text in HOSTILE]  # JSON joins a pair
    scores = read_records(tmp_path / "first" / "scores.jsonl", Score)
    assert len(scores) == len(tasks) and not any(score.success for score in scores)

    # The rerun asks the endpoint nothing: every answer comes back from the cache, unchanged.
    assert len(asked) == len(tasks)
    run_eval(config, tmp_path / "again")
    assert len(asked) == len(tasks)
    for name in ("predictions.jsonl", "scores.jsonl"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "first" / name).read_bytes()

    # `score` reads the whole predictions file back and gives the same scores.
    loaded = load_predictions(tmp_path / "first" / "predictions.jsonl", {t.id for t in tasks})
    rescored = score_all(tasks, loaded, fmt="auto")
    assert [s.model_dump() for s in rescored] == [s.model_dump() for s in scores]


def test_a_predictions_file_written_by_json_dumps_is_scored_whole(tasks, tmp_path):
    """The issue's file: written with Python's json (lone surrogates as escapes), read by `score`."""
    path = tmp_path / "predictions.jsonl"
    path.write_text(
        "".join(json.dumps({"id": t.id, "text": text}) + "\n" for t, text in zip(tasks, HOSTILE, strict=True))
    )
    loaded = load_predictions(path, {t.id for t in tasks})
    assert [loaded[t.id].text for t in tasks] == [joined(text) for text in HOSTILE]
    assert len(score_all(tasks, loaded, fmt="auto")) == len(tasks)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=ANY_TEXT)
@example(text="API.set_location('\udcff')")
@example(text="API.set_location('a\udcffb')\nAPI.search()")
@example(text="API.set_location('\x00')\x00\ud800")  # NUL and a lone high surrogate together
def test_any_answer_survives_cache_storage_and_scoring(tasks, tmp_path_factory, text):
    """Arbitrary unicode (lone surrogates included) as a model's answer: cached and read back,
    scored, written as a prediction and a score, read back and scored again the same."""
    task = tasks[0]
    folder = tmp_path_factory.mktemp("any")
    cache = RequestCache(folder / "requests.sqlite")
    try:
        request = BackendRequest(id=task.id, mode="completion", prompt=f"Task: {task.query}\n{text}")
        key = request_key("openai:any@x", request, BackendParams())
        cache.put(key, BackendResponse(text=text, finish_reason="stop"))
        answer = cache.get(key)
    finally:
        cache.close()
    assert answer is not None and answer.text == joined(text)
    prediction, program = to_prediction(task, answer)
    score = Scorer().score(task, program)
    write_jsonl(folder / "predictions.jsonl", [prediction])
    write_jsonl(folder / "scores.jsonl", [score])
    assert [value for _, value in iter_jsonl(folder / "scores.jsonl")] == [score.model_dump(mode="json")]
    loaded = load_predictions(folder / "predictions.jsonl", {task.id})
    assert loaded[task.id].text == answer.text
    assert score_all([task], loaded, fmt="auto")[0].model_dump() == score.model_dump()
