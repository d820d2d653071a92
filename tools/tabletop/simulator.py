"""tabletop: a symbolic blocks-and-bowls world, after ToolBench's tabletop domain (no physics).

The scene is coloured blocks and bowls on a table with nine named positions ("top left corner",
"middle", ...). Every object rests on something: a bowl on a table position; a block on a table
position, in a bowl, or on another block. Names are "<colour> block" / "<colour> bowl" (matched
case-insensitively, spaces collapsed).

Rules (error types):
- `tabletop:not_found`: an object or table position that is not in the scene.
- `tabletop:invalid`: a placement that makes no sense: a bowl onto a block or a bowl (bowls go
  on the table), an object onto itself, the same block twice in one stack.
- `tabletop:blocked`: picking up an object with something on it, or putting a block onto a
  block that already has something on it (a bowl holds any number of blocks).

State: `{"on": {object: what it rests on}, "said": [messages]}`. Success is a goal over it.
Setup: `{"blocks": [colours], "bowls": [colours], "place": [[object, support], ...], "said": [...]}`;
objects without a `place` row stand on free table positions in a fixed order (bowls first).
(The key is not `on`: YAML 1.1 reads a bare `on` key as true.) No setup gives a
default scene: red, green and blue blocks and bowls.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from toolbench.core.simulator import Simulator, function
from toolbench.foundation.errors import ToolError
from toolbench.foundation.records import Call

POSITIONS: tuple[str, ...] = (
    "top left corner",
    "top right corner",
    "bottom left corner",
    "bottom right corner",
    "middle",
    "top side",
    "bottom side",
    "left side",
    "right side",
)
COLOURS: tuple[str, ...] = (
    "red",
    "orange",
    "yellow",
    "green",
    "blue",
    "purple",
    "pink",
    "cyan",
    "brown",
    "gray",
)
DEFAULT_SCENE: dict[str, Any] = {"blocks": ["red", "green", "blue"], "bowls": ["red", "green", "blue"]}
_POSITION_SET = frozenset(POSITIONS)


_NORMS: dict[str, str] = {}  # name -> normalised (the same few dozen names recur in every scene)


def _norm(name: str) -> str:
    """Case and spacing ignored; remembered for a str (a subclass may hash or compare
    otherwise, another type fails as it did)."""
    if type(name) is not str:
        return " ".join(name.split()).lower()
    found = _NORMS.get(name)
    if found is None:
        found = " ".join(name.split()).lower()
        if len(_NORMS) >= 1 << 12:
            _NORMS.clear()
        _NORMS[name] = found
    return found


def _is_bowl(name: str) -> bool:
    return name.endswith(" bowl")


_BOWLS: dict[str, str] = {}  # colour -> the bowl's name (the ten colours recur in every scene)
_BLOCKS: dict[str, str] = {}


def _names(colours: Any, kind: str, memo: dict[str, str]) -> list[str]:
    """The normalised names of the `kind` ("bowl", "block") of each colour."""
    names = []
    for colour in colours:
        name = memo.get(colour) if type(colour) is str else None
        if name is None:
            name = _norm(f"{colour} {kind}")
            if type(colour) is str and len(memo) < 1 << 10:
                memo[colour] = name
        names.append(name)
    return names


def _lay_out(block_colours: Any, bowl_colours: Any, place: Any) -> tuple[dict[str, str], tuple[str, ...]]:
    """Every object of a scene on its support: the `place` rows, the rest on free table
    positions in a fixed order (bowls first)."""
    names = _names(bowl_colours, "bowl", _BOWLS) + _names(block_colours, "block", _BLOCKS)
    if len(set(names)) != len(names):
        raise ValueError(f"tabletop setup names an object twice: {names}")
    if not place:  # no rows: each object, bowls first, on the next table position
        count = len(POSITIONS)
        return {name: POSITIONS[k % count] for k, name in enumerate(names)}, tuple(names)
    on: dict[str, str] = {}
    rows = [(_norm(obj), _norm(support)) for obj, support in place]
    placed = {obj for obj, _ in rows}
    if not placed <= set(names):
        raise ValueError(f"tabletop setup places unknown objects: {sorted(placed - set(names))}")
    used = {support for _, support in rows if support in _POSITION_SET}
    free = [p for p in POSITIONS if p not in used] or list(POSITIONS)
    k = 0
    for name in names:  # bowls first, then blocks, each on the next free table position
        if name not in placed:
            on[name] = free[k % len(free)]
            k += 1
    for obj, support in rows:
        if support not in _POSITION_SET and support not in on and support not in placed:
            raise ValueError(f"tabletop setup puts {obj!r} on unknown {support!r}")
        on[obj] = support
    return on, tuple(names)


class Tabletop(Simulator):
    name = "tabletop"
    description = (
        "A table with coloured blocks and bowls: list objects, locate them, pick one and place it on "
        "another object or a table position, stack blocks, and say messages."
    )

    def reset(self, setup: dict[str, Any] | None = None) -> None:
        scene = DEFAULT_SCENE if setup is None else setup
        self.said: list[str] = [str(m) for m in scene.get("said", [])]
        on, objects = _lay_out(scene.get("blocks", []), scene.get("bowls", []), scene.get("place", []))
        self.on: dict[str, str] = on
        self.objects: list[str] = list(objects)

    def state(self) -> dict[str, Any]:
        return {"on": dict(self.on), "said": list(self.said)}

    def snapshot(self) -> dict[str, Any]:
        return {"on": self.on, "said": self.said}

    # ----------------------------------------------------------------- rules
    def _object(self, name: str) -> str:
        key = _norm(name)
        if key not in self.on:
            raise ToolError(
                "tabletop:not_found", f"no object {name!r} on the table; objects: {', '.join(self.objects)}"
            )
        return key

    def _target(self, name: str) -> str:
        key = _norm(name)
        if key not in self.on and key not in _POSITION_SET:
            raise ToolError(
                "tabletop:not_found",
                f"{name!r} is neither an object on the table nor a table position ({', '.join(POSITIONS)})",
            )
        return key

    def _on_top_of(self, name: str) -> list[str]:
        return [obj for obj, support in self.on.items() if support == name]

    def _place(self, obj: str, target: str) -> None:
        if obj == target:
            raise ToolError("tabletop:invalid", f"cannot put the {obj} on itself")
        if _is_bowl(obj) and target not in _POSITION_SET:
            raise ToolError("tabletop:invalid", f"a bowl goes on a table position, not on the {target}")
        above = self._on_top_of(obj)
        if above:
            raise ToolError("tabletop:blocked", f"cannot pick up the {obj}: the {above[0]} is on top of it")
        if target in self.on and not _is_bowl(target):
            blocking = [o for o in self._on_top_of(target) if o != obj]
            if blocking:
                raise ToolError(
                    "tabletop:blocked",
                    f"cannot put the {obj} on the {target}: the {blocking[0]} is already on it",
                )
        self.on[obj] = target

    # ------------------------------------------------------------- functions
    @function
    def get_obj_names(self) -> list[str]:
        """List the names of every object on the table (blocks and bowls)."""
        return list(self.objects)

    @function
    def get_obj_pos(self, obj: str) -> dict[str, Any]:
        """Find where an object is: what it rests on and the table position under it.

        Args:
            obj: Object name, e.g. "red block" or "blue bowl".
        """
        key = self._object(obj)
        support, height = self.on[key], 0
        while support not in _POSITION_SET:
            support, height = self.on[support], height + 1
        return {"object": key, "on": self.on[key], "position": support, "height": height}

    @function
    def put_first_on_second(self, obj1: str, obj2: str) -> None:
        """Pick up one object and place it on another object or at a table position.

        Args:
            obj1: The object to pick up, e.g. "red block". Nothing may be on top of it.
            obj2: Where to put it: a bowl ("blue bowl"), a block with nothing on it ("green block"), or a table position ("top left corner", "top side", "middle", ...). Bowls only go on table positions.
        """
        self._place(self._object(obj1), self._target(obj2))

    @function
    def stack_objects(self, objects: Annotated[list[str], Field(min_length=2)]) -> None:
        """Stack blocks bottom to top: objects[1] goes on objects[0], objects[2] on objects[1], and so on. The first object stays where it is.

        Args:
            objects: Object names from bottom to top, e.g. ["red block", "green block"].
        """
        keys = [self._object(name) for name in objects]
        if len(set(keys)) != len(keys):
            raise ToolError("tabletop:invalid", "a stack cannot use the same object twice")
        before = dict(self.on)
        try:
            for lower, upper in zip(keys, keys[1:], strict=False):
                self._place(upper, lower)
        except ToolError:
            self.on = before  # a failed stack leaves the scene as it was
            raise

    @function
    def say(self, message: Annotated[str, Field(min_length=1)]) -> None:
        """Say a message out loud to the user.

        Args:
            message: What to say.
        """
        self.said.append(message)

    @classmethod
    def final_reply(cls, calls: list[Call], results: list[Any]) -> str:
        for call, result in zip(reversed(calls), reversed(results), strict=False):
            if call.name == "get_obj_pos" and isinstance(result, dict):
                return f"The {result['object']} is on the {result['on']} ({result['position']})."
            if call.name == "get_obj_names" and isinstance(result, list):
                return "On the table: " + ", ".join(result) + "."
        return "Done."
