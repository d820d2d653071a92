"""An AST checker for tasks that carry their own functions (BFCL's), written from BFCL's published
matching rules, so a model scored here gets the verdicts BFCL's own checker gives.

A task's `answers` list, per expected call, the acceptable values of each argument. An answer is
right when (BFCL's rules, in the order they are checked):

- the number of calls is the number expected; a `parallel` category matches calls to expected calls
  in any order (each expected call, in turn, takes the first unmatched call that fits it: BFCL's
  greedy matching), every other category in order;
- each call names the expected function; every parameter the function requires is given; no
  argument is given that the function does not declare or the answer does not list;
- each value has the declared type (`type(value) is T`, so `True` is not an integer), where an
  integer is accepted for a number (`float`) and a list for an array; a value of the type the
  acceptable values have instead (BFCL's "variable": an answer `["True"]` for a boolean) is
  accepted and then compared as is; array items are type-checked one level deep;
- a string matches after normalising both sides (lower case, no spaces nor `,./-_*^`, `'` as `"`);
  a list matches one acceptable list element by element (its strings normalised); an object
  matches an acceptable object key by key (its values being lists of acceptable values); a list
  of objects matches an acceptable list object by object; anything else by equality;
- an argument left out must have `""` among its acceptable values (it may be omitted).

With no expected calls (`answers == []`, BFCL's irrelevance) the right answer is no call, and an
answer that cannot be read as calls counts as no call; with `answers is None` (BFCL's
live_relevance) any call is right. Verdicts become a `Score` (`score_own_functions`) whose
error types use the scorer's families (`schema:*` for a call the functions' schema refuses,
`state:*` for a wrong or missing value) and whose diagnosis is the scorer's taxonomy, so
summaries, per-category tables and the leaderboard work unchanged."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from toolbench.foundation.errors import CallParseError
from toolbench.foundation.records import (
    Call,
    ExecError,
    FunctionSpec,
    Program,
    Score,
    Task,
    diagnose,
    parse_error_score,
)

# JSON schema type -> the Python type a value must have (BFCL's "float" is "number", "dict" is
# "object", "tuple" is "array" and "any" is "string" once imported: `toolbench.pipelines.bfcl_import`).
PYTHON_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
}

_IGNORED = re.compile(r"[ ,./\-_*^]")


@dataclass(frozen=True)
class Verdict:
    """Whether an answer is right; if not, why (`error_type`, a scorer family) in words, and how
    many expected calls it matched before failing."""

    valid: bool
    error_type: str | None = None
    message: str = ""
    matched: int = 0


OK = Verdict(True)


def _fail(error_type: str, message: str) -> Verdict:
    return Verdict(False, error_type, message)


def normalise(text: str) -> str:
    """BFCL's string normalisation: `April 1, 2024` and `april 1 2024` are the same answer."""
    return _IGNORED.sub("", text).lower().replace("'", '"')


def _answer_type(accepted: list[Any]) -> type | None:
    """The type of the first acceptable value that is not the may-be-omitted marker `""`."""
    for value in accepted:
        if not (type(value) is str and value == ""):
            return type(value)
    return None


def _type_matches(
    value: Any, accepted: list[Any], expected: type, item_type: type | None
) -> tuple[bool, bool]:
    """(type ok, compared as a "variable") per BFCL: the declared type, else the acceptable
    values' own type; an array's items are checked against each acceptable list in turn (an
    acceptable value that is not a list, such as `""`, waives the item check)."""
    answer_type = _answer_type(accepted)
    variable = answer_type is not None and answer_type is not expected
    if type(value) is expected:
        if item_type is None:
            return True, variable
        for alternative in accepted:
            if type(alternative) is not list or all(
                _type_matches(item, alternative, item_type, None)[0] for item in value
            ):
                return True, variable
        return False, variable
    if answer_type is not None and type(value) is answer_type:
        return True, True
    return False, variable


