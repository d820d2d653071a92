"""The tool mechanism: a simulated API is a small stateful class.

Functions are methods marked with `@function`, with typed arguments and a Google-style
docstring. Their JSON schemas are derived from the signatures once, at class creation, so the
schema a model is shown and the schema the executor validates against are the same object.
Rules (call order, ranges, preconditions) are checks inside the methods that raise
`ToolError("<tool>:<rule>", message)`.
"""

from __future__ import annotations

import inspect
import json
import numbers
import re
import typing
import zlib
from collections.abc import Callable
from fractions import Fraction
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import orjson
from jsonschema import Draft202012Validator
from pydantic import TypeAdapter

from toolbench.core.calls import FormatContext, ValueConstructor
from toolbench.foundation.records import Call, FunctionSpec

F = TypeVar("F", bound=Callable[..., Any])
_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$")
_ARG_LINE = re.compile(r"^(\w+)\s*(?:\([^)]*\))?:\s*(.*)$")


def stable_hash(*parts: Any) -> int:
    """A 32-bit hash that is the same in every process and run (Python's `hash` of a str is
    not). Simulators derive their synthetic results from it: cheap, seed-free, deterministic."""
    return zlib.crc32(repr(parts).encode())


def canonical_order(items: list[Any]) -> list[Any]:
    """The items (JSON values) in a fixed order, the same for any order they came in: so the
    states of two call orders are equal as plain values. Sorted by their JSON (orjson, fast),
    or by `repr` when one is not JSON orjson writes."""
    try:
        return sorted(items, key=orjson.dumps)
    except TypeError:
        return sorted(items, key=repr)


def result_text(result: Any) -> str:
    """A function's result as the text a tool message carries: its JSON, `{"status": "ok"}` for a
    function that returns nothing."""
    return json.dumps({"status": "ok"} if result is None else result, ensure_ascii=False)


def function(method: F) -> F:
    """Mark a simulator method as a function the model may call."""
    method.__toolbench_function__ = True  # type: ignore[attr-defined]
    return method


def _docstring_parts(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (first paragraph, {argument: description})."""
    summary: list[str] = []
    arguments: dict[str, str] = {}
    summary_done = in_args = False
    current: str | None = None
    arg_indent: int | None = None
    for line in inspect.cleandoc(doc or "").splitlines():
        stripped = line.strip()
        if _ARGS_HEADER.match(line):
            in_args, summary_done = True, True
        elif in_args:
            indent = len(line) - len(line.lstrip())
            match = _ARG_LINE.match(stripped)
            if not stripped:
                in_args, current = False, None
            elif match and (arg_indent is None or indent <= arg_indent):
                arg_indent, current = indent, match.group(1)
                arguments[current] = match.group(2).strip()
            elif current:
                arguments[current] += " " + stripped
        elif stripped and not summary_done:
            summary.append(stripped)
        elif summary:
            summary_done = True
    return " ".join(summary), arguments


def _strip_titles(schema: Any) -> Any:
    if isinstance(schema, dict):
        cleaned = {}
        for key, value in schema.items():
            if key == "title":
                continue
            if key == "properties":
                cleaned[key] = {name: _strip_titles(sub) for name, sub in value.items()}
            else:
                cleaned[key] = _strip_titles(value)
        return cleaned
    if isinstance(schema, list):
        return [_strip_titles(item) for item in schema]
    return schema


def spec_from_method(method: Callable[..., Any]) -> FunctionSpec:
    """Derive the OpenAI function spec from a method's signature and docstring."""
    summary, arg_docs = _docstring_parts(method.__doc__)
    hints = typing.get_type_hints(method, include_extras=True)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, parameter in inspect.signature(method).parameters.items():
        if name == "self":
            continue
        if name not in hints:
            raise TypeError(f"{method.__qualname__}: parameter '{name}' needs a type annotation")
        schema = _strip_titles(TypeAdapter(hints[name]).json_schema())
        if name in arg_docs:
            schema["description"] = arg_docs[name]
        if parameter.default is inspect.Parameter.empty:
            required.append(name)
        else:
            schema["default"] = parameter.default
        properties[name] = schema
    parameters: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        parameters["required"] = required
    return FunctionSpec(name=method.__name__, description=summary, parameters=parameters)


# ------------------------------------------------------------------- compiled schema checks
#
# jsonschema walks a schema for every call it validates, and the generator validates every call of
# every label. `compile_check` turns a function's parameter schema, once, into a predicate with the
# same verdict (valid or not) as `Draft202012Validator(schema).is_valid`, over the keywords the
# simulators' schemas use; a schema with any other keyword gets none, and is validated by
# jsonschema alone. The executor trusts a True; on False it asks jsonschema for the error (its
# message, and the final say). `tests/unit/test_simulator.py` compares the two on many values.

Check = Callable[[Any], bool]
_ANNOTATIONS = frozenset({"description", "default", "title", "examples", "format"})  # not checked
_TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, numbers.Number) and not isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())
    ),
}


