"""Goal predicates: success for world-state tools is a condition on the final world, not equality
with one gold state (many action sequences reach a goal; ToolBench scores VirtualHome and Tabletop
this way).

A predicate is `{"path": "tabletop.on.red_block", "op": "eq", "value": "blue_bowl"}`: a dotted path
into the executor's state (`{tool: state}`), an operator, and a JSON value.
Operators: eq, ne, in (state value is one of value), contains (state list/string holds value),
exists, absent. A missing path fails every operator except `absent`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

_MISSING = object()


class Predicate(BaseModel):
    path: str
    op: Literal["eq", "ne", "in", "contains", "exists", "absent"] = "eq"
    value: Any = None

    def describe(self) -> str:
        return (
            f"{self.path} {self.op} {self.value!r}"
            if self.op not in ("exists", "absent")
            else f"{self.path} {self.op}"
        )


def lookup(state: dict[str, Any], path: str) -> Any:
    node: Any = state
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return _MISSING
    return node


def holds(predicate: Predicate, state: dict[str, Any]) -> bool:
    found = lookup(state, predicate.path)
    if predicate.op == "absent":
        return found is _MISSING or found is None
    if found is _MISSING:
        return False
    if predicate.op == "exists":
        return found is not None
    if predicate.op == "eq":
        return found == predicate.value
    if predicate.op == "ne":
        return found != predicate.value
    if predicate.op == "in":
        return isinstance(predicate.value, list) and found in predicate.value
    return isinstance(found, (list, str)) and predicate.value in found  # contains


def unmet(goal: list[Predicate], state: dict[str, Any]) -> list[Predicate]:
    return [predicate for predicate in goal if not holds(predicate, state)]
