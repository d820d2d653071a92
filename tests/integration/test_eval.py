"""`toolbench eval` end to end: backends, the answer cache, resume after kill -9, bad input, and the
OpenAI-compatible server giving the same predictions as the local model."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.integration
SMALL = ["--tools", "weather,home_search", "--limit", "6", "--max-tokens", "12"]


def summary_of(folder: Path) -> dict:
    return orjson.loads((folder / "summary.json").read_bytes())


def eval_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_cli("eval", *args, check=check)


def test_hf_backend_scores_garbage_as_parse_errors_and_caches_answers(tiny_model_dir, tmp_path):
    cache = ["--cache-dir", str(tmp_path / "cache")]
    printed = eval_cli(
        "--model", f"hf:{tiny_model_dir}", *SMALL, "--k-demos", "0", "--out", str(tmp_path / "a"), *cache
    ).stdout
    first = summary_of(tmp_path / "a")
    micro = first["summary"]["micro"]
    assert (
        micro["n"] == 12
        and micro["success"] == 0.0
        and micro["parse_error_rate"] + micro["no_call_rate"] + micro["tool_error_rate"] > 0
    )
    assert first["run"]["counts"]["cache_hits"] == 0 and first["run"]["git_revision"]
    assert first["run"]["config"]["model"] == f"hf:{tiny_model_dir}" and first["run"]["seed"] == 0
    # cost: the tokenizer's count of every prompt, at most 12 new tokens per answer, every request timed
    cost = first["cost"]
    assert cost["prompt_tokens"] == _prompt_tokens(tiny_model_dir, ["weather", "home_search"], 6)
    assert 0 < cost["completion_tokens"] <= 12 * 12 and cost["usage_reported"] == 12
    assert (cost["requests"], cost["cached"], cost["timed"]) == (12, 0, 12)
    assert 0 < cost["latency_p50_ms"] <= cost["latency_p95_ms"]
    assert "| 12 | 0 | " in (tmp_path / "a" / "summary.md").read_text()
    line = " ".join(printed.split())  # the console wraps long lines
    assert f"cost: requests 12, cached 0, prompt tokens {cost['prompt_tokens']:,}, completion tokens" in line
    predictions = [
        orjson.loads(line) for line in (tmp_path / "a" / "predictions.jsonl").read_bytes().splitlines()
    ]
    assert len(predictions) == 12 and all(p["text"] for p in predictions)

    eval_cli(
        "--model", f"hf:{tiny_model_dir}", *SMALL, "--k-demos", "0", "--out", str(tmp_path / "b"), *cache
    )
    second = summary_of(tmp_path / "b")
    assert second["run"]["counts"]["cache_hits"] == 12
    assert second["summary"] == first["summary"]
    # served from the cache: marked cached, not timed; the stored token counts still count
    assert second["cost"] == {
        **cost,
        "cached": 12,
        "timed": 0,
        "latency_p50_ms": None,
        "latency_p95_ms": None,
    }
    assert "| 12 | 12 | " in (tmp_path / "b" / "summary.md").read_text()
    assert (tmp_path / "b" / "predictions.jsonl").read_bytes() == (
        tmp_path / "a" / "predictions.jsonl"
    ).read_bytes()

    eval_cli(
        "--model",
        f"hf:{tiny_model_dir}",
        *SMALL,
        "--k-demos",
        "0",
        "--out",
        str(tmp_path / "c"),
        *cache,
        "--no-cache",
    )
    assert summary_of(tmp_path / "c")["run"]["counts"]["cache_hits"] == 0
    assert summary_of(tmp_path / "c")["summary"] == first["summary"]


def _prompt_tokens(model_dir: Path, tools: list[str], limit: int) -> int:
    """The tokens of every completion prompt of an eval with k = 0 and the default system prompt,
    counted here with the model's tokenizer (no special tokens, as the model reads them)."""
    from toolbench.core.generation import load_local_model
    from toolbench.core.prompts import DEFAULT_SYSTEM_PROMPT
    from toolbench.pipelines.evaluate import EvalConfig, select_tasks
    from toolbench.retriever.prompt import PromptBuilder

    builder = PromptBuilder(None, 0, DEFAULT_SYSTEM_PROMPT)
    model = load_local_model(str(model_dir))
    tasks = select_tasks(EvalConfig(model="x:y", tools=tools, limit=limit))
    return sum(model.count_tokens(builder.completion(task)) for task in tasks)


