"""`toolbench serve`: a local Hugging Face model behind the OpenAI HTTP API, so any OpenAI client
(and toolbench's own `openai` backend) can be evaluated against it.

Generation goes through `toolbench.generation.LocalModel`, the same code as the `hf:` backend, so for
the same messages, tools and settings the server's text equals the library's token for token.
Tool calls are read from the text with the `chat-native` call format (`<tool_call>{…}</tool_call>`
blocks) and returned as OpenAI `tool_calls`; text that does not parse is returned as plain content.

The model is CPU/GPU-bound and not thread-safe: every request is rendered, counted and generated
under one lock, in a worker thread, so the event loop keeps answering while a request generates.
Every error body has OpenAI's shape, so clients raise their usual exceptions (`BadRequestError`…).
Not supported, with a 400 rather than silently: streaming, `n` > 1, batched completion prompts.
`tool_choice` "required" or a named function is validated but not enforced (there is no
constrained decoding): the model may still answer in text.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from toolbench.calls.chat_native import ChatNativeFormat
from toolbench.errors import CallParseError, UserError
from toolbench.generation import Completion, GenerationParams, load_local_model

MAX_STOP_SEQUENCES = 4  # OpenAI's limit; each stop string also costs a stopping criterion per step

# One lock for the process, not per app: `load_local_model` caches, so two apps built on the same
# model share one LocalModel (and torch's global RNG, which seeded sampling sets).
_GENERATION_LOCK = threading.Lock()


class ApiError(Exception):
    """A request we refuse on purpose; rendered as OpenAI's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        type_: str = "invalid_request_error",
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type_


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(
        error_body(error.message, error.type, error.param, error.code), status_code=error.status
    )


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

    With tools on, `<tool_call>` blocks become `tool_calls` (ids `call_<n>`, arguments a JSON string)
    and the remaining free text the content (null when empty). Text that fails to parse as calls is
    returned unchanged as content: a malformed answer is the model's business, not a server error.
    A truncated answer keeps finish_reason "length" so the client can tell it was cut.
    """
    plain = {"role": "assistant", "content": text}
    if not parse_tools:
        return plain, finish_reason
    try:
        content, program = ChatNativeFormat().split(text)
    except CallParseError:
        return plain, finish_reason
    if not len(program):
        return plain, finish_reason
    calls = [
        {
            "id": f"call_{n}",
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)},
        }
        for n, call in enumerate(program)
    ]
    message = {"role": "assistant", "content": content or None, "tool_calls": calls}
    return message, ("length" if finish_reason == "length" else "tool_calls")


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


def _served_name(model_id: str, model_name: str | None) -> str:
    return model_name or Path(model_id).name or model_id


def create_app(
    model_id: str,
    *,
    max_request_bytes: int = 1_000_000,
    max_tokens_limit: int = 1024,
    model_name: str | None = None,
) -> FastAPI:
    """An app serving `model_id` (a local HF folder or hub id), loaded once, here.

    `max_request_bytes` bounds request bodies (413 beyond), `max_tokens_limit` bounds what one
    request may ask to generate (400 beyond); a request without `max_tokens` gets
    min(GenerationParams' default, max_tokens_limit), the hf backend's default.
    """
    model = load_local_model(model_id)
    name = _served_name(model_id, model_name)
    accepted_names = {name, model_id}
    created = int(time.time())
    # The fingerprint holds the folder's absolute path; clients get a hash of it, not the path.
    fingerprint = "fp_" + hashlib.sha256(model.fingerprint.encode()).hexdigest()[:12]
    default_tokens = min(GenerationParams().max_new_tokens, max_tokens_limit)

    app = FastAPI(title="toolbench serve", docs_url=None, redoc_url=None, openapi_url=None)
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
        return GenerationParams(budget, body.temperature, body.top_p, tuple(stop), body.seed)

    def generate(render: Callable[[], str], settings: GenerationParams, param: str) -> Completion:
        """Render, check the length and generate, all under the lock: the fast tokenizer is no
        more thread-safe than the model."""
        with _GENERATION_LOCK:
            prompt = render()
            tokens = model.count_tokens(prompt)
            if tokens >= model.context_length:
                message = f"the prompt is {tokens} tokens; this model's context is {model.context_length}"
                raise ApiError(400, message, param, "context_length_exceeded")
            return model.generate([prompt], settings, batch_size=1)[0]

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
    async def chat_completions(body: ChatRequest) -> dict[str, Any]:
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

        def render() -> str:
            try:
                return model.render_chat(messages, tools or None)
            except UserError as error:
                raise ApiError(400, str(error), "messages") from None
            except Exception as error:  # a template's raise_exception, or a shape it cannot render
                raise ApiError(400, f"the chat template rejected the messages: {error}", "messages") from None

        completion = await run_in_threadpool(generate, render, settings, "messages")
        message, finish = assistant_message(
            completion.text, completion.finish_reason, bool(tools) and choice != "none"
        )
        return envelope(
            "chatcmpl", "chat.completion", {"message": message, "finish_reason": finish}, completion
        )

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest) -> dict[str, Any]:
        settings = params(body, body.max_tokens)
        if isinstance(body.prompt, list):
            if len(body.prompt) != 1:
                raise ApiError(400, f"prompt must be one string, got a list of {len(body.prompt)}", "prompt")
            prompt = body.prompt[0]
        else:
            prompt = body.prompt
        completion = await run_in_threadpool(generate, lambda: prompt, settings, "prompt")
        return envelope(
            "cmpl",
            "text_completion",
            {"text": completion.text, "finish_reason": completion.finish_reason},
            completion,
        )

    app.state.model = model
    return app


def run_server(model_id: str, host: str = "127.0.0.1", port: int = 8000, **limits: Any) -> None:
    """Serve `model_id` until interrupted. `limits` go to `create_app` (max_request_bytes,
    max_tokens_limit, model_name).

    The default host, 127.0.0.1, serves this machine only. Binding 0.0.0.0 exposes the model to
    every network the machine is on, with no authentication: anyone who can reach the port can
    use the model (and the CPU/GPU it runs on).
    """
    import uvicorn

    app = create_app(model_id, **limits)
    uvicorn.run(app, host=host, port=port, log_level="info")
