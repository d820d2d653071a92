"""`replay:<predictions.jsonl>`: answers read from a predictions file (by task id), so a model's
outputs can be re-scored, shared, or produced by anything that writes JSONL.

For an episode step (`request.step` = k) the answer is the trajectory's k-th action: the k-th of
`calls`, or the k-th non-blank line of `text` (one call per line, as the python format writes
them); past the end the answer is empty, which ends the episode.

A replayed answer has no token counts (none were paid for) and its latency is the look-up's."""

from __future__ import annotations

import time
from pathlib import Path

from toolbench.core.backends.base import Backend, BackendParams, BackendRequest, BackendResponse, OnDone
from toolbench.foundation.errors import UserError
from toolbench.foundation.io import file_sha256, read_records
from toolbench.foundation.records import Prediction


class ReplayBackend(Backend):
    prefix = "replay"

    def __init__(self, spec: str, **_: object):
        super().__init__(spec)
        self.path = Path(spec.split(":", 1)[1])
        if not self.path.is_file():
            raise UserError(f"replay backend: {self.path}: no such file")
        self.predictions = {p.id: p for p in read_records(self.path, Prediction)}

    @property
    def fingerprint(self) -> str:
        return f"replay:{file_sha256(self.path)}"

    def generate(
        self, requests: list[BackendRequest], params: BackendParams, on_done: OnDone | None = None
    ) -> list[BackendResponse]:
        answers = []
        for i, request in enumerate(requests):
            began = time.perf_counter()
            prediction = self.predictions.get(request.id)
            if prediction is None:
                answer = BackendResponse(error=f"no prediction for task '{request.id}' in {self.path}")
            elif request.step is not None:
                answer = _step_answer(prediction, request.step)
            else:
                calls = [c.model_dump() for c in prediction.calls] if prediction.calls is not None else None
                answer = BackendResponse(text=prediction.text or "", tool_calls=calls)
            answer.latency_ms = 1000 * (time.perf_counter() - began)
            if on_done:
                on_done(i, answer)
            answers.append(answer)
        return answers


def _step_answer(prediction: Prediction, step: int) -> BackendResponse:
    if prediction.calls is not None:
        calls = prediction.calls[step : step + 1]
        return BackendResponse(tool_calls=[c.model_dump() for c in calls]) if calls else BackendResponse()
    lines = [line for line in (prediction.text or "").splitlines() if line.strip()]
    return BackendResponse(text=lines[step] if step < len(lines) else "")
