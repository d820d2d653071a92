"""`toolbench serve`: a local Hugging Face model behind the OpenAI HTTP API, so any OpenAI client
(and toolbench's own `openai` backend) can be evaluated against it.

Generation goes through `toolbench.core.generation.LocalModel`, the same code as the `hf:` backend, so for
the same messages, tools and settings the server's text equals the library's token for token.
Tool calls are read from the text with the `auto` call reader (every family's native form) and
returned as OpenAI `tool_calls`; text that does not parse is returned as plain content.

Concurrency, by dynamic batching: the model is not thread-safe and one forward pass over many
prompts costs little more than over one, so every request joins a bounded queue and one worker
thread (the only thread that touches the tokenizer and the model) takes the oldest request together
with up to `max_batch - 1` waiting requests that have the same generation settings, and generates
them in left-padded batches of prompts of similar length (padding is work too: see `_batches`).
Only greedy requests are batched, and a batched greedy answer is the text, finish reason and usage
of the same request alone (tests/integration/test_server.py checks it on CPU in float32; in half
precision on a GPU, padding can move a logit's last bits and so, rarely, flip a near-tie, as in the
hf backend's own batches). A sampled request (temperature > 0) always runs alone, so its seed gives
the library's answer whatever else is in flight; so does a request whose token budget the context
window would cut shorter in a wider batch.
Beyond `max_queue` waiting requests the answer is 503 (with Retry-After); a request not answered
within `request_timeout` seconds gets 504, and if it is still waiting it is dropped, never
generated (one that is already generating finishes: generation cannot be interrupted). A client
that disconnects while waiting is dropped the same way. GET /health reports the queue's counters.

Memory stays flat under load: all model and tokenizer work happens on that one thread (no pool of
40 threads that each grow their own malloc arena and OpenMP team), the worker returns freed heap
to the OS when the queue runs empty, and nothing is kept per request (counters only).

Every error body has OpenAI's shape, so clients raise their usual exceptions (`BadRequestError`…).
Not supported, with a 400 rather than silently: streaming, `n` > 1, batched completion prompts.
`tool_choice` "required" or a named function is validated but not enforced (there is no
constrained decoding): the model may still answer in text.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from toolbench.core.calls.auto import AutoFormat
from toolbench.core.chat_messages import call_id
from toolbench.core.generation import Completion, GenerationParams, LocalModel, load_local_model
from toolbench.foundation.errors import CallParseError, UserError

MAX_STOP_SEQUENCES = 4  # OpenAI's limit; each stop string also costs a stopping criterion per step

# One lock for the process, not per app: `load_local_model` caches, so two apps built on the same
# model share one LocalModel (and torch's global RNG, which seeded sampling sets). Each app's worker
# holds it while it renders, counts and generates.
_GENERATION_LOCK = threading.Lock()

DEFAULT_MAX_BATCH = 16
DEFAULT_MAX_QUEUE = 256
DEFAULT_REQUEST_TIMEOUT = 120.0
DEFAULT_MAX_BATCH_TOKENS = 16_384
# Padding a batch may add: a share of its real prompt tokens, plus a few tokens a row (short prompts
# batch freely, their padding costs next to nothing).
PADDING_SHARE = 0.25
PADDING_ROW_TOKENS = 64
# On CPU, PyTorch's fused attention takes no padding mask: a padded batch falls back to attention
# that materialises every row's prompt x prompt scores. Measured with the tiny test model (32 new
# tokens), a padded batch of 8 still ran 1.5-2x the throughput of one at a time up to ~1,300 prompt
# tokens, and none beyond ~1,900; so past this length a CPU batch takes only prompts of exactly the
# same length (no padding, no mask). On a GPU the fused kernels take the mask: no such limit.
CPU_PADDED_PROMPT_TOKENS = 1024


class ApiError(Exception):
    """A request we refuse on purpose; rendered as OpenAI's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        type_: str = "invalid_request_error",
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type_
        self.headers = dict(headers or {})


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _error_response(error: ApiError) -> JSONResponse:
    return AsciiJSONResponse(
        error_body(error.message, error.type, error.param, error.code),
        status_code=error.status,
        headers=error.headers or None,
    )