class _Unsupported(Exception):
    pass


def compile_check(schema: Any) -> Check | None:
    """A predicate equal to jsonschema's (draft 2020-12, no format checker) verdict on `schema`,
    or None when the schema uses a keyword this does not know."""
    try:
        return _compile(schema)
    except _Unsupported:
        return None


def _compile(schema: Any) -> Check:
    if schema is True or schema == {}:
        return _always
    if schema is False or not isinstance(schema, dict):
        raise _Unsupported(repr(schema))
    for key in schema:
        if key not in _ANNOTATIONS and key not in _KEYWORDS:
            raise _Unsupported(key)
    kind = schema.get("type")
    if isinstance(kind, str) and kind in _TYPES and "anyOf" not in schema:
        # one type: its own keywords are checked knowing the value has that type, the others'
        # keywords (which hold only for their types) cannot fail
        if kind == "string":
            return _string(schema)
        if kind in ("integer", "number"):
            return _number(schema, _TYPES[kind])
        if kind == "object":
            return _object(schema)
        if kind == "array":
            return _array(schema)
        if kind == "boolean" and "enum" not in schema:
            return _TYPES[kind]
    # the general case: every keyword on its own, all must hold
    checks: list[Check] = []
    if "type" in schema:
        names = kind if isinstance(kind, list) else [kind]
        if not all(isinstance(name, str) and name in _TYPES for name in names):
            raise _Unsupported("type")
        tests = [_TYPES[name] for name in names]
        checks.append(tests[0] if len(tests) == 1 else lambda v: any(test(v) for test in tests))
    if "enum" in schema:
        checks.append(_enum(schema["enum"]))
    if _NUMBER_KEYWORDS & schema.keys():
        number = _number(schema, _TYPES["number"])
        checks.append(lambda v: not _TYPES["number"](v) or number(v))
    if _STRING_KEYWORDS & schema.keys():
        string = _string(schema, enum=False)
        checks.append(lambda v: not isinstance(v, str) or string(v))
    if _ARRAY_KEYWORDS & schema.keys():
        array = _array(schema)
        checks.append(lambda v: not isinstance(v, list) or array(v))
    if _OBJECT_KEYWORDS & schema.keys():
        obj = _object(schema)
        checks.append(lambda v: not isinstance(v, dict) or obj(v))
    if "anyOf" in schema:
        options = tuple(_compile(sub) for sub in schema["anyOf"])
        if not options:
            raise _Unsupported("anyOf")
        if len(options) == 2 and options[1] is _TYPES["null"]:  # Optional[X]: X or null
            first = options[0]
            checks.append(lambda v: v is None or first(v))
        else:
            checks.append(lambda v: any(option(v) for option in options))
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    return lambda v: all(check(v) for check in checks)


def _always(v: Any) -> bool:
    return True


_NUMBER_KEYWORDS = frozenset({"minimum", "maximum", "multipleOf"})
_STRING_KEYWORDS = frozenset({"minLength", "maxLength", "pattern"})
_ARRAY_KEYWORDS = frozenset({"minItems", "maxItems", "items"})
_OBJECT_KEYWORDS = frozenset({"properties", "required", "additionalProperties"})
_KEYWORDS = (
    frozenset({"type", "enum", "anyOf"})
    | _NUMBER_KEYWORDS
    | _STRING_KEYWORDS
    | _ARRAY_KEYWORDS
    | _OBJECT_KEYWORDS
)


