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

from toolbench.core.registry import get_tool, spec_index
from toolbench.foundation.errors import ToolError
from toolbench.foundation.records import Call, ExecError, Program


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


def schema_error(validator: Any, call: Call, check: Any = None) -> ExecError | None:
    """The first schema violation of a call, as `schema:<json-schema keyword>`.

    `check`, the schema compiled into a predicate (`Simulator.checks`), answers most calls: a call
    it passes is valid. Otherwise jsonschema decides and words the error. jsonschema is the
    slowest step of generation and scoring, and the same (function, arguments) pairs recur
    constantly, so its verdicts are memoised per validator (bounded, cleared when full).
    """
    if check is not None:
        try:
            if check(call.arguments):
                return None
        except Exception:  # noqa: BLE001 - an odd value: jsonschema will say what is wrong
            pass
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
    program: Program | list[Call],
    tools: list[str],
    setup: dict[str, Any] | None = None,
    stop_on_error: bool = True,
    validated: bool = False,
) -> Execution:
    """`validated=True`: the caller has already checked every call of `program` against its
    schema (`first_schema_error`, which stops where the first bad call is) and runs only what
    passed, so the per-call schema check is skipped. The generator splits the two so that its
    profile can tell them apart; everyone else leaves it False."""
    if validated and len(tools) == 1:
        return _execute_one(program, tools[0], setup, stop_on_error)
    index = spec_index(tuple(tools))
    simulators = make_simulators(tools, setup)
    if isinstance(simulators, ExecError):
        return Execution(state={}, errors=[simulators])
    results: list[Any] = []
    errors: list[ExecError] = []
    if validated:  # `run_validated_call`, inline: the generator runs every label of every sample
        owners = index.owner
        for i, call in enumerate(program):
            try:
                results.append(getattr(simulators[owners[call.name].name], call.name)(**call.arguments))
            except Exception as error:  # noqa: BLE001 - a refusal, or a simulator bug: reported
                errors.append(_refusal(i, call, error))
                if stop_on_error:
                    break
    else:
        for i, call in enumerate(program):
            error = run_call(i, call, index, simulators, results)
            if error is not None:
                errors.append(error)
                if stop_on_error:
                    break
    return Execution(
        state={name: sim.state() for name, sim in simulators.items()}, results=results, errors=errors
    )


def _execute_one(
    program: Program | list[Call], tool: str, setup: dict[str, Any] | None, stop_on_error: bool
) -> Execution:
    """`execute` of validated calls on one tool, without the routing several tools need."""
    try:
        simulator_class = get_tool(tool)
    except Exception as error:  # noqa: BLE001 - as make_simulators reports it
        return Execution(state={}, errors=[_setup_refused(error)])
    return execute_validated(program, tool, simulator_class, setup, stop_on_error)


def execute_validated(
    program: Program | list[Call],
    tool: str,
    simulator_class: type,
    setup: dict[str, Any] | None,
    stop_on_error: bool = True,
    snapshot: bool | None = False,
) -> Execution:
    """`execute(program, [tool], setup, validated=True)` given the tool's simulator class,
    `get_tool(tool)` (the generator runs every label of every sample: it looks it up once).
    `snapshot`: the state is `Simulator.snapshot()`, for a caller that only reads it; None: no
    state is taken (`Execution.state` is empty), for a caller that has no use for it."""
    try:
        simulator = simulator_class(setup.get(tool) if setup else None)
    except Exception as error:  # noqa: BLE001 - what make_simulators reports
        return Execution(state={}, errors=[_setup_refused(error)])
    results: list[Any] = []
    errors: list[ExecError] = []
    append = results.append
    for i, call in enumerate(program):
        try:
            append(getattr(simulator, call.name)(**call.arguments))
        except Exception as error:  # noqa: BLE001 - a refusal, or a simulator bug: reported
            errors.append(_refusal(i, call, error))
            if stop_on_error:
                break
    if snapshot is None:
        return Execution(state={}, results=results, errors=errors)
    state = simulator.snapshot() if snapshot else simulator.state()
    return Execution(state={tool: state}, results=results, errors=errors)


def first_schema_error(program: Program | list[Call], index: Any) -> ExecError | None:
    """The first call of `program` that names no offered function or breaks its schema, as the
    ExecError `run_call` would give it (with its `call_index`), or None when every call passes."""
    checks = index.checks
    for i, call in enumerate(program):
        check = checks.get(call.name)
        if check is not None:  # schema_error's first step, inline: the usual call passes here
            try:
                if check(call.arguments):
                    continue
            except Exception:  # noqa: BLE001, S112 - jsonschema below says what is wrong
                pass
        owner = index.owner.get(call.name)
        if owner is None:
            return _unknown_function(i, call, index)
        bad = schema_error(owner.validators[call.name], call)
        if bad is not None:
            bad.call_index = i
            return bad
    return None


def make_simulators(tools: list[str], setup: dict[str, Any] | None) -> dict[str, Any] | ExecError:
    """A fresh simulator per offered tool, each reset with its part of the setup."""
    try:
        return {name: get_tool(name)((setup or {}).get(name)) for name in tools}
    except Exception as error:  # a malformed task setup must not crash a benchmark run
        return _setup_refused(error)


def _setup_refused(error: Exception) -> ExecError:
    message = f"the task's setup was refused: {type(error).__name__}: {error}"
    return ExecError(error_type="exec:setup", message=message)


def run_call(
    i: int, call: Call, index: Any, simulators: dict[str, Any], results: list[Any]
) -> ExecError | None:
    """Validate one call against its schema and run it on its owner's simulator; the result is
    appended to `results`, a refusal returned as an ExecError (never raised)."""
    owner = index.owner.get(call.name)
    if owner is None:
        return _unknown_function(i, call, index)
    bad = schema_error(owner.validators[call.name], call, owner.checks.get(call.name))
    if bad is not None:
        bad.call_index = i
        return bad
    return run_validated_call(i, call, index, simulators, results)


def _unknown_function(i: int, call: Call, index: Any) -> ExecError:
    known = ", ".join(index.owner)
    return ExecError(
        call_index=i,
        error_type="schema:unknown_function",
        message=f"{call.name}() is not offered; offered: {known}",
    )


def run_validated_call(
    i: int, call: Call, index: Any, simulators: dict[str, Any], results: list[Any]
) -> ExecError | None:
    """`run_call` for a call already checked against its schema (`first_schema_error`)."""
    owner = index.owner[call.name]
    try:
        results.append(getattr(simulators[owner.name], call.name)(**call.arguments))
    except Exception as error:  # noqa: BLE001 - a refusal, or a simulator bug: reported
        return _refusal(i, call, error)
    return None


def _refusal(i: int, call: Call, error: Exception) -> ExecError:
    """The ExecError of a call whose function raised: the tool's rule for a ToolError, else
    `exec:crash` (a simulator bug must not crash a benchmark run)."""
    if isinstance(error, ToolError):
        return ExecError(call_index=i, error_type=error.error_type, message=f"{call.name}(): {error.message}")
    return ExecError(
        call_index=i, error_type="exec:crash", message=f"{call.name}(): {type(error).__name__}: {error}"
    )
