"""`openai:<model>` with `--base-url`: any OpenAI-compatible endpoint (OpenAI, vLLM, SGLang,
llama.cpp, `toolbench serve`) through the official async client.

Requests run concurrently up to `concurrency`; 429s, 5xx, timeouts and connection errors are
retried with exponential backoff and jitter (bounded attempts); any other 4xx is that request's
answer (scored as a failure), not a crash. If the endpoint cannot be reached at all, the run stops
with one clear error instead of scoring every task as failed.

Each answer carries the endpoint's `usage` token counts when it sent them (none: left empty, and
reported as n/a) and its latency: the wall time from the first attempt to the answer, retries and
their backoff included, the wait for a concurrency slot not.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random

from toolbench.core.backends.base import Backend, BackendParams, BackendRequest, BackendResponse, OnDone
from toolbench.core.chat_messages import wire_messages
from toolbench.foundation.errors import UserError


class OpenAIBackend(Backend):
    prefix = "openai"

    def __init__(
        self,
        spec: str,
        base_url: str | None = None,
        concurrency: int = 8,
        timeout: float = 60.0,
        retries: int = 4,
        api_key: str | None = None,
        **_: object,
    ):
        super().__init__(spec)
        self.model = spec.split(":", 1)[1]
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.concurrency, self.timeout, self.retries = concurrency, timeout, retries

    @property
    def fingerprint(self) -> str:
        return f"openai:{self.model}@{self.base_url}"

    def generate(
        self, requests: list[BackendRequest], params: BackendParams, on_done: OnDone | None = None
    ) -> list[BackendResponse]:
        return asyncio.run(self._generate_all(requests, params, on_done))

    async def _generate_all(
        self, requests: list[BackendRequest], params: BackendParams, on_done: OnDone | None
    ) -> list[BackendResponse]:
        import openai

        client = openai.AsyncOpenAI(
            base_url=self.base_url, api_key=self.api_key, timeout=self.timeout, max_retries=0
        )
        gate = asyncio.Semaphore(self.concurrency)
        retryable = (
            openai.RateLimitError,
            openai.InternalServerError,
            openai.APITimeoutError,
            openai.APIConnectionError,
        )

        async def one(i: int, request: BackendRequest) -> BackendResponse:
            async with gate:
                began = time.perf_counter()
                try:
                    async for attempt in AsyncRetrying(
                        stop=stop_after_attempt(self.retries + 1),
                        reraise=True,
                        # 0.5 s, 1 s, 2 s ... up to 8 s, plus up to 1 s of jitter (tenacity 8 and 9 alike;
                        # wait_exponential_jitter's `initial` is deprecated in 9.2, its `multiplier` new)
                        wait=wait_exponential(multiplier=0.5, max=8.0) + wait_random(0, 1.0),
                        retry=retry_if_exception_type(retryable),
                    ):
                        with attempt:
                            answer = await self._request(client, request, params)
                except openai.APIConnectionError as error:
                    raise UserError(
                        f"cannot reach {self.base_url} after {self.retries + 1} attempts: {error}"
                    ) from None
                except openai.APIStatusError as error:
                    answer = BackendResponse(error=f"HTTP {error.status_code}: {error.message}")
                answer.latency_ms = 1000 * (time.perf_counter() - began)
            if on_done:
                on_done(i, answer)
            return answer

        try:
            return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))))
        finally:
            await client.close()

    async def _request(self, client: Any, request: BackendRequest, params: BackendParams) -> BackendResponse:
        common: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed,
        }
        if params.stop:
            common["stop"] = list(params.stop)
        if request.mode == "completion":
            result = await client.completions.create(prompt=request.prompt or "", **common)
            choice = result.choices[0]
            return BackendResponse(
                text=choice.text or "", finish_reason=choice.finish_reason, usage=_usage(result)
            )
        extra = {"tools": request.tools, "tool_choice": "auto"} if request.tools else {}
        messages = wire_messages(request.messages or [])  # call arguments as JSON strings, as the API wants
        result = await client.chat.completions.create(messages=messages, **common, **extra)
        choice = result.choices[0]
        calls = None
        if choice.message.tool_calls:
            calls = [
                {"name": c.function.name, "arguments": c.function.arguments}
                for c in choice.message.tool_calls
            ]
        return BackendResponse(
            text=choice.message.content or "",
            tool_calls=calls,
            finish_reason=choice.finish_reason,
            usage=_usage(result),
        )


def _usage(result: Any) -> dict[str, int]:
    """The response's token counts; empty when the endpoint sent no `usage` (some servers do not),
    so the cost summary says n/a instead of counting zero tokens."""
    usage = getattr(result, "usage", None)
    if usage is None:
        return {}
    counts = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
    return {key: int(value) for key, value in counts.items() if value is not None}