def one_line(error: BaseException | str) -> str:
    """An exception's own message on one line (templates and tokenizers raise multi-line ones)."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


class AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII characters escaped: a lone surrogate from a request (valid JSON: `"\\udcff"`)
    that ends up in an error message cannot make the response unencodable, as UTF-8 would."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


# --- request bodies -----------------------------------------------------------------------------
# strict: a wrong type is a 400 naming the field, never a silent coercion ("10" is not 10).
# Unknown fields are ignored, as OpenAI-compatible servers do (clients send extras such as `user`).


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class TextPart(_Body):
    type: Literal["text"]
    text: str


class FunctionCallIn(_Body):
    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCallIn(_Body):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCallIn


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None


class FunctionDef(_Body):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolDef(_Body):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Body):
    name: str


class NamedToolChoice(_Body):
    type: Literal["function"]
    function: NamedFunction


class _Sampling(_Body):
    """What both endpoints share: the model, the budget, sampling and the unsupported knobs."""

    model: str
    max_tokens: int | None = None
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int = Field(0, ge=0, lt=2**63)
    n: int = 1
    stream: bool = False


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[ToolDef] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    max_completion_tokens: int | None = None


class CompletionRequest(_Sampling):
    prompt: str | list[str]


# --- conversions ----------------------------------------------------------------------------------


def _text_content(content: str | list[TextPart] | None) -> str:
    """OpenAI allows content as a list of parts; only text parts mean anything to a text model."""
    if content is None:
        return ""  # "" rather than None: several HF templates apply `| trim` to content
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content)


def template_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Messages as HF chat templates expect them: content a string, tool-call arguments a dict
    (OpenAI sends them as a JSON string; templates `tojson` them and would double-encode)."""
    out = []
    for i, message in enumerate(messages):
        if message.role in ("system", "developer", "user", "tool") and message.content is None:
            raise ApiError(
                400, f"messages[{i}].content is required for role {message.role!r}", f"messages[{i}].content"
            )
        item: dict[str, Any] = {"role": message.role, "content": _text_content(message.content)}
        if message.name is not None:
            item["name"] = message.name
        if message.tool_call_id is not None:
            item["tool_call_id"] = message.tool_call_id
        if message.tool_calls:
            if message.role != "assistant":
                raise ApiError(
                    400,
                    f"messages[{i}].tool_calls is only allowed on assistant messages",
                    f"messages[{i}].tool_calls",
                )
            item["tool_calls"] = [
                _template_call(call, f"messages[{i}].tool_calls[{j}]")
                for j, call in enumerate(message.tool_calls)
            ]
        out.append(item)
    return out


def _template_call(call: ToolCallIn, where: str) -> dict[str, Any]:
    arguments: Any = call.function.arguments
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError as error:
            raise ApiError(
                400, f"{where}.function.arguments is not valid JSON: {error}", f"{where}.function.arguments"
            ) from None
        if not isinstance(arguments, dict):
            raise ApiError(
                400, f"{where}.function.arguments must be a JSON object", f"{where}.function.arguments"
            )
    call_dict: dict[str, Any] = {
        "type": "function",
        "function": {"name": call.function.name, "arguments": arguments},
    }
    if call.id is not None:
        call_dict["id"] = call.id
    return call_dict


