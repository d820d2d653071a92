"""Template entries: one slot dict renders both the natural-language request and its gold call
program, so the two can never disagree.

A tool's templates live in `templates/<tool>/*.yaml` (value pools in `templates/pools/` and
`templates/<tool>/pools/`). An entry:

    - id: hs_beds_city           # unique within the tool
      split: train               # or test: whole templates are held out
      slots:
        city: {pool: us_cities}
        beds: {int: [1, 5]}
        max_price: {int: [200000, 900000], step: 10000}
      queries:                   # paraphrases, one chosen per sample
        - "Find a {{ beds }}-bedroom home in {{ city }} under {{ max_price | money }}."
      action: |                  # the gold program in the python call format
        API.set_location({{ city | py }})
        ...
      alternatives: []           # other programs that are also right (another call order, ...)

Slot kinds: `pool`, `choice`, `int` (with `step`, `above`/`below` another slot), `number`
(floats on a `step` grid), `sample` (k distinct items of a pool or list, `k: [lo, hi]`).
Jinja runs sandboxed with StrictUndefined; a mistake is a TemplateError naming file, line and slot.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from toolbench.calls import PythonFormat
from toolbench.errors import TemplateError
from toolbench.records import Category, Split

# ----------------------------------------------------------------- YAML with line numbers


class LineStr(str):
    """A YAML string that remembers where its text starts in the file."""

    line: int


class _LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser: ~10x faster
    pass


def _construct_str(loader: _LineLoader, node: yaml.ScalarNode) -> LineStr:
    value = LineStr(loader.construct_scalar(node))
    # Block scalars (| and >) start on the line after their indicator.
    value.line = node.start_mark.line + 1 + (1 if node.style in ("|", ">") else 0)
    return value


_LineLoader.add_constructor("tag:yaml.org,2002:str", _construct_str)


def load_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.load(handle, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise TemplateError(f"{where}: not valid YAML: {getattr(error, 'problem', error)}") from None


def plain(value: Any) -> Any:
    """YAML data without line-carrying strings: what leaves the template layer must be plain
    JSON types (orjson, for one, refuses str subclasses as dict keys)."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def line_of(value: Any, default: int = 1) -> int:
    return getattr(value, "line", default)


# ------------------------------------------------------------------------- filters


def _money(value: float) -> str:
    return f"${value:,.0f}"


def _short_money(value: float) -> str:
    if value >= 1_000_000:
        return f"${value / 1_000_000:g}M"
    if value >= 1_000:
        return f"${value / 1_000:g}k"
    return f"${value:g}"


_WORDS = "zero one two three four five six seven eight nine ten eleven twelve".split()


def _words(value: int) -> str:
    return _WORDS[value] if isinstance(value, int) and 0 <= value < len(_WORDS) else str(value)


def _join_and(values: list[Any], word: str = "and") -> str:
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} {word} {values[-1]}"


_PY = PythonFormat()
FILTERS: dict[str, Callable[..., Any]] = {
    "py": _PY.literal,
    "money": _money,
    "short_money": _short_money,
    "comma": lambda v: f"{v:,}",
    "words": _words,
    "plural": lambda n, suffix="s": "" if n == 1 else suffix,
    "join_and": _join_and,
    "num": lambda v: f"{v:g}" if isinstance(v, float) else str(v),
}


def make_environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.filters.update(FILTERS)
    return env


# --------------------------------------------------------------------------- slots


class SlotSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pool: str | None = None
    choice: list[Any] | None = None
    int_range: tuple[int, int] | None = Field(None, alias="int")
    number: tuple[float, float] | None = None
    sample: str | list[Any] | None = None
    k: tuple[int, int] = (1, 2)
    step: float = 1
    above: str | None = None
    below: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> SlotSpec:
        kinds = [
            k for k in ("pool", "choice", "int_range", "number", "sample") if getattr(self, k) is not None
        ]
        if len(kinds) != 1:
            raise ValueError("a slot needs exactly one of: pool, choice, int, number, sample")
        return self


