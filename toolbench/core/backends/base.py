"""The Backend protocol: a list of prompts in, a list of answers out, nothing else.

A backend is named by a spec `<prefix>:<rest>` (`hf:PATH_OR_ID`, `openai:MODEL`,
`replay:PREDICTIONS.jsonl`). Its `fingerprint` identifies what produced an answer, so the request
cache never serves one model's answer for another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

Mode = Literal["completion", "chat"]

# Most new tokens per answer unless told otherwise. The longest gold answer of the frozen task
# files is 563 tokens in the embedded tokenizer (an in-distribution trip_booking request: ten
# calls; two thirds of its held-out tasks need more than 256), so with 256 those tasks could not
# be answered at all. A model that stops by itself is not slowed by a larger budget.
ANSWER_TOKENS = 768


class BackendRequest(BaseModel):
    id: str = Field(description="The task id (replay backends look answers up by it).")
    mode: Mode
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    step: int | None = Field(
        None, description="Episodes: which step's action is asked for (replay backends answer with that one)."
    )

    def payload(self) -> dict[str, Any]:
        """What determines the answer (the id does not)."""
        return self.model_dump(exclude={"id"}, exclude_none=True)


class BackendParams(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_tokens: int = Field(ANSWER_TOKENS, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: tuple[str, ...] = ()
    seed: int = 0
    guided: bool = Field(
        False,
        description="Local models only: decode only answers that parse and fit the request's tools "
        "(`toolbench.core.guided`).",
    )


class BackendResponse(BaseModel):
    text: str = ""
    tool_calls: list[dict[str, Any]] | None = Field(
        None, description="Raw {name, arguments} as the API returned them."
    )
    finish_reason: str | None = None
    usage: dict[str, int] = Field(default_factory=dict)
    error: str | None = Field(
        None, description="A request the backend refused (e.g. HTTP 400); scored as a failure."
    )
    # Cost bookkeeping. Both are left out of model_dump (exclude=True), so the answer cache never
    # stores them: a cached answer comes back with no latency, and a latency measured once is never
    # reported again as if it had been paid in a later run.
    latency_ms: float | None = Field(
        None,
        exclude=True,
        description="Wall time of the backend call that produced this answer, in ms (retries "
        "included; a batch's time for each answer of a batched backend); None when not asked now.",
    )
    cached: bool = Field(False, exclude=True, description="Served from the answer cache, not asked now.")


OnDone = Callable[[int, BackendResponse], None]


class Backend:
    prefix: ClassVar[str]

    def __init__(self, spec: str):
        self.spec = spec

    @property
    def fingerprint(self) -> str:
        return self.spec

    def generate(
        self, requests: list[BackendRequest], params: BackendParams, on_done: OnDone | None = None
    ) -> list[BackendResponse]:
        """Answers in request order; `on_done(i, answer)` is called as each finishes (to cache it)."""
        raise NotImplementedError

    def close(self) -> None:
        return None
