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
import re
import typing
import zlib
from collections.abc import Callable
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from jsonschema import Draft202012Validator
from pydantic import TypeAdapter

from toolbench.calls import FormatContext, ValueConstructor
from toolbench.records import Call, FunctionSpec

F = TypeVar("F", bound=Callable[..., Any])
_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$")
_ARG_LINE = re.compile(r"^(\w+)\s*(?:\([^)]*\))?:\s*(.*)$")


def stable_hash(*parts: Any) -> int:
    """A 32-bit hash that is the same in every process and run (Python's `hash` of a str is
    not). Simulators derive their synthetic results from it: cheap, seed-free, deterministic."""
    return zlib.crc32(repr(parts).encode())


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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        methods: dict[str, Callable[..., Any]] = {}
        for klass in reversed(cls.__mro__):
            for attr, member in vars(klass).items():
                if getattr(member, "__toolbench_function__", False):
                    methods[attr] = member
        cls.specs = {name: spec_from_method(method) for name, method in methods.items()}
        cls.validators = {}
        for name, spec in cls.specs.items():
            Draft202012Validator.check_schema(spec.parameters)
            cls.validators[name] = Draft202012Validator(spec.parameters)

    def __init__(self, setup: dict[str, Any] | None = None):
        self.reset(setup)

    def reset(self, setup: dict[str, Any] | None = None) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """What the scorer compares: plain JSON data. Lists are compared as multisets, so put
        order into keys where it matters."""
        raise NotImplementedError

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
    def tasks_file(cls) -> Path:
        """The frozen held-out tasks shipped beside the simulator's module."""
        return Path(inspect.getfile(cls)).parent / "test.jsonl"

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