def _enum(values: Any) -> Check:
    """jsonschema's equality: a string equals only an equal string, a number an equal number
    (1 == 1.0) and never a bool; enums with members of other kinds are left to jsonschema."""
    if not isinstance(values, list) or not all(
        type(x) is str or type(x) is int or (type(x) is float and x == x) for x in values
    ):
        raise _Unsupported("enum")
    allowed = frozenset(values)
    return lambda v: (type(v) is str or type(v) is int or type(v) is float) and v in allowed


def _string(schema: dict[str, Any], enum: bool = True) -> Check:
    """A string's keywords (with `enum`, also that it is a string)."""
    allowed = _enum(schema["enum"]) if enum and "enum" in schema else None
    low, high = schema.get("minLength"), schema.get("maxLength")
    search = re.compile(schema["pattern"]).search if "pattern" in schema else None
    if allowed is None and low is None and high is None and search is None:
        return _TYPES["string"]

    def check(v: Any) -> bool:
        if not isinstance(v, str):
            return False
        if allowed is not None and not allowed(v):
            return False
        if low is not None and len(v) < low:
            return False
        if high is not None and len(v) > high:
            return False
        return search is None or search(v) is not None

    return check


def _number(schema: dict[str, Any], is_type: Check) -> Check:
    """A number's keywords, and that the value is of `is_type`."""
    allowed = _enum(schema["enum"]) if "enum" in schema else None
    low, high = schema.get("minimum"), schema.get("maximum")
    for bound in (low, high):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))):
            raise _Unsupported("bound")
    multiple = _multiple_of(schema["multipleOf"]) if "multipleOf" in schema else None

    def check(v: Any) -> bool:
        if not is_type(v):
            return False
        if allowed is not None and not allowed(v):
            return False
        if low is not None and v < low:
            return False
        if high is not None and v > high:
            return False
        return multiple is None or multiple(v)

    return check


def _array(schema: dict[str, Any]) -> Check:
    """An array's keywords, and that the value is an array."""
    if "enum" in schema or ("items" in schema and schema["items"] is False):
        raise _Unsupported("array")
    least, most = schema.get("minItems"), schema.get("maxItems")
    item = _compile(schema["items"]) if "items" in schema else None

    def check(v: Any) -> bool:
        if not isinstance(v, list):
            return False
        if least is not None and len(v) < least:
            return False
        if most is not None and len(v) > most:
            return False
        return item is None or all(item(x) for x in v)

    return check


def _object(schema: dict[str, Any]) -> Check:
    """properties, required and additionalProperties, and that the value is an object."""
    if "enum" in schema:
        raise _Unsupported("object enum")
    properties = {name: _compile(sub) for name, sub in (schema.get("properties") or {}).items()}
    required = schema.get("required") or []
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        raise _Unsupported("required")
    required = tuple(required)
    extra = schema.get("additionalProperties", True)
    extra_check = None if extra is True or extra is False else _compile(extra)
    closed = extra is False

    def check(v: Any) -> bool:
        if not isinstance(v, dict):
            return False
        for name in required:
            if name not in v:
                return False
        for name, value in v.items():
            sub = properties.get(name)
            if sub is None:
                if closed or (extra_check is not None and not extra_check(value)):
                    return False
            elif not sub(value):
                return False
        return True

    return check


def _multiple_of(divisor: Any) -> Check:
    if isinstance(divisor, bool) or not isinstance(divisor, (int, float)):
        raise _Unsupported("multipleOf")

    def check(v: Any) -> bool:  # jsonschema's own arithmetic, so that the verdicts agree
        if isinstance(divisor, float):
            quotient = v / divisor
            try:
                failed = int(quotient) != quotient
            except OverflowError:
                failed = (Fraction(v) / Fraction(divisor)).denominator != 1
        else:
            failed = v % divisor
        return not failed

    return check