def _normalised(values: list[Any]) -> list[Any]:
    return [normalise(v) if type(v) is str else v for v in values]


def _dict_matches(value: dict[str, Any], accepted: list[Any]) -> bool:
    """Some acceptable object (each key: a list of acceptable values, `""` = may be left out) has
    every key of `value` with its value among the normalised acceptable ones, and no key left out
    that must be given."""
    for alternative in accepted:
        if type(alternative) is not dict:
            continue
        fits = True
        for key, item in value.items():
            if key not in alternative:
                fits = False
                break
            options = alternative[key] if type(alternative[key]) is list else [alternative[key]]
            if (normalise(item) if type(item) is str else item) not in _normalised(options):
                fits = False
                break
        if fits and all(
            key in value or "" in (options if type(options) is list else [options])
            for key, options in alternative.items()
        ):
            return True
    return False


def _list_of_dicts_matches(value: list[Any], accepted: list[Any]) -> bool:
    """Some acceptable list has as many objects, each matching its counterpart (`_dict_matches`)."""
    for alternative in accepted:
        options = [] if alternative == "" else alternative
        if type(options) is not list or len(options) != len(value):
            continue
        if all(type(v) is dict and _dict_matches(v, [o]) for v, o in zip(value, options, strict=True)):
            return True
    return False


def _list_matches(value: list[Any], accepted: list[Any]) -> bool:
    mine = _normalised(value)
    for alternative in accepted:
        options = [] if alternative == "" else alternative
        if type(options) is list and mine == _normalised(options):
            return True
    return False


def check_value(param: str, value: Any, schema: Mapping[str, Any], accepted: list[Any]) -> Verdict:
    """One argument against its acceptable values (module docstring: types, then values)."""
    kind = schema.get("type")
    expected = PYTHON_TYPES.get(kind) if isinstance(kind, str) else None
    if expected is None:
        return _fail("schema:type", f"parameter '{param}' declares no checkable type ({kind!r})")
    items = schema.get("items")
    item_type = PYTHON_TYPES.get(items.get("type")) if kind == "array" and isinstance(items, dict) else None
    if kind == "number" and type(value) is int:
        value = float(value)
    type_ok, variable = _type_matches(value, accepted, expected, item_type)
    if not type_ok:
        return _fail("schema:type", f"'{param}' should be {kind}, got {type(value).__name__} {_short(value)}")
    if not variable:
        if expected is dict:
            matched = _dict_matches(value, accepted)
        elif expected is list and item_type is dict:
            matched = _list_of_dicts_matches(value, accepted)
        elif expected is str:
            matched = normalise(value) in [normalise(a) for a in accepted if type(a) is str]
        elif expected is list:
            matched = _list_matches(value, accepted)
        else:
            matched = value in accepted
    else:
        matched = value in accepted
    if not matched:
        return _fail("state:wrong_value", f"'{param}' = {_short(value)} is not one of {_short(accepted)}")
    return OK


def check_call(spec: FunctionSpec, call: Call, answer: Mapping[str, Mapping[str, list[Any]]]) -> Verdict:
    """One call against one expected call (`{function: {parameter: acceptable values}}`); `spec`
    is the expected function's."""
    ((name, accepted),) = answer.items()
    if call.name != name:
        return _fail("state:wrong_function", f"called {call.name}(), expected {name}()")
    properties = spec.parameters.get("properties", {})
    for param in spec.parameters.get("required", []):
        if param not in call.arguments:
            return _fail("schema:required", f"{name}(): required argument '{param}' is missing")
    for param, value in call.arguments.items():
        if param not in properties:
            return _fail("schema:additionalProperties", f"{name}() has no parameter '{param}'")
        if param not in accepted:
            return _fail("state:unexpected_argument", f"{name}(): '{param}' should not be given")
        verdict = check_value(param, value, properties[param], accepted[param])
        if not verdict.valid:
            return Verdict(False, verdict.error_type, f"{name}(): {verdict.message}")
    for param, options in accepted.items():
        if param not in call.arguments and "" not in options:
            return _fail("state:missing_argument", f"{name}(): '{param}' must be given")
    return OK