class _StubOpenAI(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that takes DELAY seconds and answers every completion with a
    known `usage` (or none when the server's `usage` is None)."""

    DELAY = 0.05

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.DELAY)
        body = {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 0,
            "model": "stub",
            "choices": [{"index": 0, "text": "API.search()", "finish_reason": "stop", "logprobs": None}],
        }
        if self.server.usage is not None:
            body["usage"] = self.server.usage
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        return None


@contextmanager
def stub_endpoint(usage: dict | None) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StubOpenAI)
    server.usage = usage
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_cost_counts_the_endpoints_usage_and_times_only_what_it_asked(tmp_path):
    from toolbench.pipelines.evaluate import EvalConfig, run_eval

    usage = {"prompt_tokens": 70, "completion_tokens": 3, "total_tokens": 73}
    common = {"tools": ["weather"], "limit": 4, "k_demos": 0, "cache_dir": str(tmp_path / "cache")}
    with stub_endpoint(usage) as url:
        config = EvalConfig(model="openai:stub", base_url=url, concurrency=2, **common)
        run_eval(config, tmp_path / "a")
        run_eval(config, tmp_path / "b")  # every answer from the cache
    with stub_endpoint(None) as url:
        run_eval(EvalConfig(model="openai:stub", base_url=url, use_cache=False, **common), tmp_path / "c")
    fresh, cached, silent = (summary_of(tmp_path / x)["cost"] for x in "abc")
    assert {k: fresh[k] for k in ("requests", "cached", "timed", "usage_reported")} == {
        "requests": 4,
        "cached": 0,
        "timed": 4,
        "usage_reported": 4,
    }
    assert (fresh["prompt_tokens"], fresh["completion_tokens"]) == (280, 12)
    assert 50 <= fresh["latency_p50_ms"] <= fresh["latency_p95_ms"] < 5000  # the stub's 50 ms, at least
    assert cached == {**fresh, "cached": 4, "timed": 0, "latency_p50_ms": None, "latency_p95_ms": None}
    assert (silent["prompt_tokens"], silent["completion_tokens"], silent["usage_reported"]) == (None, None, 0)
    assert silent["timed"] == 4 and silent["latency_p50_ms"] >= 50
    table = (tmp_path / "c" / "summary.md").read_text()
    assert (
        "| requests | cached | prompt tokens | completion tokens | latency p50 ms | latency p95 ms |" in table
    )
    assert "| 4 | 0 | n/a | n/a | " in table
    assert "| 4 | 4 | 280 | 12 | n/a | n/a |" in (tmp_path / "b" / "summary.md").read_text()