class Simulator:
    """Base class of every simulated tool. Subclasses set `name` and `description`, define
    `@function` methods, and implement `reset` and `state`.

    Instances are cheap: the executor makes a fresh one for every program it runs.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    constructors: ClassVar[dict[str, ValueConstructor]] = {}
    specs: ClassVar[dict[str, FunctionSpec]] = {}
    validators: ClassVar[dict[str, Draft202012Validator]] = {}
    checks: ClassVar[dict[str, Check | None]] = {}  # compiled `validators`, where they compile

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        methods: dict[str, Callable[..., Any]] = {}
        for klass in reversed(cls.__mro__):
            for attr, member in vars(klass).items():
                if getattr(member, "__toolbench_function__", False):
                    methods[attr] = member
        cls.specs = {name: spec_from_method(method) for name, method in methods.items()}
        cls.validators = {}
        cls.checks = {}
        for name, spec in cls.specs.items():
            Draft202012Validator.check_schema(spec.parameters)
            cls.validators[name] = Draft202012Validator(spec.parameters)
            cls.checks[name] = compile_check(spec.parameters)

    def __init__(self, setup: dict[str, Any] | None = None):
        self.reset(setup)

    def reset(self, setup: dict[str, Any] | None = None) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """What the scorer compares: plain JSON data. Lists are compared as multisets, so put
        order into keys where it matters."""
        raise NotImplementedError

    def snapshot(self) -> dict[str, Any]:
        """`state()` for a caller that only reads it and runs nothing more on this simulator (the
        generator, which checks every label of every sample, then drops state and simulator): the
        same state as the scorer compares it, which may share the simulator's own containers, or
        constants of its module, instead of copying them, and may put a list the scorer reads as
        a multiset in another fixed order (`canonical_order`). Override it where that saves work
        (a large world, a log sorted by `repr`)."""
        return self.state()

    def observe(self, call: Call, result: Any) -> str:
        """What the model is shown after `call` ran and returned `result` (episodes feed it back
        as the next observation). Environments override it to describe the page or scene."""
        return result_text(result)

    @classmethod
    def final_reply(cls, calls: list[Call], results: list[Any]) -> str:
        """The assistant's closing sentence after the tool answered, for multi-turn training
        samples. Tools override it to say something specific about their results."""
        return "Done." if all(result is None for result in results) else "Here is what I found."

    @classmethod
    def format_context(cls) -> FormatContext:
        return FormatContext(cls.specs, cls.constructors)

    @classmethod
    def tasks_file(cls, task_set: str = "test") -> Path:
        """A frozen task file shipped beside the simulator's module: `test` (held-out templates) or
        `indist` (the training templates with new values; see `toolbench.core.task_files.TASK_SETS`)."""
        return Path(inspect.getfile(cls)).parent / f"{task_set}.jsonl"

    @classmethod
    def templates_dir(cls) -> Path:
        return Path(str(resources.files("toolbench.templates") / cls.name))


class SpecIndex:
    """Functions of several offered tools, routed by name (names must be unique across them)."""

    def __init__(self, simulators: list[type[Simulator]]):
        self.simulators = simulators
        self.owner: dict[str, type[Simulator]] = {}
        for sim in simulators:
            for name in sim.specs:
                if name in self.owner:
                    raise ValueError(
                        f"function '{name}' is offered by both {self.owner[name].name} and {sim.name}"
                    )
                self.owner[name] = sim

    @cached_property
    def specs(self) -> dict[str, FunctionSpec]:
        return {name: sim.specs[name] for name, sim in self.owner.items()}

    @cached_property
    def checks(self) -> dict[str, Check | None]:
        """Every offered function's compiled schema check (`Simulator.checks`), by name."""
        return {name: sim.checks.get(name) for name, sim in self.owner.items()}

    @cached_property
    def format_context(self) -> FormatContext:
        constructors: dict[str, ValueConstructor] = {}
        for sim in self.simulators:
            for name, constructor in sim.constructors.items():
                if name in constructors and constructors[name] is not constructor:
                    raise ValueError(
                        f"value constructor '{name}' is declared differently by two offered tools"
                    )
                constructors[name] = constructor
        return FormatContext(self.specs, constructors)
