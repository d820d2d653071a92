"""virtual_home: a household scene after ToolBench's VirtualHome domain, simulated symbolically.

Four rooms (kitchen, living_room, bedroom, bathroom) hold furniture (surfaces, containers that
open and close, devices that switch on and off, seats) and small objects that the agent can carry,
at most two at a time. The agent walks to a room or an object; it is then "near" that object.

Near: the agent is near an object it holds, the object it walked to / found, the container or
surface that object is in or on, and the container or surface holding the object it is next to.
Grabbing the object it stands next to leaves it next to that object's old container or surface.

Rules (error types `virtual_home:<rule>`): not_found (unknown object or room; find() of an object
in another room), not_near, not_held, closed (grab from or put into a closed container),
hands_full, not_openable, not_switchable, not_grabbable, not_receptacle, not_sittable.

Success is a goal on the final state (`toolbench.foundation.goals`), so the state is the world itself:
`{"agent": {"room", "near", "holding", "sitting"}, "objects": {id: {"room", ...}}}`, each object
with only the properties it has: `inside`/`on` for portable objects, `open` for containers that
open, `switched_on` for devices. Names are matched case-insensitively, with spaces or hyphens for
underscores and an optional leading "the " ("Living room" is `living_room`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from toolbench.core.simulator import Simulator, function
from toolbench.foundation.errors import ToolError
from toolbench.foundation.records import Call

ROOMS: tuple[str, ...] = ("kitchen", "living_room", "bedroom", "bathroom")

# Furniture: id -> (room, affordances). Affordances: surface (put on), container (put inside),
# openable (open/close; closed by default), switchable (off by default), seat (sit).
FURNITURE: dict[str, tuple[str, frozenset[str]]] = {
    name: (room, frozenset(kinds.split()))
    for name, room, kinds in (
        ("fridge", "kitchen", "container openable"),
        ("kitchen_cabinet", "kitchen", "container openable"),
        ("microwave", "kitchen", "container openable switchable"),
        ("dishwasher", "kitchen", "container openable switchable"),
        ("sink", "kitchen", "container"),
        ("stove", "kitchen", "surface switchable"),
        ("faucet", "kitchen", "switchable"),
        ("kitchen_table", "kitchen", "surface"),
        ("kitchen_counter", "kitchen", "surface"),
        ("kitchen_chair", "kitchen", "seat"),
        ("sofa", "living_room", "surface seat"),
        ("armchair", "living_room", "seat"),
        ("coffee_table", "living_room", "surface"),
        ("bookshelf", "living_room", "surface"),
        ("tv", "living_room", "switchable"),
        ("lamp", "living_room", "switchable"),
        ("radio", "living_room", "switchable"),
        ("bed", "bedroom", "surface seat"),
        ("nightstand", "bedroom", "surface"),
        ("desk", "bedroom", "surface"),
        ("desk_chair", "bedroom", "seat"),
        ("wardrobe", "bedroom", "container openable"),
        ("computer", "bedroom", "switchable"),
        ("bedside_lamp", "bedroom", "switchable"),
        ("bathroom_cabinet", "bathroom", "container openable"),
        ("bathroom_counter", "bathroom", "surface"),
        ("washing_machine", "bathroom", "container openable switchable"),
        ("toilet", "bathroom", "seat"),
    )
}

# Portable objects: id -> the furniture it starts in or on in the default house.
PORTABLE: dict[str, str] = {
    "apple": "kitchen_table",
    "banana": "kitchen_table",
    "bread": "kitchen_counter",
    "mug": "kitchen_counter",
    "bowl": "kitchen_counter",
    "plate": "kitchen_cabinet",
    "glass": "kitchen_cabinet",
    "cereal": "kitchen_cabinet",
    "milk": "fridge",
    "juice": "fridge",
    "cheese": "fridge",
    "butter": "fridge",
    "eggs": "fridge",
    "yogurt": "fridge",
    "pizza": "fridge",
    "soup": "fridge",
    "pasta": "fridge",
    "popcorn": "kitchen_cabinet",
    "book": "coffee_table",
    "remote_control": "coffee_table",
    "magazine": "coffee_table",
    "newspaper": "sofa",
    "cushion": "sofa",
    "phone": "nightstand",
    "glasses": "nightstand",
    "pillow": "bed",
    "blanket": "bed",
    "notebook": "desk",
    "pen": "desk",
    "laptop": "desk",
    "shirt": "wardrobe",
    "jacket": "wardrobe",
    "towel": "bathroom_counter",
    "toothbrush": "bathroom_counter",
    "toothpaste": "bathroom_counter",
    "soap": "bathroom_cabinet",
    "shampoo": "bathroom_cabinet",
}

MAX_HELD = 2
DEFAULT_AGENT_ROOM = "living_room"
Name = Annotated[str, Field(min_length=1, max_length=64)]


_KNOWN = frozenset(FURNITURE) | frozenset(PORTABLE) | frozenset(ROOMS)
_OPENABLE = tuple(name for name, (_, kinds) in FURNITURE.items() if "openable" in kinds)
_SWITCHABLE = tuple(name for name, (_, kinds) in FURNITURE.items() if "switchable" in kinds)
_CONTAINERS = frozenset(name for name, (_, kinds) in FURNITURE.items() if "container" in kinds)


# state() of the furniture before anything is opened or switched on (keys in this order: room,
# open, switched_on), and of a portable object in or on each piece of furniture
_FURNITURE_STATE: dict[str, dict[str, Any]] = {name: {"room": room} for name, (room, _) in FURNITURE.items()}
for _name in _OPENABLE:
    _FURNITURE_STATE[_name]["open"] = False
for _name in _SWITCHABLE:
    _FURNITURE_STATE[_name]["switched_on"] = False
_PLACED: dict[str, dict[str, Any]] = {
    parent: {"room": room, "inside": parent, "on": None}
    if parent in _CONTAINERS
    else {"room": room, "inside": None, "on": parent}
    for parent, (room, _) in FURNITURE.items()
}
# `snapshot()`'s starting point: every object as `state()` shows it in the default house (the
# furniture closed and off, each portable object in or on its first place), shared, never changed
_WORLD: dict[str, dict[str, Any]] = {
    **_FURNITURE_STATE,
    **{name: _PLACED[parent] for name, parent in PORTABLE.items()},
}


def normalize(name: str) -> str:
    if name in _KNOWN:  # the common case: an exact id
        return name
    text = " ".join(name.casefold().replace("_", " ").replace("-", " ").split())
    if text.startswith("the "):
        text = text[4:]
    return text.replace(" ", "_")


def _label(name: str | None) -> str:
    return (name or "").replace("_", " ")


class VirtualHome(Simulator):
    name = "virtual_home"
    description = (
        "Act in a simulated house (kitchen, living room, bedroom, bathroom), VirtualHome-style: walk "
        "to rooms and objects, grab and put objects (two hands), open and close containers, switch "
        "devices on and off, and sit down."
    )

    def reset(self, setup: dict[str, Any] | None = None) -> None:
        """`setup` (all optional): `agent_room`, `place` (rows [object, furniture]), `open` and
        `switched_on` (furniture ids), `holding` (object ids, carried from the start)."""
        setup = setup or {}
        self.parent: dict[str, str | None] = dict(PORTABLE)
        self.opened: set[str] = set()
        self.powered: set[str] = set()
        self.room = setup.get("agent_room", DEFAULT_AGENT_ROOM)
        if self.room not in ROOMS:
            raise ValueError(f"virtual_home setup: unknown agent_room {self.room!r}")
        self.near: str | None = None
        self.sitting: str | None = None
        self.holding: list[str] = []
        self.moved: set[str] = set()  # portable objects whose parent may differ from PORTABLE's
        for obj, where in setup.get("place", []):
            if obj not in PORTABLE or where not in FURNITURE or not self._receptacle(where):
                raise ValueError(f"virtual_home setup: cannot place {obj!r} in or on {where!r}")
            self.parent[obj] = where
            self.moved.add(obj)
        for key, target, kind in (
            ("open", self.opened, "openable"),
            ("switched_on", self.powered, "switchable"),
        ):
            for obj in setup.get(key, []):
                if obj not in FURNITURE or kind not in FURNITURE[obj][1]:
                    raise ValueError(f"virtual_home setup: {obj!r} is not {kind}")
                target.add(obj)
        for obj in setup.get("holding", []):
            if obj not in PORTABLE or len(self.holding) >= MAX_HELD:
                raise ValueError(f"virtual_home setup: cannot hold {obj!r}")
            self.holding.append(obj)
            self.parent[obj] = None
            self.moved.add(obj)

    # ----------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        # Copies of prepared dicts (the generator snapshots the world after every program): the
        # furniture as it starts, then what changed; a portable object as it sits on its parent.
        objects = {name: entry.copy() for name, entry in _FURNITURE_STATE.items()}
        for name in self.opened:
            objects[name]["open"] = True
        for name in self.powered:
            objects[name]["switched_on"] = True
        held = {"room": self.room, "inside": None, "on": None}
        for name, parent in self.parent.items():
            objects[name] = _PLACED[parent].copy() if parent is not None else held.copy()
        agent = {
            "room": self.room,
            "near": self.near,
            "holding": sorted(self.holding),
            "sitting": self.sitting,
        }
        return {"agent": agent, "objects": objects}

    def snapshot(self) -> dict[str, Any]:
        """`state()` without its 65 dict copies: the default house's entries, shared, with new
        ones for what was opened, switched on or moved (the generator takes one per label)."""
        objects = dict(_WORLD)
        for name in self.opened:
            objects[name] = {**objects[name], "open": True}
        for name in self.powered:
            objects[name] = {**objects[name], "switched_on": True}
        held = None
        for name in self.moved:
            parent = self.parent[name]
            if parent is not None:
                objects[name] = _PLACED[parent]
            else:
                if held is None:
                    held = {"room": self.room, "inside": None, "on": None}
                objects[name] = held
        agent = {
            "room": self.room,
            "near": self.near,
            "holding": sorted(self.holding),
            "sitting": self.sitting,
        }
        return {"agent": agent, "objects": objects}

    # ---------------------------------------------------------------- helpers
    def _object(self, name: str) -> str:
        key = normalize(name)
        if key in FURNITURE or key in PORTABLE:
            return key
        if key in ROOMS:
            raise ToolError("virtual_home:not_found", f"'{name}' is a room, not an object")
        raise ToolError("virtual_home:not_found", f"there is no object called '{name}' in the house")

    def _room_of(self, obj: str) -> str:
        if obj in FURNITURE:
            return FURNITURE[obj][0]
        parent = self.parent[obj]
        return self.room if parent is None else FURNITURE[parent][0]

    @staticmethod
    def _receptacle(name: str) -> bool:
        kinds = FURNITURE[name][1]
        return "surface" in kinds or "container" in kinds

    def _is_near(self, obj: str) -> bool:
        if obj in self.holding:
            return True
        near = self.near
        if near is None:
            return False
        return near == obj or self.parent.get(obj) == near or self.parent.get(near) == obj

    def _require_near(self, obj: str, action: str) -> None:
        if not self._is_near(obj):
            where = _label(self._room_of(obj))
            raise ToolError(
                "virtual_home:not_near",
                f"cannot {action} the {_label(obj)}: the agent is not near it (it is in the {where}; "
                "walk_to it first)",
            )

    def _furniture(self, obj: str, kind: str, rule: str, what: str) -> None:
        if obj not in FURNITURE or kind not in FURNITURE[obj][1]:
            raise ToolError(f"virtual_home:{rule}", f"the {_label(obj)} {what}")

    def _location(self, obj: str) -> dict[str, Any]:
        found: dict[str, Any] = {"object": obj, "room": self._room_of(obj)}
        if obj in PORTABLE:
            parent = self.parent[obj]
            if parent is None:
                found["held"] = True
            else:
                found["inside" if "container" in FURNITURE[parent][1] else "on"] = parent
        return found

    # -------------------------------------------------------------- functions
    @function
    def walk_to(self, target: Name) -> None:
        """Walk to a room, or to an object (the agent goes to its room and stands next to it).

        Args:
            target: A room (kitchen, living_room, bedroom, bathroom) or an object, e.g. "fridge".
        """
        key = normalize(target)
        if key in ROOMS:
            self.room, self.near = key, None
        else:
            obj = self._object(target)
            self.room, self.near = self._room_of(obj), obj
        self.sitting = None

    @function
    def find(self, target: Name) -> dict[str, Any]:
        """Look for an object in the agent's current room and step next to it; returns where it is.

        Args:
            target: The object to find, e.g. "remote_control".
        """
        obj = self._object(target)
        room = self._room_of(obj)
        if room != self.room:
            raise ToolError(
                "virtual_home:not_found",
                f"there is no {_label(obj)} in the {_label(self.room)}; walk to the room it is in first",
            )
        self.near, self.sitting = obj, None
        return self._location(obj)

    @function
    def grab(self, obj: Name) -> None:
        """Pick up a small object with a free hand (the agent has two). Must be near it.

        Args:
            obj: The object to pick up, e.g. "apple".
        """
        key = self._object(obj)
        if key in FURNITURE:
            raise ToolError("virtual_home:not_grabbable", f"the {_label(key)} cannot be picked up")
        if key in self.holding:
            return
        self._require_near(key, "grab")
        parent = self.parent[key]
        if parent in FURNITURE and "openable" in FURNITURE[parent][1] and parent not in self.opened:
            raise ToolError(
                "virtual_home:closed",
                f"the {_label(key)} is inside the closed {_label(parent)}; open it first",
            )
        if len(self.holding) >= MAX_HELD:
            raise ToolError(
                "virtual_home:hands_full",
                f"both hands are full ({' and '.join(map(_label, self.holding))}); put something down first",
            )
        if self.near == key:  # the agent stays where it stood: by the object's old place
            self.near = parent
        self.holding.append(key)
        self.parent[key] = None
        self.moved.add(key)

    @function
    def put(self, obj: Name, target: Name) -> None:
        """Put a held object on a surface or inside a container. Must be near the target; a closed
        container must be opened first.

        Args:
            obj: The held object, e.g. "milk".
            target: A surface or container, e.g. "kitchen_table" or "fridge".
        """
        key = self._object(obj)
        where = self._object(target)
        if key not in self.holding:
            raise ToolError("virtual_home:not_held", f"the agent is not holding the {_label(key)}")
        if where not in FURNITURE or not self._receptacle(where):
            raise ToolError(
                "virtual_home:not_receptacle", f"the {_label(where)} is not a surface or a container"
            )
        self._require_near(where, "put things on or in")
        if "openable" in FURNITURE[where][1] and where not in self.opened:
            raise ToolError("virtual_home:closed", f"the {_label(where)} is closed; open it first")
        self.holding.remove(key)
        self.parent[key] = where
        self.moved.add(key)

    @function
    def open(self, obj: Name) -> None:
        """Open a container such as the fridge, a cabinet, the microwave or the wardrobe. Must be near it.

        Args:
            obj: The container to open.
        """
        key = self._object(obj)
        self._furniture(key, "openable", "not_openable", "cannot be opened or closed")
        self._require_near(key, "open")
        self.opened.add(key)

    @function
    def close(self, obj: Name) -> None:
        """Close a container. Must be near it.

        Args:
            obj: The container to close.
        """
        key = self._object(obj)
        self._furniture(key, "openable", "not_openable", "cannot be opened or closed")
        self._require_near(key, "close")
        self.opened.discard(key)

    @function
    def switch_on(self, obj: Name) -> None:
        """Switch a device on (tv, lamp, computer, stove, microwave, ...). Must be near it.

        Args:
            obj: The device to switch on.
        """
        key = self._object(obj)
        self._furniture(key, "switchable", "not_switchable", "cannot be switched on or off")
        self._require_near(key, "switch on")
        self.powered.add(key)

    @function
    def switch_off(self, obj: Name) -> None:
        """Switch a device off. Must be near it.

        Args:
            obj: The device to switch off.
        """
        key = self._object(obj)
        self._furniture(key, "switchable", "not_switchable", "cannot be switched on or off")
        self._require_near(key, "switch off")
        self.powered.discard(key)

    @function
    def sit(self, target: Name) -> None:
        """Sit on a chair, the sofa, an armchair or the bed. Must be near it.

        Args:
            target: The seat, e.g. "sofa".
        """
        key = self._object(target)
        self._furniture(key, "seat", "not_sittable", "is not something to sit on")
        self._require_near(key, "sit on")
        self.sitting = key

    @classmethod
    def final_reply(cls, calls: list[Call], results: list[Any]) -> str:
        found = [r for r in results if isinstance(r, dict)]
        if not found:
            return "Done."
        last = found[-1]
        if last.get("held"):
            return f"Done. I have the {_label(last['object'])} in hand."
        spot = last.get("inside") or last.get("on")
        relation = "inside" if "inside" in last else "on"
        place = f", {relation} the {_label(spot)}" if spot else ""
        return f"Done. The {_label(last['object'])} is in the {_label(last['room'])}{place}."