def _grid(low: float, high: float, step: float, rng: random.Random) -> float:
    steps = int((high - low) // step)
    if steps < 0:
        raise ValueError(f"empty range [{low}, {high}]")
    return low + step * rng.randint(0, steps)


class SlotSampler:
    """Draws one value for a slot; bounds may refer to slots drawn before it."""

    def __init__(self, name: str, spec: SlotSpec, pools: dict[str, list[Any]], where: str):
        self.name, self.spec = name, spec
        self.items: list[Any] | None = None
        source = spec.pool or (spec.sample if isinstance(spec.sample, str) else None)
        if source is not None:
            if source not in pools:
                raise TemplateError(
                    f"{where}: slot '{name}' uses unknown pool '{source}'; known pools: {', '.join(sorted(pools))}"
                )
            self.items = pools[source]
        elif spec.choice is not None:
            self.items = spec.choice
        elif isinstance(spec.sample, list):
            self.items = spec.sample

    def draw(self, rng: random.Random, values: dict[str, Any]) -> Any:
        spec = self.spec
        if spec.pool is not None or spec.choice is not None:
            return rng.choice(self.items)
        if spec.sample is not None:
            k = rng.randint(*spec.k)
            return rng.sample(self.items, min(k, len(self.items)))
        low, high = spec.int_range if spec.int_range is not None else spec.number
        if spec.above is not None:
            low = max(low, values[spec.above] + spec.step)
        if spec.below is not None:
            high = min(high, values[spec.below] - spec.step)
        value = _grid(low, high, spec.step, rng)
        return int(value) if spec.int_range is not None else round(value, 6)


# ------------------------------------------------------------------------- entries


class TemplateEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    split: Split
    category: Category | None = None
    weight: float = Field(1.0, gt=0)
    slots: dict[str, SlotSpec] = Field(default_factory=dict)
    queries: list[str] = Field(min_length=1)
    action: str
    alternatives: list[str] = Field(default_factory=list)
    setup: dict[str, Any] | None = None
    goal: list[dict[str, Any]] | None = None


@dataclass
class Rendered:
    query: str
    paraphrase: int
    actions: list[str]
    slots: dict[str, Any]
    setup: dict[str, Any] | None = None
    goal: list[dict[str, Any]] | None = None


class CompiledEntry:
    def __init__(
        self,
        entry: TemplateEntry,
        raw: dict[str, Any],
        path: Path,
        tool: str,
        shared_slots: dict[str, SlotSpec],
        pools: dict[str, list[Any]],
        env: SandboxedEnvironment,
    ):
        self.entry, self.path, self.tool = entry, path, tool
        self.line = line_of(raw.get("id"))
        where = f"{path}:{self.line}"
        slot_specs = {**shared_slots, **entry.slots}
        self.samplers = [
            SlotSampler(name, spec, pools, f"{where}: entry '{entry.id}'")
            for name, spec in slot_specs.items()
        ]
        declared = set(slot_specs)
        for name, spec in slot_specs.items():
            for ref in (spec.above, spec.below):
                if ref is not None and ref not in declared:
                    raise TemplateError(
                        f"{where}: entry '{entry.id}' slot '{name}' refers to undefined slot '{ref}'"
                    )
        self.sources: list[tuple[str, str]] = [(f"query {i + 1}", q) for i, q in enumerate(raw["queries"])]
        self.sources.append(("action", raw["action"]))
        self.sources += [(f"alternative {i + 1}", a) for i, a in enumerate(raw.get("alternatives") or [])]
        compiled = []
        for label, source in self.sources:
            try:
                parsed = env.parse(source)
            except TemplateSyntaxError as error:
                line = line_of(source, self.line) + (error.lineno or 1) - 1
                raise TemplateError(
                    f"{path}:{line}: entry '{entry.id}' {label}: template syntax: {error.message}"
                ) from None
            undefined = sorted(meta.find_undeclared_variables(parsed) - declared)
            if undefined:
                line = line_of(source, self.line) + _first_line_using(source, undefined[0]) - 1
                raise TemplateError(
                    f"{path}:{line}: entry '{entry.id}' {label} uses undefined slot '{undefined[0]}'; "
                    f"declared slots: {', '.join(sorted(declared)) or 'none'}"
                )
            compiled.append(env.from_string(source))
        n = len(entry.queries)
        self.queries, self.actions = compiled[:n], compiled[n:]
        self.setup = _compile_setup(entry.setup, env, declared, f"{where}: entry '{entry.id}' setup")
        self.goal = _compile_setup(entry.goal, env, declared, f"{where}: entry '{entry.id}' goal")

    @property
    def id(self) -> str:
        return self.entry.id

    def draw_slots(self, rng: random.Random) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for sampler in self.samplers:
            try:
                values[sampler.name] = sampler.draw(rng, values)
            except ValueError as error:
                raise TemplateError(
                    f"{self.path}:{self.line}: entry '{self.id}' slot '{sampler.name}': {error}"
                ) from None
        return values

    def render(self, rng: random.Random) -> Rendered:
        slots = self.draw_slots(rng)
        paraphrase = rng.randrange(len(self.queries))
        try:
            query = " ".join(_render(self.queries[paraphrase], slots).split())
            actions = [_render(template, slots).strip() for template in self.actions]
            setup = _render_setup(self.setup, slots) if self.setup is not None else None
            goal = _render_setup(self.goal, slots) if self.goal is not None else None
        except (UndefinedError, SecurityError, TypeError, ValueError) as error:
            raise TemplateError(
                f"{self.path}:{self.line}: entry '{self.id}': rendering failed: {error}"
            ) from None
        return Rendered(query, paraphrase, actions, slots, setup, goal)


_WHOLE_SLOT = re.compile(r"^\{\{\s*(\w+)((?:\.\w+)*)\s*\}\}$")


def _compile_setup(value: Any, env: SandboxedEnvironment, declared: set[str], where: str) -> Any:
    """An entry's initial tool state or goal. String leaves are Jinja; a leaf that is exactly
    `{{ slot }}` or `{{ slot.key.key }}` (a pool item that is a mapping) becomes that value with
    its type (a number stays a number, a list a list, a mapping a mapping)."""
    if isinstance(value, dict):
        return {str(k): _compile_setup(v, env, declared, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_compile_setup(v, env, declared, where) for v in value]
    if isinstance(value, str):
        whole = _WHOLE_SLOT.match(value)
        if whole:
            if whole.group(1) not in declared:
                raise TemplateError(f"{where} uses undefined slot '{whole.group(1)}'")
            keys = tuple(whole.group(2).split(".")[1:])
            return ("path", (whole.group(1), keys)) if keys else ("slot", whole.group(1))
        parsed = env.parse(value)
        undefined = sorted(meta.find_undeclared_variables(parsed) - declared)
        if undefined:
            raise TemplateError(f"{where} uses undefined slot '{undefined[0]}'")
        return ("template", env.from_string(value))
    return ("value", plain(value))


def _render_setup(compiled: Any, slots: dict[str, Any]) -> Any:
    if isinstance(compiled, dict):
        return {k: _render_setup(v, slots) for k, v in compiled.items()}
    if isinstance(compiled, list):
        return [_render_setup(v, slots) for v in compiled]
    kind, payload = compiled
    if kind == "slot":
        return slots[payload]
    if kind == "path":
        node = slots[payload[0]]
        for key in payload[1]:
            if not isinstance(node, dict) or key not in node:
                raise ValueError(f"slot '{payload[0]}' has no key path '{'.'.join(payload[1])}'")
            node = node[key]
        return node
    if kind == "template":
        return _render(payload, slots)
    return payload


def _render(template: Template, slots: dict[str, Any]) -> str:
    """`Template.render` without copying the environment globals into every context: templates
    see only their slots (the static check above enforces it), and this is the hot path."""
    return "".join(template.root_render_func(template.new_context(slots, shared=True)))


def _first_line_using(source: str, name: str) -> int:
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    for number, line in enumerate(source.splitlines(), 1):
        if pattern.search(line):
            return number
    return 1


# ----------------------------------------------------------------------- a tool's set


def _load_pools(folder: Path) -> dict[str, list[Any]]:
    pools: dict[str, list[Any]] = {}
    if folder.is_dir():
        for path in sorted(folder.glob("*.yaml")):
            data = load_yaml(path)
            if not isinstance(data, list) or not data:
                raise TemplateError(f"{path}:1: a pool file must be a non-empty YAML list")
            pools[path.stem] = plain(data)
    return pools


def packaged_templates_root() -> Path:
    """The templates shipped with the package (`templates/` in the repository)."""
    return Path(str(resources.files("toolbench.templates")))


class TemplateSet:
    """Every template entry of one tool, compiled once."""

    def __init__(self, tool: str, folder: Path, shared_pools: Path | None = None):
        self.tool, self.folder = tool, folder
        if not folder.is_dir():
            raise TemplateError(f"{folder}: no templates folder for tool '{tool}'")
        env = make_environment()
        shared = shared_pools if shared_pools is not None else packaged_templates_root() / "pools"
        pools = {**_load_pools(shared), **_load_pools(folder / "pools")}
        self.entries: list[CompiledEntry] = []
        seen: dict[str, str] = {}
        for path in sorted(folder.glob("*.yaml")):
            self.entries.extend(self._load_file(path, env, pools, seen))
        if not self.entries:
            raise TemplateError(f"{folder}: no template entries for tool '{tool}'")

    def _load_file(
        self, path: Path, env: SandboxedEnvironment, pools: dict[str, list[Any]], seen: dict[str, str]
    ) -> list[CompiledEntry]:
        data = load_yaml(path)
        if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
            raise TemplateError(f"{path}:1: expected a mapping with an 'entries' list")
        try:
            shared = {name: SlotSpec.model_validate(spec) for name, spec in (data.get("slots") or {}).items()}
        except ValidationError as error:
            raise TemplateError(f"{path}: shared slots: {error.errors()[0]['msg']}") from None
        compiled = []
        for raw in data["entries"]:
            line = line_of(raw.get("id") if isinstance(raw, dict) else None)
            try:
                entry = TemplateEntry.model_validate(raw)
            except ValidationError as error:
                first = error.errors()[0]
                field = ".".join(str(p) for p in first["loc"])
                raise TemplateError(
                    f"{path}:{line}: template entry field '{field}': {first['msg']}"
                ) from None
            if entry.id in seen:
                raise TemplateError(
                    f"{path}:{line}: template id '{entry.id}' is used twice (first in {seen[entry.id]})"
                )
            seen[entry.id] = f"{path.name}:{line}"
            compiled.append(CompiledEntry(entry, raw, path, self.tool, shared, pools, env))
        return compiled

    def select(self, split: str) -> list[CompiledEntry]:
        return [e for e in self.entries if split == "all" or e.entry.split == split]
