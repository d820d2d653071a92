"""Model backends behind one protocol, chosen by the prefix of a model spec."""

from __future__ import annotations

from toolbench.core.backends.base import Backend, BackendParams, BackendRequest, BackendResponse
from toolbench.foundation.errors import UserError

PREFIXES = ("hf", "openai", "replay")


def make_backend(spec: str, **options: object) -> Backend:
    """`hf:PATH_OR_ID`, `openai:MODEL` (with base_url=...), or `replay:PREDICTIONS.jsonl`."""
    prefix, sep, rest = spec.partition(":")
    if not sep or not rest or prefix not in PREFIXES:
        raise UserError(
            f"unknown model spec {spec!r}: write hf:PATH_OR_ID, openai:MODEL (with --base-url) "
            f"or replay:PREDICTIONS.jsonl"
        )
    if prefix == "hf":
        from toolbench.core.backends.hf import HFBackend

        return HFBackend(spec, **options)
    if prefix == "openai":
        from toolbench.core.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(spec, **options)
    from toolbench.core.backends.replay import ReplayBackend

    return ReplayBackend(spec, **options)


__all__ = ["PREFIXES", "Backend", "BackendParams", "BackendRequest", "BackendResponse", "make_backend"]
