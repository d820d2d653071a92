"""`hf:<id-or-path>`: a local transformers model, batched, greedy unless told otherwise.

Requests are batched by prompt length (`LocalModel.batches`): a batch pads little, and a prompt
that would run out of context with the full answer budget goes alone, so it never shortens the
answers of the others.

Token counts come from the model's own tokenizer (the rendered prompt and the generated ids), and
every answer of a batch carries the batch's wall time as its latency: that is how long each of
its requests waited for its answer."""

from __future__ import annotations

import time

from toolbench.core.backends.base import Backend, BackendParams, BackendRequest, BackendResponse, OnDone
from toolbench.core.generation import GenerationParams, load_local_model


class HFBackend(Backend):
    prefix = "hf"

    def __init__(
        self, spec: str, batch_size: int = 8, device: str = "auto", dtype: str = "auto", **_: object
    ):
        super().__init__(spec)
        self.model_id = spec.split(":", 1)[1]
        self.batch_size = batch_size
        self.model = load_local_model(self.model_id, device, dtype)

    @property
    def fingerprint(self) -> str:
        return f"hf:{self.model.fingerprint}"

    def prompt_text(self, request: BackendRequest) -> str:
        if request.mode == "chat":
            return self.model.render_chat(request.messages or [], request.tools)
        return request.prompt or ""

    def generate(
        self, requests: list[BackendRequest], params: BackendParams, on_done: OnDone | None = None
    ) -> list[BackendResponse]:
        options = GenerationParams(
            max_new_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            stop=params.stop,
            seed=params.seed,
        )
        texts = [self.prompt_text(r) for r in requests]
        answers: list[BackendResponse | None] = [None] * len(requests)
        for rows in self.model.batches(texts, params.max_tokens, self.batch_size):
            began = time.perf_counter()
            guides = [requests[i].tools or [] for i in rows] if params.guided else None
            prompts = [texts[i] for i in rows]
            completions = self.model.generate(prompts, options, len(rows), guides)
            latency_ms = 1000 * (time.perf_counter() - began)
            for row, completion in zip(rows, completions, strict=True):
                answer = BackendResponse(
                    text=completion.text,
                    finish_reason=completion.finish_reason,
                    usage={
                        "prompt_tokens": completion.prompt_tokens,
                        "completion_tokens": completion.completion_tokens,
                    },
                    latency_ms=latency_ms,
                )
                if on_done:
                    on_done(row, answer)
                answers[row] = answer
        return [answer for answer in answers if answer is not None]