def test_replay_of_gold_labels_through_eval_is_perfect_in_both_modes(tmp_path):
    gold = tmp_path / "gold.jsonl"
    run_cli("tasks", "replay", "--tasks", "tools/cat_api/test.jsonl", "--out", str(gold), check=True)
    eval_cli(
        "--model",
        f"replay:{gold}",
        "--tools",
        "cat_api",
        "--k-demos",
        "0",
        "--out",
        str(tmp_path / "r"),
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    assert summary_of(tmp_path / "r")["summary"]["micro"]["success"] == 1.0


def test_completion_prompts_use_retrieved_demos(tiny_model_dir, tmp_path):
    eval_cli(
        "--model",
        f"hf:{tiny_model_dir}",
        "--tools",
        "weather",
        "--limit",
        "3",
        "--max-tokens",
        "4",
        "--k-demos",
        "3",
        "--out",
        str(tmp_path / "k3"),
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    rows = (
        sqlite3.connect(tmp_path / "cache" / "requests.sqlite")
        .execute("SELECT COUNT(*) FROM answers")
        .fetchone()
    )
    assert rows[0] == 3
    assert (tmp_path / "cache" / "demos").is_dir() and any((tmp_path / "cache" / "indexes").iterdir())


def test_resume_after_kill_scores_every_task_once_with_the_same_summary(tiny_model_dir, tmp_path):
    args = [
        "--model",
        f"hf:{tiny_model_dir}",
        "--tools",
        "weather,home_search,cat_api",
        "--limit",
        "40",
        "--max-tokens",
        "48",
        "--k-demos",
        "0",
        "--batch-size",
        "4",
    ]
    eval_cli(*args, "--out", str(tmp_path / "ref"), "--cache-dir", str(tmp_path / "ref-cache"))
    reference = summary_of(tmp_path / "ref")["summary"]

    cache = tmp_path / "cache"
    env = {**os.environ, "COLUMNS": "200"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "toolbench",
            "eval",
            *args,
            "--out",
            str(tmp_path / "run"),
            "--cache-dir",
            str(cache),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    database = cache / "requests.sqlite"
    deadline = time.time() + 120
    answered = 0
    while time.time() < deadline and process.poll() is None and answered < 8:
        time.sleep(0.2)
        if database.exists():
            try:
                answered = sqlite3.connect(database).execute("SELECT COUNT(*) FROM answers").fetchone()[0]
            except sqlite3.OperationalError:
                answered = 0
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "run" / "summary.json").exists()
    kept = sqlite3.connect(database).execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    assert 0 < kept < 120

    eval_cli(*args, "--out", str(tmp_path / "run"), "--cache-dir", str(cache))
    resumed = summary_of(tmp_path / "run")
    assert resumed["run"]["counts"]["cache_hits"] == kept
    scores = [
        orjson.loads(line)["id"] for line in (tmp_path / "run" / "scores.jsonl").read_bytes().splitlines()
    ]
    assert len(scores) == len(set(scores)) == 120
    assert resumed["summary"] == reference


def test_guided_runs_for_local_chat_models_and_refuses_elsewhere(tiny_model_dir, tmp_path):
    cache = ["--cache-dir", str(tmp_path / "cache")]
    common = ["--tools", "weather", "--limit", "2", "--k-demos", "0", "--max-new-tokens", "40", *cache]
    eval_cli(
        "--model", f"hf:{tiny_model_dir}", "--mode", "chat", "--guided", *common, "--out", str(tmp_path / "g")
    )
    summary = orjson.loads((tmp_path / "g" / "summary.json").read_bytes())
    assert summary["run"]["config"]["guided"] is True and summary["cost"]["requests"] == 2
    for refused in (
        ["--model", f"hf:{tiny_model_dir}", "--mode", "completion"],
        ["--model", "openai:m", "--base-url", "http://127.0.0.1:9/v1", "--mode", "chat"],
    ):
        result = eval_cli(*refused, "--guided", *common, "--out", str(tmp_path / "r"), check=False)
        assert result.returncode == 2 and "--guided runs in toolbench's own decoding loop" in result.stderr
        assert "Traceback" not in result.stderr


def test_bad_backends_fail_clearly(tmp_path):
    result = eval_cli("--model", "llama:x", "--tools", "weather", "--out", str(tmp_path), check=False)
    assert (
        result.returncode == 2
        and "unknown model spec 'llama:x'" in result.stderr
        and "Traceback" not in result.stderr
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the probe closes
    started = time.time()
    result = eval_cli(
        "--model",
        "openai:m",
        "--base-url",
        f"http://127.0.0.1:{port}/v1",
        "--tools",
        "weather",
        "--limit",
        "2",
        "--k-demos",
        "0",
        "--retries",
        "2",
        "--timeout",
        "2",
        "--out",
        str(tmp_path / "o"),
        "--cache-dir",
        str(tmp_path / "cache"),
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert f"cannot reach http://127.0.0.1:{port}/v1 after 3 attempts" in result.stderr
    assert "Traceback" not in result.stderr and time.time() - started < 60


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "toolbench", "serve", "--model", str(tiny_model_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    import httpx

    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        process.kill()
        raise AssertionError(f"server did not start: {process.stderr.read().decode()[-2000:]}")
    yield url
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)


@pytest.mark.parametrize("mode", ["completion", "chat"])
def test_served_model_gives_the_same_predictions_as_the_local_one(server, tiny_model_dir, tmp_path, mode):
    import openai

    name = openai.OpenAI(base_url=server, api_key="x").models.list().data[0].id
    common = [*SMALL, "--mode", mode, "--k-demos", "0", "--cache-dir", str(tmp_path / "cache")]
    eval_cli("--model", f"openai:{name}", "--base-url", server, *common, "--out", str(tmp_path / "api"))
    eval_cli("--model", f"hf:{tiny_model_dir}", *common, "--out", str(tmp_path / "local"))
    api = [json.loads(line) for line in (tmp_path / "api" / "predictions.jsonl").read_text().splitlines()]
    local = [json.loads(line) for line in (tmp_path / "local" / "predictions.jsonl").read_text().splitlines()]
    assert len(api) == 12 and [p["text"] for p in api] == [p["text"] for p in local]
    assert summary_of(tmp_path / "api")["summary"] == summary_of(tmp_path / "local")["summary"]
    # the server's `usage` counts what the local model counts
    api_cost, local_cost = summary_of(tmp_path / "api")["cost"], summary_of(tmp_path / "local")["cost"]
    tokens = ("prompt_tokens", "completion_tokens", "usage_reported", "timed")
    assert [api_cost[k] for k in tokens] == [local_cost[k] for k in tokens]
    assert api_cost["prompt_tokens"] > 0 and api_cost["timed"] == 12


def test_an_endpoint_that_refuses_every_request_stops_the_run_with_its_message(server, tmp_path):
    common = [*SMALL, "--mode", "chat", "--k-demos", "0", "--cache-dir", str(tmp_path / "cache")]
    result = eval_cli(
        "--model",
        "openai:no-such-model",
        "--base-url",
        server,
        *common,
        "--out",
        str(tmp_path / "o"),
        check=False,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "refused 12 of 12 requests" in result.stderr and "HTTP 404" in result.stderr, result.stderr
    assert not (tmp_path / "o" / "summary.json").exists()  # no 0% reported


def test_ablation_grid_makes_one_table(tmp_path):
    from toolbench.pipelines.generate import GenerateConfig, generate

    demos = tmp_path / "demos.jsonl"
    generate(GenerateConfig(tools=["weather"], n=150, seed=1, split="train"), demos)
    gold = tmp_path / "gold.jsonl"
    run_cli("tasks", "replay", "--tasks", "tools/weather/test.jsonl", "--out", str(gold), check=True)
    result = eval_cli(
        "--model",
        f"replay:{gold}",
        "--tools",
        "weather",
        "--limit",
        "5",
        "--ablate",
        "--demos",
        str(demos),
        "--out",
        str(tmp_path / "grid"),
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    note, _, *table = (tmp_path / "grid" / "ablation.md").read_text().splitlines()
    assert note == "Success % per setting; cells: held out."  # --task-set both: "held out / in distribution"
    assert table[0] == "| system prompt | k | retriever | weather | macro |"
    assert [row.split(" | ")[:3] for row in table[2:]] == [
        ["| on", "0", "-"],
        ["| on", "3", "bm25"],
        ["| on", "3", "dense"],
        ["| off", "0", "-"],
        ["| off", "3", "bm25"],
        ["| off", "3", "dense"],
    ]
    assert all(row.endswith("| 100.0 | 100.0 |") for row in table[2:])  # replayed gold: every setting 100%
    assert (
        len(list((tmp_path / "grid").glob("*/summary.json"))) == 6 and "ToolBench ablation" in result.stdout
    )


def test_episodes_run_step_by_step_with_the_replay_backend(tmp_path):
    tasks = [json.loads(line) for line in Path("tools/webshop/test.jsonl").read_text().splitlines()[:3]]
    gold = [c for c in tasks[0]["labels"][0]]
    recovered = [{"name": "buy", "arguments": {}}, *tasks[1]["labels"][0]]  # refused, then the gold
    trajectories = tmp_path / "trajectories.jsonl"
    trajectories.write_text(
        json.dumps({"id": tasks[0]["id"], "calls": gold})
        + "\n"
        + json.dumps({"id": tasks[1]["id"], "calls": recovered})
        + "\n"
        + json.dumps({"id": tasks[2]["id"], "calls": tasks[2]["labels"][0][:-1]})  # never buys
        + "\n"
    )
    for mode in ("completion", "chat"):
        out = tmp_path / mode
        eval_cli(
            "--model",
            f"replay:{trajectories}",
            "--tools",
            "webshop",
            "--limit",
            "3",
            "--mode",
            mode,
            "--k-demos",
            "0",
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
        )
        scores = [orjson.loads(line) for line in (out / "scores.jsonl").read_bytes().splitlines()]
        assert [s["success"] for s in scores] == [True, True, False], mode
        assert [s["steps"] for s in scores] == [len(gold), len(recovered), len(tasks[2]["labels"][0]) - 1]
        assert (
            scores[1]["trajectory"][0]["error_type"] == "webshop:no_product"
            and scores[1]["error_type"] is None
        )
        assert scores[2]["error_type"] == "episode:stopped" and scores[2]["reward"] == 0.0
        webshop = summary_of(out)["summary"]["per_tool"]["webshop"]
        assert webshop["n"] == 3 and webshop["reward"] == pytest.approx(2 / 3)
        predictions = [orjson.loads(line) for line in (out / "predictions.jsonl").read_bytes().splitlines()]
        assert predictions[0]["calls"] == gold and predictions[0]["meta"] == {
            "end": "terminal",
            "steps": len(gold),
        }
        assert "| webshop | 3 | 66.7 |" in (out / "summary.md").read_text()


def test_episodes_with_a_tiny_hf_model_stop_at_the_limit_and_are_cached(tiny_model_dir, tmp_path):
    eval_cli(
        "--model",
        f"hf:{tiny_model_dir}",
        "--tools",
        "webshop",
        "--limit",
        "2",
        "--max-tokens",
        "4",
        "--k-demos",
        "0",
        "--max-steps",
        "3",
        "--call-format",
        "python",  # the random model's text is then a refused action (a step), not "no call" (the end)
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "a"),
    )
    scores = [orjson.loads(line) for line in (tmp_path / "a" / "scores.jsonl").read_bytes().splitlines()]
    assert len(scores) == 2 and not any(s["success"] for s in scores)
    assert all(1 <= s["steps"] <= 3 and len(s["trajectory"]) == s["steps"] for s in scores)
    # one cached answer per step asked (an answer without a call ends the episode: asked, not a step)
    asked = sum(s["steps"] + (s["errors"][-1]["error_type"] == "episode:stopped") for s in scores)
    database = sqlite3.connect(tmp_path / "cache" / "requests.sqlite")
    assert database.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == asked