def assistant_message(text: str, finish_reason: str, parse_tools: bool) -> tuple[dict[str, Any], str]:
    """The OpenAI assistant message (and finish_reason) for a model's text.

    With tools on, the calls in the text, in whatever family's form (`toolbench.core.calls.auto`:
    `<tool_call>` blocks, Llama JSON, pythonic lists, `[TOOL_CALLS]`, …), become `tool_calls` (ids
    of 9 letters or digits, which every chat template accepts back; arguments a JSON string) and
    the remaining free text the content (null when empty). Text that fails to parse as calls is
    returned unchanged as content: a malformed answer is the model's business, not a server error.
    A truncated answer keeps finish_reason "length" so the client can tell it was cut.
    """
    plain = {"role": "assistant", "content": text}
    if not parse_tools:
        return plain, finish_reason
    try:
        content, program = AutoFormat().split(text)
    except CallParseError:
        return plain, finish_reason
    if not len(program):
        return plain, finish_reason
    calls = [
        {
            "id": call_id(text, n),
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)},
        }
        for n, call in enumerate(program)
    ]
    message = {"role": "assistant", "content": content or None, "tool_calls": calls}
    return message, ("length" if finish_reason == "length" else "tool_calls")


# --- the queue and the batching worker ------------------------------------------------------------


def _malloc_trim() -> Callable[[], None] | None:
    """glibc's malloc_trim: hands freed heap back to the OS (CPython and torch free plenty after a
    batch, but glibc keeps it mapped, so RSS creeps up with every new peak). None elsewhere."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


def check_limits(max_batch: int, max_queue: int, request_timeout: float, max_batch_tokens: int) -> None:
    """A UserError naming the first limit out of range."""
    for limit, value in (
        ("max_batch", max_batch),
        ("max_queue", max_queue),
        ("max_batch_tokens", max_batch_tokens),
    ):
        if value < 1:
            raise UserError(f"{limit} must be at least 1, got {value}")
    if not 0 < request_timeout < float("inf"):
        raise UserError(f"request_timeout must be a positive number of seconds, got {request_timeout}")


@dataclass(eq=False)
class _Job:
    """One request waiting for the model. `render` builds the prompt on the worker thread."""

    render: Callable[[], str]
    settings: GenerationParams
    param: str  # the request field the prompt comes from, for errors about it
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Completion]
    deadline: float  # time.monotonic()
    prompt: str = ""
    tokens: int = 0
    abandoned: bool = False  # timed out or the client left: never generate it

    def batch_key(self) -> GenerationParams | None:
        """Requests batch only with requests of the very same settings, and only greedy ones: a
        sampled batch would draw its rows from one RNG stream, so a seed would not give the
        library's answer."""
        return self.settings if self.settings.temperature == 0 else None


