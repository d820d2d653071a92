r"""A disk cache of model answers keyed by what determines them: the backend's fingerprint, the
request (prompt or messages + tools) and the generation parameters.

SQLite in WAL mode, one commit per answer: a run killed at any point keeps every answer it got,
the rerun asks the model only for the rest, and a repeated run costs nothing.

Answers are stored as JSON by `toolbench.foundation.io.dumps`, so any text a model can produce is cached and
read back unchanged: lone surrogates (stored as `\udcff` escapes), NUL, huge or deeply nested
text. Keys hash the same JSON (orjson's bytes whenever orjson can write the request, so keys made
before lone surrogates were handled still hit).
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

from toolbench.core.backends.base import BackendParams, BackendRequest, BackendResponse
from toolbench.foundation.io import dumps, loads


def request_key(fingerprint: str, request: BackendRequest, params: BackendParams) -> str:
    # `guided` joins the key only when on, so answers cached before it existed keep their keys
    settings = params.model_dump(mode="json", exclude=set() if params.guided else {"guided"})
    payload = {"backend": fingerprint, "request": request.payload(), "params": settings}
    return hashlib.sha256(dumps(payload, sort_keys=True)).hexdigest()


class RequestCache:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer BLOB NOT NULL)")

    def get(self, key: str) -> BackendResponse | None:
        """The cached answer, or None: never cached, or stored in a form this version cannot read
        (then the model is asked again and the row replaced)."""
        row = self.db.execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return BackendResponse.model_validate(loads(row[0]))
        except (ValueError, RecursionError):  # ValidationError and JSONDecodeError are ValueErrors
            return None

    def put(self, key: str, answer: BackendResponse) -> None:
        if answer.error is not None:
            return  # a refused request is not an answer worth keeping: retry it next time
        self.db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?)", (key, dumps(answer.model_dump())))

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