def check(
    functions: Mapping[str, FunctionSpec],
    calls: Sequence[Call],
    answers: list[dict[str, dict[str, list[Any]]]] | None,
    parallel: bool,
) -> Verdict:
    """An answer's calls against the expected calls (module docstring)."""
    if answers is None:
        if calls:
            return Verdict(True, matched=len(calls))
        return _fail("state:no_call", "a call was due; the answer has none")
    if not answers:
        if calls:
            return _fail(
                "state:unexpected_call", "no offered function fits this request; the right answer is no call"
            )
        return OK
    if len(calls) != len(answers):
        return _fail("state:wrong_count", f"{len(calls)} call(s), expected {len(answers)}")
    for call in calls:
        if call.name not in functions:
            return _fail("schema:unknown_function", f"{call.name}() is not one of the offered functions")
    if not parallel:
        for i, (call, answer) in enumerate(zip(calls, answers, strict=True)):
            verdict = check_call(functions[next(iter(answer))], call, answer)
            if not verdict.valid:
                return Verdict(False, verdict.error_type, verdict.message, matched=i)
        return Verdict(True, matched=len(answers))
    taken: set[int] = set()
    for i, answer in enumerate(answers):
        name = next(iter(answer))
        reasons: list[Verdict] = []
        for j, call in enumerate(calls):
            if j in taken:
                continue
            verdict = check_call(functions[name], call, answer)
            if verdict.valid:
                taken.add(j)
                break
            reasons.append(verdict)
        else:
            # the most telling reason: one from a call to the right function, if any
            reason = next((r for r in reasons if r.error_type != "state:wrong_function"), reasons[-1])
            return Verdict(False, reason.error_type, f"expected call {i + 1}: {reason.message}", matched=i)
    return Verdict(True, matched=len(answers))


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_parallel(task: Task) -> bool:
    """BFCL matches calls in any order in its parallel categories (`parallel`, `parallel_multiple`,
    `live_parallel`, `live_parallel_multiple`)."""
    return "parallel" in task.category


def check_task(task: Task, calls: Sequence[Call]) -> Verdict:
    """`check` with the task's own functions, answers and category."""
    functions = {spec.name: spec for spec in task.functions or []}
    return check(functions, calls, task.answers, is_parallel(task))


def score_own_functions(task: Task, prediction: Program | CallParseError) -> Score:
    """The Score of one answer to a task that carries its own functions. There is no state: state
    F1 and AST match are 1 on success, else 0; `lcs` is the share of expected calls matched."""
    base = {"id": task.id, "tool": task.tool, "category": task.category}
    if isinstance(prediction, CallParseError):
        if task.answers == []:  # BFCL: an answer that does not decode holds no call
            return Score(**base, success=True, state_f1=1.0, ast_match=True, best_label=0, lcs=1.0)
        return parse_error_score(base, prediction.error_type, prediction.message)
    calls = list(prediction)
    verdict = check_task(task, calls)
    names = {spec.name for spec in task.functions or []}
    expected = len(calls) if task.answers is None else len(task.answers)
    longer = max(len(calls), expected)
    errors = (
        []
        if verdict.valid
        else [ExecError(error_type=verdict.error_type or "state:mismatch", message=verdict.message)]
    )
    return Score(
        **base,
        success=verdict.valid,
        state_f1=1.0 if verdict.valid else 0.0,
        ast_match=verdict.valid,
        best_label=0,
        executable=all(call.name in names for call in calls),
        lcs=1.0 if verdict.valid else (verdict.matched / longer if longer else 0.0),
        error_type=errors[0].error_type if errors else None,
        errors=errors,
        n_calls=len(calls),
        diagnosis=None if verdict.valid else diagnose(calls, list(task.labels[0]), errors),
    )
