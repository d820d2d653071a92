"""`hf:<id-or-path>`: a local transformers model, batched, greedy unless told otherwise.

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
        answers: list[BackendResponse] = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            began = time.perf_counter()
            guides = [r.tools or [] for r in chunk] if params.guided else None
            prompts = [self.prompt_text(r) for r in chunk]
            completions = self.model.generate(prompts, options, self.batch_size, guides)
            latency_ms = 1000 * (time.perf_counter() - began)
            for completion in completions:
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
                    on_done(len(answers), answer)
                answers.append(answer)
        return answers
