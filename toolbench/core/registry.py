"""Finds tools by name.

Built-in tools are the sub-packages of `toolbench.tools` (the repository's `tools/` folder): a
package `tools/<name>/` whose `__init__` exports `TOOL`, its Simulator class. Adding a tool needs
no edit here. Other packages register theirs under the `toolbench.tools` entry-point group
(value: `module:SimulatorClass`)."""

from __future__ import annotations

import importlib
import json
import pkgutil
from functools import cache, lru_cache
from importlib.metadata import entry_points

from toolbench.core.calls import CallFormat, FormatContext, get_format
from toolbench.core.simulator import Simulator, SpecIndex
from toolbench.foundation.errors import UserError
from toolbench.foundation.records import FunctionSpec, Task

ENTRY_POINT_GROUP = "toolbench.tools"


def builtin_tools() -> dict[str, str]:
    import toolbench.tools

    return {
        info.name: f"toolbench.tools.{info.name}:TOOL"
        for info in sorted(pkgutil.iter_modules(toolbench.tools.__path__), key=lambda i: i.name)
        if info.ispkg and not info.name.startswith("_")
    }


@cache
def tool_paths() -> dict[str, str]:
    paths = builtin_tools()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        paths.setdefault(ep.name, ep.value)
    return paths


def tool_names() -> list[str]:
    return list(tool_paths())


@cache
def get_tool(name: str) -> type[Simulator]:
    paths = tool_paths()
    if name not in paths:
        raise UserError(f"unknown tool {name!r}; known tools: {', '.join(paths)}")
    module_name, _, attr = paths[name].partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Simulator)):
        raise UserError(f"tool {name!r} ({paths[name]}) is not a toolbench Simulator subclass")
    return cls


def resolve_tools(spec: str | list[str]) -> list[str]:
    """`all`, one name, or a comma-separated list → tool names, checked."""
    names = spec if isinstance(spec, list) else [part.strip() for part in spec.split(",") if part.strip()]
    if names == ["all"]:
        return tool_names()
    for name in names:
        get_tool(name)
    return names


@cache
def spec_index(tools: tuple[str, ...]) -> SpecIndex:
    return SpecIndex([get_tool(name) for name in tools])


@cache
def formatter(tools: tuple[str, ...], fmt: str) -> CallFormat:
    """The call format bound to the functions these tools offer; one per (tools, format), so
    scoring thousands of predictions reuses it (and the python parser's line cache)."""
    return get_format(fmt, spec_index(tools).format_context)


def task_formatter(task: Task, fmt: str) -> CallFormat:
    """`formatter` for one task: bound to the task's own functions when it carries them (so
    positional arguments bind to its parameters), else to its tools'."""
    if task.functions is None:
        return formatter(tuple(task.offered_tools), fmt)
    key = json.dumps([spec.model_dump() for spec in task.functions], sort_keys=True)
    return _own_formatter(key, fmt)


@lru_cache(maxsize=1024)
def _own_formatter(functions: str, fmt: str) -> CallFormat:
    """One format per distinct function set (BFCL's tasks share few), keyed by their JSON: a
    FunctionSpec holds a dict, so it cannot be a cache key itself."""
    specs = [FunctionSpec.model_validate(value) for value in json.loads(functions)]
    return get_format(fmt, FormatContext({spec.name: spec for spec in specs}, {}))