@dataclass
class BatchScheduler:
    """The bounded queue in front of the model and the one thread that serves it in batches."""

    model: LocalModel
    max_batch: int = DEFAULT_MAX_BATCH
    max_queue: int = DEFAULT_MAX_QUEUE
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS
    trim_memory: bool = True
    # Counters only (batch sizes are keys 1..max_batch): nothing grows with the number of requests.
    batch_sizes: Counter[int] = field(default_factory=Counter)
    rejected: int = 0
    timed_out: int = 0
    disconnected: int = 0
    dropped: int = 0

    def __post_init__(self) -> None:
        check_limits(self.max_batch, self.max_queue, self.request_timeout, self.max_batch_tokens)
        self._waiting: deque[_Job] = deque()
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._active = 0  # requests taken by the worker for the round it is serving
        self._trim = _malloc_trim() if self.trim_memory else None

    # -- the event-loop side

    async def complete(
        self, request: Request, render: Callable[[], str], settings: GenerationParams, param: str
    ) -> Completion:
        """Queue one request and wait for its completion: 503 when the queue is full, 504 past the
        request timeout; a client that disconnects meanwhile is dropped from the queue."""
        loop = asyncio.get_running_loop()
        job = _Job(
            render, settings, param, loop, loop.create_future(), time.monotonic() + self.request_timeout
        )
        self._submit(job)
        try:
            while True:
                remaining = job.deadline - time.monotonic()
                if remaining <= 0:
                    self._abandon(job)
                    self.timed_out += 1
                    raise ApiError(
                        504,
                        f"the request was not answered within the server's limit of {self.request_timeout:g} s",
                        code="timeout",
                        type_="server_error",
                    )
                done, _ = await asyncio.wait({job.future}, timeout=min(remaining, 1.0))
                if done:
                    return job.future.result()
                if await request.is_disconnected():
                    self._abandon(job)
                    self.disconnected += 1
                    raise ApiError(499, "the client closed the connection", code="client_closed_request")
        except asyncio.CancelledError:
            self._abandon(job)
            raise

    def _abandon(self, job: _Job) -> None:
        """Nobody waits for `job` any more: out of the queue (its place goes to the next request),
        or, if the worker has it already, skipped when its turn comes."""
        job.abandoned = True
        job.future.cancel()
        with self._wakeup:
            try:
                self._waiting.remove(job)  # at most max_queue long
            except ValueError:
                return
            self.dropped += 1

    def _submit(self, job: _Job) -> None:
        with self._wakeup:
            if self._closed:
                raise ApiError(
                    503, "the server is shutting down", code="server_shutting_down", type_="server_error"
                )
            if len(self._waiting) >= self.max_queue:
                self.rejected += 1
                raise ApiError(
                    503,
                    f"the server is busy: {self.max_queue} requests are already waiting for the model; retry later",
                    code="server_overloaded",
                    type_="server_error",
                    headers={"Retry-After": "1"},
                )
            self._waiting.append(job)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="toolbench-serve-worker", daemon=True)
                self._thread.start()
            self._wakeup.notify()

    def close(self) -> None:
        """Refuse new requests, answer the waiting ones 503 and let the worker end."""
        with self._wakeup:
            self._closed = True
            waiting, self._waiting = list(self._waiting), deque()
            self._wakeup.notify_all()
        for job in waiting:
            self._settle(job, error=ApiError(503, "the server is shutting down", type_="server_error"))

    def stats(self) -> dict[str, Any]:
        with self._wakeup:
            waiting, active = len(self._waiting), self._active
        sizes = dict(sorted(self.batch_sizes.items()))
        return {
            "waiting": waiting,
            "active": active,
            "max_batch": self.max_batch,
            "max_queue": self.max_queue,
            "request_timeout": self.request_timeout,
            "generated": sum(size * count for size, count in sizes.items()),
            "batches": sum(sizes.values()),
            "batch_sizes": {str(size): count for size, count in sizes.items()},
            "rejected": self.rejected,
            "timed_out": self.timed_out,
            "disconnected": self.disconnected,
            "dropped": self.dropped,
        }

    # -- the worker thread

    def _run(self) -> None:
        while True:
            jobs = self._take()
            if jobs is None:
                return
            try:
                with _GENERATION_LOCK:
                    self._serve(jobs)
            except BaseException as error:  # the worker must outlive any one batch
                crash = ApiError(500, f"internal error: {type(error).__name__}", type_="server_error")
                for job in jobs:
                    self._settle(job, error=crash)
            with self._wakeup:
                self._active = 0
                idle = not self._waiting
            if idle and self._trim is not None:
                self._trim()

    def _take(self) -> list[_Job] | None:
        """The oldest waiting request and, if it can be batched, up to max_batch - 1 more with the
        same settings, in arrival order; the others keep their places."""
        with self._wakeup:
            while not self._waiting and not self._closed:
                self._wakeup.wait()
            if not self._waiting:
                return None
            taken = [self._waiting.popleft()]
            key = taken[0].batch_key()
            if key is not None and self.max_batch > 1:
                kept: deque[_Job] = deque()
                while self._waiting and len(taken) < self.max_batch:
                    job = self._waiting.popleft()
                    (taken if job.batch_key() == key else kept).append(job)
                kept.extend(self._waiting)
                self._waiting = kept
            self._active = len(taken)
            return taken

    def _serve(self, jobs: list[_Job]) -> None:
        ready = []
        for job in jobs:
            if self._skip(job):
                continue
            try:
                self._prepare(job)
            except ApiError as error:
                self._settle(job, error=error)
                continue
            ready.append(job)
        for batch in self._batches(ready):
            batch = [job for job in batch if not self._skip(job)]
            if batch:
                self._generate(batch)

    def _generate(self, batch: list[_Job]) -> None:
        """Generate one batch and answer its requests. If the batch fails, each request is tried
        alone, so one request the model cannot take costs only its own answer (a 500)."""
        try:
            completions = self.model.generate(
                [job.prompt for job in batch], batch[0].settings, batch_size=len(batch)
            )
        except Exception as error:
            if len(batch) > 1:
                for job in batch:
                    if not self._skip(job):
                        self._generate([job])
                return
            crash = ApiError(500, f"generation failed: {type(error).__name__}", type_="server_error")
            self._settle(batch[0], error=crash)
            return
        self.batch_sizes[len(batch)] += 1
        for job, completion in zip(batch, completions, strict=True):
            self._settle(job, result=completion)

    def _skip(self, job: _Job) -> bool:
        """Drop a request whose client is gone or whose time is up, before spending the model on it."""
        if not job.abandoned and time.monotonic() < job.deadline:
            return False
        with self._wakeup:  # (the event loop counts drops too)
            self.dropped += 1
        return True

    def _prepare(self, job: _Job) -> None:
        job.prompt = job.render()
        try:
            job.tokens = self.model.count_tokens(job.prompt)
        except Exception as error:  # e.g. text the tokenizer cannot encode
            raise ApiError(400, f"the prompt cannot be tokenized: {one_line(error)}", job.param) from None
        if job.tokens >= self.model.context_length:
            message = (
                f"the prompt is {job.tokens} tokens; this model's context is {self.model.context_length}"
            )
            raise ApiError(400, message, job.param, "context_length_exceeded")

    def _batches(self, ready: list[_Job]) -> list[list[_Job]]:
        """Split a round into batches of prompts of similar length: every row of a batch is padded
        to its longest prompt, so a long prompt among short ones would multiply the work (and the
        attention mask) for all of them. Shortest first, a batch takes the next prompt while its
        padded size stays within `max_batch_tokens` and its padding within a quarter of its real
        tokens plus `PADDING_ROW_TOKENS` a row (on CPU, past `CPU_PADDED_PROMPT_TOKENS`, no padding
        at all). A request whose budget the context window cuts runs alone: in a wider batch it
        would be cut shorter."""
        on_cpu = str(getattr(self.model, "device", "cpu")) == "cpu"
        alone: list[list[_Job]] = []
        batchable: list[_Job] = []
        for job in ready:
            if (
                job.batch_key() is None
                or job.tokens + job.settings.max_new_tokens > self.model.context_length
            ):
                alone.append([job])
            else:
                batchable.append(job)
        batches: list[list[_Job]] = []
        batch: list[_Job] = []
        real = 0
        for job in sorted(batchable, key=lambda job: job.tokens):
            rows, padded = len(batch) + 1, (len(batch) + 1) * job.tokens  # sorted: it is the widest
            waste = padded - (real + job.tokens)
            if batch and (
                padded > self.max_batch_tokens
                or waste > PADDING_SHARE * (real + job.tokens) + PADDING_ROW_TOKENS * rows
                or (on_cpu and job.tokens > CPU_PADDED_PROMPT_TOKENS and waste > 0)
            ):
                batches.append(batch)
                batch, real = [], 0
            batch.append(job)
            real += job.tokens
        if batch:
            batches.append(batch)
        return alone + batches

    @staticmethod
    def _settle(job: _Job, result: Completion | None = None, error: ApiError | None = None) -> None:
        def apply() -> None:
            if job.future.done():  # timed out or cancelled meanwhile: nobody is waiting
                return
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(result)  # type: ignore[arg-type]

        try:
            job.loop.call_soon_threadsafe(apply)
        except RuntimeError:  # the event loop is closed: the server has stopped
            pass


