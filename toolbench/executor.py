"""Runs a Program on fresh simulators: validate every call against the schema the model saw,
then execute it, and report the final state and structured errors.

Execution stops at the first error, as a real client would when a call fails (ToolBench ran
programs as code, so the first exception ended them); `stop_on_error=False` keeps going for
callers that want every error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from jsonschema.exceptions import best_match

from toolbench.errors import ToolError
from toolbench.records import Call, ExecError, Program
from toolbench.registry import get_tool, spec_index


@dataclass
class Execution:
    state: dict[str, Any]
    results: list[Any] = field(default_factory=list)
    errors: list[ExecError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


_VERDICTS: dict[tuple[int, str], tuple[str, str] | None] = {}
_VERDICTS_MAX = 1 << 16


def schema_error(validator: Any, call: Call) -> ExecError | None:
    """The first schema violation of a call, as `schema:<json-schema keyword>`.

    jsonschema is the slowest step of generation and scoring, and the same (function, arguments)
    pairs recur constantly, so verdicts are memoised per validator (bounded, cleared when full).
    """
    try:
        # decoded: orjson's small bytes keep a ~4 KB buffer each, which a 64k-entry memo would hoard
        key = (id(validator), orjson.dumps(call.arguments, option=orjson.OPT_SORT_KEYS).decode())
    except TypeError:  # not serialisable by orjson (e.g. an int beyond 64 bits): validate directly
        key = None
    verdict = _VERDICTS.get(key, False) if key is not None else False
    if verdict is False:
        # best_match looks inside anyOf/oneOf, so an optional enum argument with a bad value is
        # `schema:enum`, not the unhelpful `schema:anyOf`.
        error = best_match(validator.iter_errors(call.arguments))
        verdict = None
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path)
            verdict = (
                f"schema:{error.validator}",
                (f" at '{where}'" if where else "") + f": {error.message}",
            )
        if key is not None:
            if len(_VERDICTS) >= _VERDICTS_MAX:
                _VERDICTS.clear()
            _VERDICTS[key] = verdict
    if verdict is None:
        return None
    return ExecError(error_type=verdict[0], message=f"{call.name}(){verdict[1]}")


def fill_defaults(call: Call, spec_parameters: dict[str, Any]) -> Call:
    """The call with every omitted optional argument set to its schema default, so that an
    explicit default and an omitted one compare equal."""
    properties = spec_parameters.get("properties", {})
    missing = {k: s["default"] for k, s in properties.items() if "default" in s and k not in call.arguments}
    return Call(name=call.name, arguments={**call.arguments, **missing}) if missing else call


def execute(
    program: Program, tools: list[str], setup: dict[str, Any] | None = None, stop_on_error: bool = True
) -> Execution:
    index = spec_index(tuple(tools))
    simulators = make_simulators(tools, setup)
    if isinstance(simulators, ExecError):
        return Execution(state={}, errors=[simulators])
    results: list[Any] = []
    errors: list[ExecError] = []
    for i, call in enumerate(program):
        error = run_call(i, call, index, simulators, results)
        if error is not None:
            errors.append(error)
            if stop_on_error:
                break
    return Execution(
        state={name: sim.state() for name, sim in simulators.items()}, results=results, errors=errors
    )


def make_simulators(tools: list[str], setup: dict[str, Any] | None) -> dict[str, Any] | ExecError:
    """A fresh simulator per offered tool, each reset with its part of the setup."""
    try:
        return {name: get_tool(name)((setup or {}).get(name)) for name in tools}
    except Exception as error:  # a malformed task setup must not crash a benchmark run
        message = f"the task's setup was refused: {type(error).__name__}: {error}"
        return ExecError(error_type="exec:setup", message=message)


def run_call(
    i: int, call: Call, index: Any, simulators: dict[str, Any], results: list[Any]
) -> ExecError | None:
    """Validate one call against its schema and run it on its owner's simulator; the result is
    appended to `results`, a refusal returned as an ExecError (never raised)."""
    owner = index.owner.get(call.name)
    if owner is None:
        known = ", ".join(index.owner)
        return ExecError(
            call_index=i,
            error_type="schema:unknown_function",
            message=f"{call.name}() is not offered; offered: {known}",
        )
    bad = schema_error(owner.validators[call.name], call)
    if bad is not None:
        bad.call_index = i
        return bad
    try:
        results.append(getattr(simulators[owner.name], call.name)(**call.arguments))
    except ToolError as error:
        return ExecError(call_index=i, error_type=error.error_type, message=f"{call.name}(): {error.message}")
    except Exception as error:  # a simulator bug must not crash a benchmark run
        return ExecError(
            call_index=i, error_type="exec:crash", message=f"{call.name}(): {type(error).__name__}: {error}"
        )
    return None
