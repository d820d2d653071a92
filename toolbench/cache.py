"""A disk cache of model answers keyed by what determines them: the backend's fingerprint, the
request (prompt or messages + tools) and the generation parameters.

SQLite in WAL mode, one commit per answer: a run killed at any point keeps every answer it got,
the rerun asks the model only for the rest, and a repeated run costs nothing.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import orjson

from toolbench.backends.base import BackendParams, BackendRequest, BackendResponse


def request_key(fingerprint: str, request: BackendRequest, params: BackendParams) -> str:
    payload = {"backend": fingerprint, "request": request.payload(), "params": params.model_dump(mode="json")}
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


class RequestCache:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer BLOB NOT NULL)")

    def get(self, key: str) -> BackendResponse | None:
        row = self.db.execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
        return BackendResponse.model_validate(orjson.loads(row[0])) if row else None

    def put(self, key: str, answer: BackendResponse) -> None:
        if answer.error is not None:
            return  # a refused request is not an answer worth keeping: retry it next time
        self.db.execute(
            "INSERT OR REPLACE INTO answers VALUES (?, ?)", (key, orjson.dumps(answer.model_dump()))
        )

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        self.db.close()


def cached_generate(
    backend: Any,
    requests: list[BackendRequest],
    params: BackendParams,
    cache: RequestCache | None,
    on_answer: Any = None,
) -> tuple[list[BackendResponse], int]:
    """Answers for every request, asking the backend only for those not cached. Returns
    (answers, number served from the cache)."""
    keys = [request_key(backend.fingerprint, r, params) for r in requests]
    answers: list[BackendResponse | None] = [cache.get(k) if cache is not None else None for k in keys]
    missing = [i for i, a in enumerate(answers) if a is None]
    hits = len(requests) - len(missing)

    def done(j: int, answer: BackendResponse) -> None:
        i = missing[j]
        answers[i] = answer
        if cache is not None:
            cache.put(keys[i], answer)
        if on_answer:
            on_answer()

    if missing:
        backend.generate([requests[i] for i in missing], params, done)
    return [a for a in answers if a is not None], hits