# --- the app ----------------------------------------------------------------------------------------


class _BodyLimit:
    """Refuse bodies over `limit` bytes with 413 before FastAPI reads them.

    Checks Content-Length first (no read at all), then counts the bytes actually received, since a
    chunked body has no Content-Length and a client may lie about it. The accepted body is replayed
    to the app, so at most `limit` bytes are ever held.
    """

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _error_response(ApiError(400, "invalid Content-Length header"))(scope, receive, send)
                return
            if int(declared) > self.limit:
                await self._too_large(scope, receive, send)
                return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = ApiError(413, f"request body is larger than {self.limit} bytes", code="request_too_large")
        await _error_response(error)(scope, receive, send)


_FIELD = re.compile(r"[a-z_][a-z0-9_]*")
_TYPE_TAGS = {"str", "int", "float", "bool", "none"}


def _field_path(loc: tuple[Any, ...]) -> str:
    """`messages[0].content` from pydantic's loc, up to the first union-branch tag pydantic adds
    (`str`, `list[TextPart]`, `NamedToolChoice`…), which names a type, not a field."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _FIELD.fullmatch(part) and part not in _TYPE_TAGS:
            path += f".{part}" if path else part
        else:
            break
    return path


def _validation_message(error: RequestValidationError) -> tuple[str, str | None]:
    """One line naming the first bad field, e.g. `messages: Input should be a valid list`; for a
    union, every branch's complaint."""
    errors = list(error.errors())
    if not errors:
        return "invalid request body", None
    if errors[0].get("type") == "json_invalid":
        return f"malformed JSON body: {errors[0].get('ctx', {}).get('error', errors[0].get('msg', ''))}", None
    path = _field_path(tuple(errors[0].get("loc", ()))[1:])  # loc starts with "body"
    complaints = dict.fromkeys(
        e.get("msg", "invalid") for e in errors if _field_path(tuple(e.get("loc", ()))[1:]) == path
    )
    return f"{path or 'request body'}: {'; or '.join(complaints)}", path or None


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _served_name(model_id: str, model_name: str | None) -> str:
    return model_name or Path(model_id).name or model_id


def create_app(
    model_id: str,
    *,
    max_request_bytes: int = 1_000_000,
    max_tokens_limit: int = 1024,
    model_name: str | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_queue: int = DEFAULT_MAX_QUEUE,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    load_options: Mapping[str, Any] | None = None,
) -> FastAPI:
    """An app serving `model_id` (a local HF folder or hub id), loaded once, here, with
    `load_local_model(model_id, **load_options)`.

    `max_request_bytes` bounds request bodies (413 beyond), `max_tokens_limit` bounds what one
    request may ask to generate (400 beyond); a request without `max_tokens` gets
    min(GenerationParams' default, max_tokens_limit), the hf backend's default.
    `max_batch` requests are generated together at most (1: one at a time), `max_queue` may wait
    (503 beyond), each is answered within `request_timeout` seconds (504 otherwise), and one batch
    holds at most `max_batch_tokens` padded prompt tokens (a longer prompt runs alone).
    """
    scheduler_options = dict(
        max_batch=max_batch,
        max_queue=max_queue,
        request_timeout=request_timeout,
        max_batch_tokens=max_batch_tokens,
    )
    # Refuse bad limits before spending time on the model.
    check_limits(**scheduler_options)
    for limit, value in (("max_request_bytes", max_request_bytes), ("max_tokens_limit", max_tokens_limit)):
        if value < 1:
            raise UserError(f"{limit} must be at least 1, got {value}")
    model = load_local_model(model_id, **dict(load_options or {}))
    scheduler = BatchScheduler(model, **scheduler_options)  # type: ignore[arg-type]
    name = _served_name(model_id, model_name)
    accepted_names = {name, model_id}
    created = int(time.time())
    # Clients get a hash of the model's fingerprint, never what it holds (a path, a hub id).
    fingerprint = "fp_" + hashlib.sha256(model.fingerprint.encode()).hexdigest()[:12]
    default_tokens = min(GenerationParams().max_new_tokens, max_tokens_limit)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        scheduler.close()

    app = FastAPI(
        title="toolbench serve",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
        default_response_class=AsciiJSONResponse,
    )
    app.add_middleware(_BodyLimit, limit=max_request_bytes)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, error: ApiError) -> JSONResponse:
        return _error_response(error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(error)
        return _error_response(ApiError(400, message, param))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code)
        return _error_response(ApiError(error.status_code, str(error.detail), code=code))

    @app.exception_handler(Exception)
    async def _crash(_: Request, error: Exception) -> JSONResponse:
        # No traceback to the client; uvicorn logs it.
        return _error_response(ApiError(500, f"internal error: {type(error).__name__}", type_="server_error"))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness and the queue's counters (not an OpenAI endpoint)."""
        return {"status": "ok", "model": name, **scheduler.stats()}

    def model_card() -> dict[str, Any]:
        return {"id": name, "object": "model", "created": created, "owned_by": "toolbench"}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{requested:path}")
    async def get_model(requested: str) -> dict[str, Any]:
        _check_model(requested)
        return model_card()

    def _check_model(requested: str) -> None:
        # A wrong name is an error, not a shrug: evaluating "model A" against a server running B
        # must not go unnoticed.
        if requested not in accepted_names:
            raise ApiError(
                404,
                f"the model {requested!r} does not exist; this server serves {name!r}",
                "model",
                "model_not_found",
            )

    def params(body: _Sampling, max_tokens: int | None) -> GenerationParams:
        _check_model(body.model)
        if body.stream:
            raise ApiError(400, "streaming is not supported", "stream")
        if body.n != 1:
            raise ApiError(400, f"only n=1 is supported, got n={body.n}", "n")
        budget = default_tokens if max_tokens is None else max_tokens
        if not 1 <= budget <= max_tokens_limit:
            raise ApiError(
                400, f"max_tokens must be between 1 and {max_tokens_limit}, got {budget}", "max_tokens"
            )
        stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        if len(stop) > MAX_STOP_SEQUENCES or not all(stop):
            raise ApiError(400, f"stop takes at most {MAX_STOP_SEQUENCES} non-empty strings", "stop")
        if not all(_is_text(s) for s in stop):  # a lone surrogate: no token sequence can spell it
            raise ApiError(400, "stop strings must be Unicode text (a lone surrogate is not)", "stop")
        return GenerationParams(budget, body.temperature, body.top_p, tuple(stop), body.seed)

    def usage(completion: Completion) -> dict[str, int]:
        return {
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "total_tokens": completion.prompt_tokens + completion.completion_tokens,
        }

    def envelope(prefix: str, kind: str, choice: dict[str, Any], completion: Completion) -> dict[str, Any]:
        """The OpenAI response shape both endpoints share, around one choice."""
        return {
            "id": f"{prefix}-{uuid.uuid4().hex}",
            "object": kind,
            "created": int(time.time()),
            "model": name,
            "system_fingerprint": fingerprint,
            "choices": [{"index": 0, **choice, "logprobs": None}],
            "usage": usage(completion),
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest, request: Request) -> dict[str, Any]:
        if body.max_tokens is not None and body.max_completion_tokens not in (None, body.max_tokens):
            raise ApiError(
                400, "max_tokens and max_completion_tokens disagree; send one", "max_completion_tokens"
            )
        settings = params(
            body, body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
        )
        tools = [tool.model_dump(exclude_none=True) for tool in body.tools or []]
        choice = body.tool_choice
        if choice not in (None, "auto", "none") and not tools:
            raise ApiError(400, "tool_choice needs tools", "tool_choice")
        if isinstance(choice, NamedToolChoice) and choice.function.name not in {
            t["function"]["name"] for t in tools
        }:
            raise ApiError(
                400, f"tool_choice names {choice.function.name!r}, which is not in tools", "tool_choice"
            )
        messages = template_messages(body.messages)
        if not getattr(model.tokenizer, "chat_template", None):
            raise ApiError(400, f"the model {name!r} has no chat template: use /v1/completions", "messages")

        def render() -> str:
            """One line carrying the template's own message, naming the model as served (never
            the folder it was loaded from) if the template refuses the conversation."""
            try:
                return model.render_chat(messages, tools or None)
            except UserError as error:
                raise ApiError(400, one_line(str(error).replace(model_id, name)), "messages") from None
            except Exception as error:  # a template's raise_exception, or a shape it cannot render
                raise ApiError(
                    400, f"the chat template rejected the messages: {one_line(error)}", "messages"
                ) from None

        completion = await scheduler.complete(request, render, settings, "messages")
        message, finish = assistant_message(
            completion.text, completion.finish_reason, bool(tools) and choice != "none"
        )
        return envelope(
            "chatcmpl", "chat.completion", {"message": message, "finish_reason": finish}, completion
        )

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request) -> dict[str, Any]:
        settings = params(body, body.max_tokens)
        if isinstance(body.prompt, list):
            if len(body.prompt) != 1:
                raise ApiError(400, f"prompt must be one string, got a list of {len(body.prompt)}", "prompt")
            prompt = body.prompt[0]
        else:
            prompt = body.prompt
        completion = await scheduler.complete(request, lambda: prompt, settings, "prompt")
        return envelope(
            "cmpl",
            "text_completion",
            {"text": completion.text, "finish_reason": completion.finish_reason},
            completion,
        )

    app.state.model = model
    app.state.scheduler = scheduler
    return app


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready socket on host:port, or a UserError saying why not (before any model loads)."""
    if not 0 <= port <= 65535:
        raise UserError(f"port must be between 0 and 65535, got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as error:
        raise UserError(f"cannot serve on host {host!r}: {one_line(error)}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise UserError(f"cannot serve on {host}:{port}: {error.strerror or one_line(error)}") from None
    return sock


def run_server(
    model_id: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    access_log: bool = True,
    log_level: str = "info",
    **limits: Any,
) -> None:
    """Serve `model_id` until interrupted. `limits` go to `create_app` (max_request_bytes,
    max_tokens_limit, model_name, max_batch, max_queue, request_timeout, max_batch_tokens,
    load_options). The port is bound before the model loads, so a bad or busy port fails at once.

    The default host, 127.0.0.1, serves this machine only. Binding 0.0.0.0 exposes the model to
    every network the machine is on, with no authentication: anyone who can reach the port can
    use the model (and the CPU/GPU it runs on).
    """
    import uvicorn

    # Before torch loads (with the model): OpenMP workers that spin-wait between parallel regions
    # would hold the cores that the worker's Python between torch calls and the event loop need.
    # libgomp spins ~300k rounds unless it has more threads than cores; measured on 2 cores, the
    # tiny model generated 7-9x slower. Passive waiting costs a wake-up per region, nothing more.
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    check_limits(
        limits.get("max_batch", DEFAULT_MAX_BATCH),
        limits.get("max_queue", DEFAULT_MAX_QUEUE),
        limits.get("request_timeout", DEFAULT_REQUEST_TIMEOUT),
        limits.get("max_batch_tokens", DEFAULT_MAX_BATCH_TOKENS),
    )
    sock = bind_socket(host, port)
    try:
        app = create_app(model_id, **limits)
        shown = f"[{host}]" if ":" in host else host
        where = f"http://{shown}:{sock.getsockname()[1]}/v1"
        print(
            f"serving {_served_name(model_id, limits.get('model_name'))!r} at {where}",
            file=sys.stderr,
            flush=True,
        )
        config = uvicorn.Config(app, log_level=log_level, access_log=access_log, timeout_graceful_shutdown=5)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
