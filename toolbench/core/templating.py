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

A compose entry (`compose:`) makes any combination of a tool's optional functions from one entry:

    - id: hs_compose_buy
      split: train
      slots: {mode: {choice: [buy]}}
      queries:                   # frames: {{ clauses }} said inline, or {{ items }} as a list
        - "[[ask]] find [[homes]] to {{ mode }} in {{ city }}{{ clauses }}[[stop]]"
      action: |                  # the required core
        API.set_location({{ city | py }})
        API.set_buy_or_rent({{ mode | py }})
      compose:
        tail: API.search()       # the last lines (a `tail: true` clause replaces them)
        count: [0, 14]           # optional clauses per sample, `count_weights` per count
        paraphrase: {lower: 0.12, typo: 0.12, synonyms: {homes: [homes, places]}}
        clauses:
          - id: beds
            slots: {beds: {int: [1, 6]}}
            queries: ["with at least {{ beds }} bedrooms"]   # phrases that stand alone
            nouns: ["{{ beds }}+ beds"]                       # phrases that follow "with"
            action: API.set_num_beds({{ beds }})
            requires: []  excludes: []  stage: 0  weight: 1

Each sample turns on `required` and `count` optional clauses (by `weight`, honouring `requires`
and `excludes`), draws only their slots (an `above`/`below` bound on a slot of a clause that is
off is no bound), says them in a random order, and orders the action lines by `stage`, then by
the request's order. More clause keys: `into: [clause ids or tail]` makes an optional argument,
its action keyword arguments (`units="metric"`) added to the call of each named clause that is
on (it is on only with one of them); `last: true` says it after the others ("then say ...");
`setup:` is merged into the entry's setup (lists extended) and `goal:` adds predicates, both only
while the clause is on. An entry whose `count` starts at 1 needs no frame without `{{ items }}`.
`[[name]]` picks from a synonym pool (the file's `synonyms:`, the entry's, or the built-in `ask`,
`stop`, `want`, `thanks`, `with`, `and`). Casing and one light typo change only literal text:
what a `{{ hole }}` printed is never changed, so values the program copies appear in the request
verbatim. All of it is drawn from the sample's RNG (`draw`).
"""

from __future__ import annotations

import math
import operator
import random
import re
from bisect import bisect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from itertools import accumulate
from pathlib import Path
from typing import Any

import orjson
import yaml
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS as _JINJA_FILTERS
from jinja2.nodes import EvalContext
from jinja2.runtime import Undefined
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import _PassArg
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from toolbench.core.calls import PythonFormat
from toolbench.foundation.errors import TemplateError
from toolbench.foundation.records import Category, Split

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
_LITERALS: dict[tuple[type, Any], str] = {}


def _py(value: Any) -> str:
    """`PythonFormat().literal`, remembered for scalars (the same ids and names are written into
    thousands of actions; a literal is a pure function of the value and its type). Not floats:
    0.0 and -0.0 are equal keys with different literals."""
    kind = type(value)
    if kind is str or kind is int or kind is bool:
        key = (kind, value)
        text = _LITERALS.get(key)
        if text is None:
            text = _PY.literal(value)
            if len(_LITERALS) >= 1 << 16:
                _LITERALS.clear()
            _LITERALS[key] = text
        return text
    return _PY.literal(value)


FILTERS: dict[str, Callable[..., Any]] = {
    "py": _py,
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


# ------------------------------------------------------------ exact, cheaper random draws
#
# Every candidate draws a dozen values or more from its own `random.Random`, and each of
# `randrange`, `choice`, `randint`, `shuffle` and `sample` is two or three Python frames around
# `getrandbits`. These make the same `getrandbits` calls in the same order as the methods
# (`random.Random._randbelow_with_getrandbits`, which `random.Random` itself uses), so they draw
# the same values: same seed, same samples. `tests/unit/test_generate_speed_paths.py` holds each
# to its method. `rng` is a `random.Random` (the generator's and the tests' only kind); should a
# Python release change how `random.Random` draws below n, the methods themselves are used.
_EXACT = getattr(random.Random, "_randbelow", None) is getattr(
    random.Random, "_randbelow_with_getrandbits", False
)


def below(rng: random.Random, n: int) -> int:
    """`rng.randrange(n)` for n >= 1."""
    k = n.bit_length()
    r = rng.getrandbits(k)
    while r >= n:
        r = rng.getrandbits(k)
    return r


def shuffle(rng: random.Random, items: list[Any]) -> None:
    """`rng.shuffle(items)`."""
    getrandbits = rng.getrandbits
    for i in range(len(items) - 1, 0, -1):
        n = i + 1
        k = n.bit_length()
        j = getrandbits(k)
        while j >= n:
            j = getrandbits(k)
        items[i], items[j] = items[j], items[i]


def _pool_draw(getrandbits: Callable[[int], int], pool: list[Any], k: int) -> list[Any]:
    """`random.sample`'s pool branch: k draws from a shrinking copy of the population (`pool`,
    consumed), each index by rejection on `getrandbits` exactly as `sample` draws it."""
    n = len(pool)
    result = [None] * k
    for i in range(k):
        m = n - i
        width = m.bit_length()
        j = getrandbits(width)
        while j >= m:
            j = getrandbits(width)
        result[i] = pool[j]
        pool[j] = pool[m - 1]
    return result


def permutation(rng: random.Random, items: tuple[Any, ...] | list[Any]) -> list[Any]:
    """`rng.sample(items, len(items))` (its pool branch, which a whole population always takes)."""
    return _pool_draw(rng.getrandbits, list(items), len(items))


if not _EXACT:  # pragma: no cover - a Python whose Random draws otherwise: its own methods

    def below(rng: random.Random, n: int) -> int:  # type: ignore[no-redef]
        return rng.randrange(n)

    def shuffle(rng: random.Random, items: list[Any]) -> None:  # type: ignore[no-redef]
        rng.shuffle(items)

    def permutation(rng: random.Random, items: tuple[Any, ...] | list[Any]) -> list[Any]:  # type: ignore[no-redef]
        return rng.sample(items, len(items))


def _grid(low: float, high: float, step: float, rng: random.Random) -> float:
    steps = int((high - low) // step)
    if steps < 0:
        raise ValueError(f"empty range [{low}, {high}]")
    return low + step * below(rng, steps + 1)  # rng.randint(0, steps)


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
        self.draw = self._drawer()  # type: ignore[method-assign]

    def _drawer(self) -> Callable[[random.Random, dict[str, Any]], Any]:
        """`draw`, specialised to this slot's kind once (it runs for every slot of every
        candidate): the same RNG calls in the same order, so the same values."""
        spec, items = self.spec, self.items
        if spec.pool is not None or spec.choice is not None:
            return _chooser(items)  # type: ignore[arg-type]
        if spec.sample is not None:
            return _sampler(items, *spec.k)  # type: ignore[arg-type]
        if spec.above is None and spec.below is None:
            low, high = spec.int_range if spec.int_range is not None else spec.number  # type: ignore[misc]
            return _grid_drawer(low, high, spec.step, spec.int_range is not None)
        return _bounded_drawer(spec, soft=False)

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


def _chooser(items: list[Any]) -> Callable[[random.Random, dict[str, Any]], Any]:
    """`rng.choice(items)`, its `getrandbits` loop inline (the commonest slot draw)."""
    n = len(items)
    if not n or not _EXACT:
        return lambda rng, values: rng.choice(items)  # an empty list: choice's own IndexError
    k = n.bit_length()

    def choose(rng: random.Random, values: dict[str, Any]) -> Any:
        r = rng.getrandbits(k)
        while r >= n:
            r = rng.getrandbits(k)
        return items[r]

    return choose


def _sampler(items: list[Any], low_k: int, high_k: int) -> Callable[[random.Random, dict[str, Any]], Any]:
    """`rng.sample(items, min(rng.randint(low_k, high_k), len(items)))`, with `random.sample`'s
    two ways of drawing (a shrinking pool, or retries against a set of taken indices) inline."""
    size = len(items)
    if high_k < low_k or not _EXACT:  # the error (empty range) is randint's own, when drawn
        return lambda rng, values: rng.sample(items, min(rng.randint(low_k, high_k), size))
    span = high_k - low_k + 1
    bits, size_bits = span.bit_length(), size.bit_length()

    def draw(rng: random.Random, values: dict[str, Any]) -> list[Any]:
        getrandbits = rng.getrandbits
        r = getrandbits(bits)
        while r >= span:
            r = getrandbits(bits)
        k = min(low_k + r, size)
        if k < 0:
            return rng.sample(items, k)  # sample's own error
        if size <= (21 + 4 ** math.ceil(math.log(k * 3, 4)) if k > 5 else 21):  # sample's pool branch
            return _pool_draw(getrandbits, list(items), k)
        result = [None] * k
        selected: set[int] = set()  # its other branch: indices drawn again until new
        for i in range(k):
            j = getrandbits(size_bits)
            while j >= size or j in selected:
                j = getrandbits(size_bits)
            selected.add(j)
            result[i] = items[j]
        return result

    return draw


def _bounded_drawer(spec: SlotSpec, soft: bool) -> Callable[[random.Random, dict[str, Any]], Any]:
    """`SlotSampler.draw` of an int or number slot with an `above` or `below` bound: a value on
    the grid between the bounds, the bound slot's value (plus or minus a step) tightening them.
    `soft`: a bound slot that was not drawn bounds nothing (a compose clause that is off); else
    it must have been drawn. `_grid`'s draw, through `below`."""
    integral = spec.int_range is not None
    low0, high0 = spec.int_range if integral else spec.number  # type: ignore[misc]
    step, above, under = spec.step, spec.above, spec.below

    def draw(rng: random.Random, values: dict[str, Any]) -> Any:
        low, high = low0, high0
        if above is not None and (not soft or above in values):
            low = max(low, values[above] + step)
        if under is not None and (not soft or under in values):
            high = min(high, values[under] - step)
        if not _EXACT:
            value = _grid(low, high, step, rng)
            return int(value) if integral else round(value, 6)
        steps = int((high - low) // step)
        if steps < 0:
            raise ValueError(f"empty range [{low}, {high}]")
        value = low + step * below(rng, steps + 1)
        return int(value) if integral else round(value, 6)

    return draw


def _grid_drawer(
    low: float, high: float, step: float, integral: bool
) -> Callable[[random.Random, dict[str, Any]], Any]:
    """A value on the grid low, low + step, ... <= high: `_grid` with its bounds fixed, as an
    int or rounded to 6 decimals."""
    steps = int((high - low) // step)
    if steps < 0 or not _EXACT:  # the error (empty range) is raised by `_grid` when drawn
        if integral:
            return lambda rng, values: int(_grid(low, high, step, rng))
        return lambda rng, values: round(_grid(low, high, step, rng), 6)
    n = steps + 1
    k = n.bit_length()

    def draw(rng: random.Random, values: dict[str, Any]) -> Any:
        r = rng.getrandbits(k)
        while r >= n:
            r = rng.getrandbits(k)
        value = low + step * r
        return int(value) if integral else round(value, 6)

    return draw


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
    compose: ComposeSpec | None = None

    @model_validator(mode="after")
    def _compose_has_one_label(self) -> TemplateEntry:
        if self.compose is not None and self.alternatives:
            raise ValueError("a compose entry has no alternatives (the scorer compares final states)")
        return self


class ClauseSpec(BaseModel):
    """One optional part of a compose entry: its own slots, the phrases that say it (`queries`:
    phrases that stand on their own, `nouns`: noun phrases that follow "with"), the action lines it
    adds, and the rules of its use."""

    model_config = ConfigDict(extra="forbid")

    id: str
    slots: dict[str, SlotSpec] = Field(default_factory=dict)
    queries: list[str] = Field(default_factory=list)
    nouns: list[str] = Field(default_factory=list)
    action: str
    requires: list[str] = Field(default_factory=list)  # clauses that must be on with this one
    excludes: list[str] = Field(default_factory=list)  # clauses that may not be on with this one
    stage: int = 0  # action order: by stage, then in the order the request says the clauses
    tail: bool = False  # its action replaces the entry's `tail` (e.g. search(sort_by=...))
    weight: float = Field(1.0, gt=0)  # how often it is picked among the optional clauses
    # an optional argument: its action is keyword arguments (`units="metric"`) added to the last
    # call of each of these clauses that is on (`tail`: the entry's tail); it is on only with one
    # of them (the first of them in the draw's order comes on with it if none is)
    into: list[str] = Field(default_factory=list)
    last: bool = False  # said after the clauses without `last` (e.g. "then say ...")
    setup: dict[str, Any] | None = None  # merged into the entry's setup (lists are extended)
    goal: list[dict[str, Any]] | None = None  # predicates added to the entry's goal

    @model_validator(mode="after")
    def _some_phrase(self) -> ClauseSpec:
        if not self.queries and not self.nouns:
            raise ValueError(f"clause '{self.id}' needs at least one of queries, nouns")
        return self


class ParaphraseSpec(BaseModel):
    """Render-time paraphrase of a compose entry's request. Only the literal text of the
    templates changes: what a `{{ hole }}` printed (slot values) is never touched."""

    model_config = ConfigDict(extra="forbid")

    lower: float = Field(0.12, ge=0, le=1)  # the literal text in lower case
    typo: float = Field(0.12, ge=0, le=1)  # one typo in a literal word of 4+ letters
    synonyms: dict[str, list[str]] = Field(default_factory=dict)  # [[name]] pools of this entry


class ComposeSpec(BaseModel):
    """A compose entry: `queries` are sentence frames holding `{{ clauses }}` (the clauses said
    inline: "..., under $500k with 3 beds and a pool") or `{{ items }}` (as a list: "3 beds; a
    pool"); `action` is the required core program, `tail` its last lines; each sample turns on
    the `required` clauses and `count` optional ones, drawn by weight, respecting `requires` and
    `excludes`."""

    model_config = ConfigDict(extra="forbid")

    clauses: list[ClauseSpec] = Field(min_length=1)
    required: list[str] = Field(default_factory=list)
    count: tuple[int, int] | None = None  # optional clauses per sample; default [0, all]
    # relative weight of each count in `count` (lowest first); default: uniform
    count_weights: list[float] | None = None
    tail: str = ""
    paraphrase: ParaphraseSpec = Field(default_factory=ParaphraseSpec)


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
        self._draws = tuple((sampler.name, sampler.draw) for sampler in self.samplers)
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
                template = slot_template(env, source)
            except TemplateSyntaxError as error:
                line = line_of(source, self.line) + (error.lineno or 1) - 1
                raise TemplateError(
                    f"{path}:{line}: entry '{entry.id}' {label}: template syntax: {error.message}"
                ) from None
            undefined = template.undeclared(declared)
            if undefined:
                line = line_of(source, self.line) + _first_line_using(source, undefined[0]) - 1
                raise TemplateError(
                    f"{path}:{line}: entry '{entry.id}' {label} uses undefined slot '{undefined[0]}'; "
                    f"declared slots: {', '.join(sorted(declared)) or 'none'}"
                )
            template.check()
            compiled.append(template)
        n = len(entry.queries)
        self.queries, self.actions = compiled[:n], compiled[n:]
        self.setup = _compile_setup(entry.setup, env, declared, f"{where}: entry '{entry.id}' setup")
        self.goal = _compile_setup(entry.goal, env, declared, f"{where}: entry '{entry.id}' goal")
        self._setup = _setup_renderer(self.setup) if self.setup is not None else None
        self._goal = _setup_renderer(self.goal) if self.goal is not None else None

    @property
    def id(self) -> str:
        return self.entry.id

    def draw_slots(self, rng: random.Random) -> dict[str, Any]:
        values: dict[str, Any] = {}
        try:
            for name, draw in self._draws:
                values[name] = draw(rng, values)
        except ValueError as error:
            raise TemplateError(
                f"{self.path}:{self.line}: entry '{self.id}' slot '{name}': {error}"
            ) from None
        return values

    def render(self, rng: random.Random) -> Rendered:
        slots, paraphrase = self.draw(rng)
        query = self.render_query(slots, paraphrase)
        actions, setup, goal = self.render_program(slots)
        return Rendered(query, paraphrase, actions, slots, setup, goal)

    # `render` in two halves, for the generator: the request alone decides whether a candidate is
    # a duplicate, so its program is rendered only for a request not seen before. Neither half
    # draws from the RNG: the stream, and so the output, is the same either way.
    def draw(self, rng: random.Random) -> tuple[dict[str, Any], int]:
        """The slot values and the paraphrase: everything a sample takes from the RNG."""
        slots = self.draw_slots(rng)
        return slots, below(rng, len(self.queries))

    def render_query(self, slots: dict[str, Any], paraphrase: int) -> str:
        try:
            return " ".join(self.queries[paraphrase].render(slots).split())
        except (UndefinedError, SecurityError, TypeError, ValueError) as error:
            raise self._failed(error) from None

    def render_program(
        self, slots: dict[str, Any]
    ) -> tuple[list[str], dict[str, Any] | None, list[dict[str, Any]] | None]:
        """(gold action texts, setup, goal) for these slots."""
        try:
            actions = [template.render(slots).strip() for template in self.actions]
            setup = self._setup(slots) if self._setup is not None else None
            goal = self._goal(slots) if self._goal is not None else None
        except (UndefinedError, SecurityError, TypeError, ValueError) as error:
            raise self._failed(error) from None
        return actions, setup, goal

    def _failed(self, error: Exception) -> TemplateError:
        return TemplateError(f"{self.path}:{self.line}: entry '{self.id}': rendering failed: {error}")


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
        template = slot_template(env, value)
        undefined = template.undeclared(declared)
        if undefined:
            raise TemplateError(f"{where} uses undefined slot '{undefined[0]}'")
        template.check()
        return ("template", template)
    return ("value", plain(value))


def _undeclared(parsed: nodes.Template, declared: set[str]) -> list[str]:
    """The names a template reads that are not slots, sorted. Jinja's own analysis (a code
    generation pass) runs only when some name read anywhere in it is not a slot: in the usual
    case, every name is one, and none can be undeclared."""
    if {name.name for name in parsed.find_all(nodes.Name) if name.ctx == "load"} <= declared:
        return []
    return sorted(meta.find_undeclared_variables(parsed) - declared)


def _setup_renderer(compiled: Any) -> Callable[[dict[str, Any]], Any]:
    """`_render_setup` of this compiled setup or goal, unrolled into closures once."""
    if isinstance(compiled, dict):
        items = tuple((k, _setup_renderer(v)) for k, v in compiled.items())
        return lambda slots: {k: render(slots) for k, render in items}
    if isinstance(compiled, list):
        elements = tuple(_setup_renderer(v) for v in compiled)
        return lambda slots: [render(slots) for render in elements]
    kind, payload = compiled
    if kind == "slot":
        return lambda slots: slots[payload]
    if kind == "template":
        return payload.render if isinstance(payload, SlotTemplate) else lambda slots: _render(payload, slots)
    if kind == "value":
        return lambda slots: payload
    name, keys = payload  # a key path into a slot's value

    def path(slots: dict[str, Any]) -> Any:
        node = slots[name]
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                return _render_setup(compiled, slots)  # which raises the error
            node = node[key]
        return node

    return path


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


def _render(template: Template | SlotTemplate, slots: dict[str, Any]) -> str:
    """`Template.render` without copying the environment globals into every context: templates
    see only their slots (the static check above enforces it), and this is the hot path."""
    if isinstance(template, SlotTemplate):
        return template.render(slots)
    return "".join(template.root_render_func(template.new_context(slots, shared=True)))


# -------------------------------------------------------------- the fast path of rendering
#
# Most templates are text with `{{ expression }}` holes over slot values: names, `.key` and
# `[index]` lookups, filters, literals, comparisons and arithmetic, `x if c else y`, `dict.get`,
# top-level `{% set %}`. Jinja renders them through a fresh Context, a generator and a sandbox
# check per lookup; `SlotTemplate` compiles that subset of Jinja's syntax tree once into plain
# closures that compute the same values in the same order, and renders with `str()` of each, as
# Jinja's generated code does. Anything outside the subset (loops, `{% if %}`, tests, most
# method calls, the `loop` or `self` variables, ...) makes the whole template render through
# Jinja; so does any exception on the fast path, so an error is always Jinja's own.
# `tests/unit/test_templating.py` checks both paths give the same text for every shipped template.


class _NotFast(Exception):
    """This node is outside the subset the fast path compiles."""


class _Fallback(Exception):
    """This render is not for the fast path (an unexpected value type): Jinja renders it."""


# Jinja gives these names meaning of its own (inside loops, macros, blocks)
_JINJA_NAMES = frozenset({"loop", "self", "super", "caller", "varargs", "kwargs", "namespace"})
# Pure methods of the value types slots hold; the sandbox lets each of them be called
_SAFE_METHODS: dict[type, frozenset[str]] = {dict: frozenset({"get", "items", "keys", "values"})}
# Filters that take Jinja's context: only `map`, which uses it to call the filter it maps with
_CONTEXT_FILTERS = frozenset({"map"})
_JINJA_MAP = _JINJA_FILTERS["map"]
_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    nodes.Add: operator.add,
    nodes.Sub: operator.sub,
    nodes.Mul: operator.mul,
    nodes.Div: operator.truediv,
    nodes.FloorDiv: operator.floordiv,
    nodes.Mod: operator.mod,
    nodes.Pow: operator.pow,
}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gteq": operator.ge,
    "lt": operator.lt,
    "lteq": operator.le,
    "in": lambda a, b: a in b,
    "notin": lambda a, b: a not in b,
}


class SlotTemplate:
    """One template: the fast closures when its syntax allows them, else (and whenever the fast
    path cannot take a render) the Jinja template, compiled on first use."""

    def __init__(self, env: SandboxedEnvironment, tree: nodes.Template, source: str):
        self.env, self.tree, self.source = env, tree, source
        self._jinja: Template | None = None
        compiler = _FastCompiler(env)
        try:
            self.fast: Callable[[dict[str, Any]], str] | None = compiler.template(tree)
        except _NotFast:
            self.fast = None
        # the names it reads from the slots: what Jinja's `find_undeclared_variables` finds
        self.reads = frozenset(compiler.loaded) if self.fast is not None else None

    def undeclared(self, declared: set[str]) -> list[str]:
        """The names it reads that are not slots, sorted."""
        if self.reads is not None:
            return sorted(self.reads - declared)
        return _undeclared(self.tree, declared)

    def check(self) -> None:
        """Compile the Jinja template now when the fast path cannot render this one, so that
        Jinja's compile-time errors come when the templates load."""
        if self.fast is None:
            self.jinja  # noqa: B018

    @property
    def jinja(self) -> Template:
        if self._jinja is None:
            self._jinja = self.env.from_string(self.tree)  # the parsed tree: not parsed again
        return self._jinja

    def render(self, slots: dict[str, Any]) -> str:
        if self.fast is not None:
            try:
                return self.fast(slots)
            except Exception:  # noqa: BLE001 - Jinja renders it, and raises its own error if any
                pass
        template = self.jinja
        return "".join(template.root_render_func(template.new_context(slots, shared=True)))


_TEMPLATES = "_toolbench_slot_templates"  # an environment's SlotTemplates by source, when it keeps them


def slot_template(env: SandboxedEnvironment, source: str) -> SlotTemplate:
    """`SlotTemplate(env, env.parse(source), source)`, made once per text where the environment
    keeps them (a `TemplateSet`'s does: entries share texts through YAML anchors, and parsing is
    most of the time it takes to load templates). A SlotTemplate is never changed once made."""
    memo = getattr(env, _TEMPLATES, None)
    template = memo.get(source) if memo is not None else None
    if template is None:
        template = SlotTemplate(env, env.parse(source), source)
        if memo is not None:
            memo[source] = template
    return template


class _FastCompiler:
    def __init__(self, env: SandboxedEnvironment):
        self.env = env
        self.assigned: set[str] = set()  # names a top-level {% set %} bound
        self.loaded: set[str] = set()  # names read so far (outside loops' own variables)
        self.loops = 0  # depth of {% for %} around the node being compiled
        self.uses_loop = False  # whether the innermost loop's body reads `loop`

    def template(self, tree: nodes.Template) -> Callable[[dict[str, Any]], str]:
        if all(isinstance(node, nodes.Output) for node in tree.body):  # text and holes only
            parts = tuple(
                child.data if isinstance(child, nodes.TemplateData) else self.expr(child)
                for node in tree.body
                for child in node.nodes
            )
            if all(isinstance(part, str) for part in parts):
                text = "".join(parts)
                return lambda slots: text
            return _joiner(parts)
        steps = self.block(tree.body)

        def render(slots: dict[str, Any]) -> str:
            scope = dict(slots)
            out: list[str] = []
            for step in steps:
                step(scope, out)
            return "".join(out)

        return render

    def block(self, body: list[nodes.Node]) -> tuple[Callable[[dict[str, Any], list[str]], None], ...]:
        steps: list[Callable[[dict[str, Any], list[str]], None]] = []
        for node in body:
            if isinstance(node, nodes.Output):
                for child in node.nodes:
                    if isinstance(child, nodes.TemplateData):
                        steps.append(_text_step(child.data))
                    else:
                        steps.append(_output_step(self.expr(child)))
            elif isinstance(node, nodes.Assign) and not self.loops:
                steps.append(self._assign(node))
            elif isinstance(node, nodes.For):
                steps.append(self._for(node))
            else:
                raise _NotFast(type(node).__name__)
        return tuple(steps)

    def _assign(self, node: nodes.Assign) -> Callable[[dict[str, Any], list[str]], None]:
        """A top-level `{% set name = expression %}`, for a name not read before it (Jinja would
        read the slot there) and not set twice."""
        target = node.target
        if (
            not isinstance(target, nodes.Name)
            or target.name in _JINJA_NAMES
            or target.name in self.loaded
            or target.name in self.assigned
        ):
            raise _NotFast("set")
        fn = self.expr(node.node)
        if target.name in self.loaded:  # `{% set x = x ... %}`
            raise _NotFast("set from itself")
        self.assigned.add(target.name)
        name = target.name

        def assign(scope: dict[str, Any], out: list[str]) -> None:
            scope[name] = fn(scope)

        return assign

    def _for(self, node: nodes.For) -> Callable[[dict[str, Any], list[str]], None]:
        """`{% for x in ... %}` or `{% for a, b in ... %}` (no else, filter or recursion): the
        loop variables and `loop` shadow the outer names inside the body only, as in Jinja."""
        if node.else_ or node.test is not None or node.recursive:
            raise _NotFast("for")
        target = node.target
        if isinstance(target, nodes.Name) and target.ctx == "store":
            names: tuple[str, ...] = (target.name,)
            single = True
        elif isinstance(target, nodes.Tuple) and all(
            isinstance(item, nodes.Name) and item.ctx == "store" for item in target.items
        ):
            names, single = tuple(item.name for item in target.items), False
        else:
            raise _NotFast("for target")
        if set(names) & _JINJA_NAMES:
            raise _NotFast("for target")
        items_of = self.expr(node.iter)  # read in the outer scope
        loaded, uses_loop = set(self.loaded), self.uses_loop
        self.loops += 1
        self.uses_loop = False
        if all(isinstance(child, nodes.Output) for child in node.body):  # text and holes only
            parts = tuple(
                child.data if isinstance(child, nodes.TemplateData) else self.expr(child)
                for output in node.body
                for child in output.nodes
            )
            body: tuple[Callable[[dict[str, Any], list[str]], None], ...] = (_parts_step(parts),)
        else:
            body = self.block(node.body)
        self.loops -= 1
        this_uses_loop, self.uses_loop = self.uses_loop, uses_loop
        self.loaded = loaded | (self.loaded - set(names))
        saved_keys = (*names, _LOOP) if this_uses_loop else names
        first = names[0]
        second = names[1] if len(names) == 2 else None

        def loop(scope: dict[str, Any], out: list[str]) -> None:
            items = list(items_of(scope))
            saved = [(key, scope.get(key, _ABSENT)) for key in saved_keys]
            length = len(items)
            for index, item in enumerate(items):
                if single:
                    scope[first] = item
                elif second is not None:
                    scope[first], scope[second] = item  # Python's unpacking, as Jinja's loop
                else:
                    values = tuple(item)
                    if len(values) != len(names):
                        raise ValueError("cannot unpack")
                    scope.update(zip(names, values, strict=True))
                if this_uses_loop:
                    scope[_LOOP] = (index, length)
                for step in body:
                    step(scope, out)
            for key, value in saved:
                if value is _ABSENT:
                    scope.pop(key, None)
                else:
                    scope[key] = value

        return loop

    def expr(self, node: nodes.Node) -> Callable[[dict[str, Any]], Any]:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise _NotFast(type(node).__name__)
        return method(node)

    def _Name(self, node: nodes.Name) -> Callable:
        name = node.name
        if node.ctx != "load" or name in _JINJA_NAMES:
            raise _NotFast(name)
        if name not in self.assigned:
            self.loaded.add(name)
        return lambda scope: scope[name]  # missing: KeyError, so Jinja renders (and fails)

    def _Const(self, node: nodes.Const) -> Callable:
        value = node.value
        return lambda scope: value

    def _Getattr(self, node: nodes.Getattr) -> Callable:
        attr = node.attr
        if isinstance(node.node, nodes.Name) and node.node.name == "loop" and self.loops:
            if attr not in _LOOP_ATTRIBUTES:
                raise _NotFast(f"loop.{attr}")
            self.uses_loop = True
            read = _LOOP_ATTRIBUTES[attr]
            return lambda scope: read(*scope[_LOOP])
        if attr.startswith("_") or hasattr(dict, attr):
            raise _NotFast(attr)  # Jinja would find the attribute (or refuse it): not a key
        inner = self.expr(node.node)

        def getattr_(scope: dict[str, Any]) -> Any:
            value = inner(scope)
            if type(value) is not dict:  # Jinja tries getattr() first: only a dict is simple
                raise _Fallback
            return value[attr]

        return getattr_

    def _Getitem(self, node: nodes.Getitem) -> Callable:
        inner = self.expr(node.node)  # Jinja's getitem tries `value[key]` first: when it works,
        if isinstance(node.arg, nodes.Const):  # that is what it returns
            key = node.arg.value
            return lambda scope: inner(scope)[key]
        if isinstance(node.arg, nodes.Slice):
            raise _NotFast("slice")
        index = self.expr(node.arg)
        return lambda scope: inner(scope)[index(scope)]

    def _Filter(self, node: nodes.Filter) -> Callable:
        func = self.env.filters.get(node.name)
        if func is None or node.node is None or node.dyn_args is not None or node.dyn_kwargs is not None:
            raise _NotFast(f"filter {node.name}")
        if func is _JINJA_MAP and node.args and not node.kwargs:
            mapped = self._map(node)
            if mapped is not None:
                return mapped
        pass_arg = _PassArg.from_obj(func)
        if pass_arg is _PassArg.context:
            if node.name not in _CONTEXT_FILTERS:
                raise _NotFast(f"filter {node.name}")
            first: tuple[Any, ...] = (self._context(),)
        else:
            first = self._leading(func)
        inner = self.expr(node.node)
        args = tuple(self.expr(arg) for arg in node.args)
        kwargs = tuple((kw.key, self.expr(kw.value)) for kw in node.kwargs)
        if not args and not kwargs and not first:
            return lambda scope: func(inner(scope))
        if all(isinstance(a, nodes.Const) for a in node.args) and not kwargs:
            constants = tuple(a.value for a in node.args)
            return lambda scope: func(*first, inner(scope), *constants)
        return lambda scope: func(
            *first, inner(scope), *[arg(scope) for arg in args], **{k: v(scope) for k, v in kwargs}
        )

    def _leading(self, func: Callable) -> tuple[Any, ...]:
        """What Jinja passes a filter before the value: its eval context or environment."""
        pass_arg = _PassArg.from_obj(func)
        if pass_arg is _PassArg.eval_context:
            return (EvalContext(self.env),)
        if pass_arg is _PassArg.environment:
            return (self.env,)
        if pass_arg is not None:
            raise _NotFast("filter")
        return ()

    def _map(self, node: nodes.Filter) -> Callable | None:
        """`value | map('filter', constant, ...)`: Jinja's `map` calls the named filter on each
        item (through `call_filter`); this calls it directly, as a generator, as `map` does."""
        name, *rest = node.args
        if not isinstance(name, nodes.Const) or not all(isinstance(a, nodes.Const) for a in rest):
            return None
        func = self.env.filters.get(name.value)
        if func is None or _PassArg.from_obj(func) is _PassArg.context:
            return None
        first, constants = self._leading(func), tuple(a.value for a in rest)
        inner = self.expr(node.node)

        def mapped(value: Any) -> Iterator[Any]:
            if value:
                for item in value:
                    yield func(*first, item, *constants)

        return lambda scope: mapped(inner(scope))

    def _context(self) -> Any:
        return self.env.context_class(self.env, {}, None, {})

    def _Call(self, node: nodes.Call) -> Callable:
        target = node.node
        if (
            not isinstance(target, nodes.Getattr)
            or node.dyn_args is not None
            or node.dyn_kwargs is not None
            or node.kwargs
        ):
            raise _NotFast("call")
        method, inner = target.attr, self.expr(target.node)
        args = tuple(self.expr(arg) for arg in node.args)

        def call(scope: dict[str, Any]) -> Any:
            value = inner(scope)
            if method not in _SAFE_METHODS.get(type(value), ()):
                raise _Fallback
            return getattr(value, method)(*[arg(scope) for arg in args])

        return call

    def _CondExpr(self, node: nodes.CondExpr) -> Callable:
        test, yes = self.expr(node.test), self.expr(node.expr1)
        if node.expr2 is None:  # Jinja's implicit else: the plain Undefined, which prints as ""
            return lambda scope: yes(scope) if test(scope) else Undefined(hint="no else section")
        no = self.expr(node.expr2)
        return lambda scope: yes(scope) if test(scope) else no(scope)

    def _Not(self, node: nodes.Not) -> Callable:
        inner = self.expr(node.node)
        return lambda scope: not inner(scope)

    def _Neg(self, node: nodes.Neg) -> Callable:
        if "-" in self.env.intercepted_unops:
            raise _NotFast("-")
        inner = self.expr(node.node)
        return lambda scope: -inner(scope)

    def _Pos(self, node: nodes.Pos) -> Callable:
        if "+" in self.env.intercepted_unops:
            raise _NotFast("+")
        inner = self.expr(node.node)
        return lambda scope: +inner(scope)

    def _And(self, node: nodes.And) -> Callable:
        left, right = self.expr(node.left), self.expr(node.right)
        return lambda scope: left(scope) and right(scope)

    def _Or(self, node: nodes.Or) -> Callable:
        left, right = self.expr(node.left), self.expr(node.right)
        return lambda scope: left(scope) or right(scope)

    def _binary(self, node: nodes.BinExpr) -> Callable:
        if node.operator in self.env.intercepted_binops:
            raise _NotFast(node.operator)
        op, left, right = _BINARY[type(node)], self.expr(node.left), self.expr(node.right)
        return lambda scope: op(left(scope), right(scope))

    _Add = _Sub = _Mul = _Div = _FloorDiv = _Mod = _Pow = _binary

    def _Concat(self, node: nodes.Concat) -> Callable:
        parts = tuple(self.expr(part) for part in node.nodes)
        return lambda scope: "".join([str(part(scope)) for part in parts])

    def _Compare(self, node: nodes.Compare) -> Callable:
        first = self.expr(node.expr)
        ops = tuple((_COMPARE[op.op], self.expr(op.expr)) for op in node.ops)

        def compare(scope: dict[str, Any]) -> Any:
            left = first(scope)
            result: Any = True
            for op, right_fn in ops:
                right = right_fn(scope)
                result = op(left, right)
                if not result:
                    return result
                left = right
            return result

        return compare

    def _Tuple(self, node: nodes.Tuple) -> Callable:
        if node.ctx != "load":
            raise _NotFast("tuple target")
        items = tuple(self.expr(item) for item in node.items)
        return lambda scope: tuple([item(scope) for item in items])

    def _List(self, node: nodes.List) -> Callable:
        items = tuple(self.expr(item) for item in node.items)
        return lambda scope: [item(scope) for item in items]

    def _Dict(self, node: nodes.Dict) -> Callable:
        pairs = tuple((self.expr(pair.key), self.expr(pair.value)) for pair in node.items)
        if all(isinstance(part, nodes.Const) for pair in node.items for part in (pair.key, pair.value)):
            # a table of constants ({1: 'st', 2: 'nd'}[n]): made once; nothing here can change it
            table = {pair.key.value: pair.value.value for pair in node.items}  # type: ignore[attr-defined]
            return lambda scope: table
        return lambda scope: {key(scope): value(scope) for key, value in pairs}


_LOOP = " loop"  # where a loop's (index0, length) sits in the scope: no slot can be called that
_ABSENT = object()
_LOOP_ATTRIBUTES: dict[str, Callable[[int, int], Any]] = {
    "index0": lambda i, n: i,
    "index": lambda i, n: i + 1,
    "revindex0": lambda i, n: n - i - 1,
    "revindex": lambda i, n: n - i,
    "first": lambda i, n: i == 0,
    "last": lambda i, n: i == n - 1,
    "length": lambda i, n: n,
}


def _text_step(text: str) -> Callable[[dict[str, Any], list[str]], None]:
    def step(scope: dict[str, Any], out: list[str]) -> None:
        out.append(text)

    return step


def _parts_step(parts: tuple[Any, ...]) -> Callable[[dict[str, Any], list[str]], None]:
    def step(scope: dict[str, Any], out: list[str]) -> None:
        out.append("".join([part if part.__class__ is str else str(part(scope)) for part in parts]))

    return step


def _output_step(fn: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any], list[str]], None]:
    def step(scope: dict[str, Any], out: list[str]) -> None:
        out.append(str(fn(scope)))

    return step


def _joiner(parts: tuple[Any, ...]) -> Callable[[dict[str, Any]], str]:
    """Text and holes joined: `"".join` of the text and `str()` of each hole's value, in order.
    Written as %-formatting of the text (`%s` per hole, which prints a value as `str()` does),
    with up to four holes called without a loop: most templates have one to four."""
    holes = tuple(part for part in parts if part.__class__ is not str)
    form = "".join(part.replace("%", "%%") if part.__class__ is str else "%s" for part in parts)
    if len(holes) == 1:
        (a,) = holes
        return lambda slots: form % (a(slots),)
    if len(holes) == 2:
        a, b = holes
        return lambda slots: form % (a(slots), b(slots))
    if len(holes) == 3:
        a, b, c = holes
        return lambda slots: form % (a(slots), b(slots), c(slots))
    if len(holes) == 4:
        a, b, c, d = holes
        return lambda slots: form % (a(slots), b(slots), c(slots), d(slots))
    return lambda slots: form % tuple([hole(slots) for hole in holes])


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
            data = _json_lines_pool(path)
            if data is None:
                data = plain(load_yaml(path))
            if not isinstance(data, list) or not data:
                raise TemplateError(f"{path}:1: a pool file must be a non-empty YAML list")
            pools[path.stem] = data
    return pools


# A line of a pool file that can be read as JSON, giving what YAML gives: `- ` then one JSON value
# with no backslash (YAML and JSON escapes differ), no float (YAML 1.1 reads `1e3` as a string;
# left to YAML's own float reading) and only characters YAML prints as they are (no line
# separators such as U+2028 or U+0085).
_JSON_ITEM = re.compile(r"- [\[{\"0-9tfn-][^\\\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]*")
_NOT_INT = re.compile(r"[0-9][.eE]")
_STRING = re.compile(r'"[^"]*"')  # no backslash, so no escaped quote inside


def _json_lines_pool(path: Path) -> list[Any] | None:
    """The pool of a file written as one `- {JSON}` line per item (tools write the big pools so),
    read with orjson: YAML takes a second or more on a catalog-sized pool. None (read it as YAML)
    for any other layout, or a line JSON and YAML could read differently."""
    items = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line or line.startswith("#"):
            continue
        if not _JSON_ITEM.fullmatch(line) or _NOT_INT.search(_STRING.sub('""', line)):
            return None
        try:
            items.append(orjson.loads(line[2:]))
        except orjson.JSONDecodeError:
            return None
    return items


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
        setattr(env, _TEMPLATES, {})  # one SlotTemplate per text: YAML anchors repeat texts
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
        synonyms = data.get("synonyms") or {}
        if not isinstance(synonyms, dict) or not all(
            isinstance(v, list) and v and all(isinstance(w, str) for w in v) for v in synonyms.values()
        ):
            raise TemplateError(f"{path}:1: 'synonyms' must map names to non-empty lists of strings")
        synonyms = {str(k): [str(w) for w in v] for k, v in synonyms.items()}
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
            if entry.compose is not None:
                compiled.append(ComposedEntry(entry, raw, path, self.tool, shared, pools, env, synonyms))
            else:
                compiled.append(CompiledEntry(entry, raw, path, self.tool, shared, pools, env))
        return compiled

    def select(self, split: str) -> list[CompiledEntry]:
        return [e for e in self.entries if split == "all" or e.entry.split == split]


# ------------------------------------------------------------------------- compose entries
#
# A compose entry is a required core (its `queries`, now sentence frames, and its `action`) and
# optional clauses, each with its own slots, phrases and action lines. One draw turns some
# clauses on, draws only their slots, shuffles the order the request says them in, picks a
# phrase for each, joins them ("..., under $500k with 3 beds and a pool" or "3 beds; a pool"),
# and paraphrases the literal text (synonyms, politeness, casing, one typo). The text is built as
# segments (text, literal?): a segment a `{{ hole }}` printed (a slot value the gold call copies)
# is never changed, so every value appears in the request exactly as the program writes it.
# Everything is drawn in `draw` from the candidate's RNG: same seed, same request.

TemplateEntry.model_rebuild()

_SYNONYM = re.compile(r"\[\[(\w+)\]\]")
_TYPO_WORD = re.compile(r"[A-Za-z]{4,}")
_PLAN = " plan"  # reserved slot keys (a name with a space: no template can read them)
_QUERY = " query"
_SPECIAL = ("clauses", "items")
_QUESTION_WORDS = frozenset({"could", "can", "would", "will"})

# Built-in pools for `[[name]]` in any compose text (an entry's or file's `synonyms:` add more,
# or replace these). `ask` opens a request politely or not; `stop` ends it to match ("?" after
# "Could you"); `want` is filler before a noun phrase; `thanks` an optional closing.
BUILTIN_SYNONYMS: dict[str, list[str]] = {
    "ask": ["", "", "", "", "Please", "Could you", "Can you", "Would you", "Could you please"],
    "want": [
        "I'm looking for",
        "Looking for",
        "I want",
        "I need",
        "Show me",
        "Find me",
        "I'd like to see",
        "Searching for",
        "I'm after",
        "Help me find",
    ],
    "thanks": ["", "", "", "", "", "Thanks!", "Thank you.", "Thanks in advance.", "Cheers."],
    "with": ["with", "with", "with", "with", "that has", "having"],
    "and": ["and", "and", "and", "and", "plus", "as well as"],
}


class _Fragment:
    """A compose text compiled to parts: literal text, `[[synonym]]`, a hole (a fast closure),
    or the `{{ clauses }}` / `{{ items }}` place. A text outside the fast subset renders whole
    through `SlotTemplate` as one protected segment."""

    __slots__ = ("parts", "template", "specials")

    def __init__(self, env: SandboxedEnvironment, source: str, where: str):
        self.template = slot_template(env, source)
        tree = self.template.tree
        self.parts: tuple[tuple[int, Any], ...] | None = None
        self.specials: set[str] = set()
        if not all(isinstance(node, nodes.Output) for node in tree.body):
            if any(isinstance(n, nodes.Name) and n.name in _SPECIAL for n in tree.find_all(nodes.Name)):
                raise TemplateError(
                    f"{where}: a frame with {{{{ clauses }}}} must be text and {{{{ }}}} holes only"
                )
            return
        compiler = _FastCompiler(env)
        parts: list[tuple[int, Any]] = []
        try:
            for node in tree.body:
                for child in node.nodes:
                    if isinstance(child, nodes.TemplateData):
                        parts.extend(_literal_parts(child.data))
                    elif isinstance(child, nodes.Name) and child.name in _SPECIAL:
                        parts.append((3, child.name))
                        self.specials.add(child.name)
                    else:
                        parts.append((2, compiler.expr(child)))
        except _NotFast:
            if self.specials:
                raise TemplateError(
                    f"{where}: a frame with {{{{ clauses }}}} must use fast holes only"
                ) from None
            return
        self.parts = tuple(parts)


def _literal_parts(text: str) -> list[tuple[int, Any]]:
    parts: list[tuple[int, Any]] = []
    last = 0
    for match in _SYNONYM.finditer(text):
        if match.start() > last:
            parts.append((0, text[last : match.start()]))
        parts.append((1, match.group(1)))
        last = match.end()
    if last < len(text):
        parts.append((0, text[last:]))
    return parts


def _soft_drawer(sampler: SlotSampler) -> Callable[[random.Random, dict[str, Any]], Any]:
    """`sampler.draw`, except that an `above`/`below` bound on a slot of a clause that is off is
    no bound at all."""
    spec = sampler.spec
    if spec.above is None and spec.below is None:
        return sampler.draw
    return _bounded_drawer(spec, soft=True)


class _Clause:
    __slots__ = ("id", "spec", "draws", "queries", "nouns", "action", "n_queries", "n_all")

    def __init__(
        self,
        spec: ClauseSpec,
        draws: tuple,
        queries: list[_Fragment],
        nouns: list[_Fragment],
        action: SlotTemplate,
    ):
        self.id, self.spec, self.draws = spec.id, spec, draws
        self.queries, self.nouns, self.action = queries, nouns, action
        self.n_queries, self.n_all = len(queries), len(queries) + len(nouns)


class _Value(str):
    """A segment of a compose request that a `{{ hole }}` printed: a slot value the program
    copies, which paraphrase never changes. Every other segment is literal text, a plain `str`
    (casing and a typo may change it); a request is built as a list of both (`Segment`)."""

    __slots__ = ()


Segment = str  # literal text, or a `_Value`


class ComposedEntry(CompiledEntry):
    """A compose entry, compiled: the engine's interface of `CompiledEntry` (`draw`,
    `render_query`, `render_program`; `queries` and `actions` hold every template it has)."""

    def __init__(
        self,
        entry: TemplateEntry,
        raw: dict[str, Any],
        path: Path,
        tool: str,
        shared_slots: dict[str, SlotSpec],
        pools: dict[str, list[Any]],
        env: SandboxedEnvironment,
        synonyms: dict[str, list[str]] | None = None,
    ):
        self.entry, self.path, self.tool = entry, path, tool
        self.line = line_of(raw.get("id"))
        compose: ComposeSpec = entry.compose  # type: ignore[assignment]
        where = f"{path}:{self.line}: entry '{entry.id}'"
        core_specs = {**shared_slots, **entry.slots}
        self.samplers = [SlotSampler(n, s, pools, where) for n, s in core_specs.items()]
        self._draws = tuple((s.name, s.draw) for s in self.samplers)
        declared = set(core_specs)
        owner: dict[str, str] = {}
        for clause in compose.clauses:
            for name in clause.slots:
                if name in declared or name in _SPECIAL:
                    raise TemplateError(f"{where}: clause '{clause.id}' slot '{name}' is declared twice")
                declared.add(name)
                owner[name] = clause.id
        for name, spec in [
            *core_specs.items(),
            *((n, s) for c in compose.clauses for n, s in c.slots.items()),
        ]:
            for ref in (spec.above, spec.below):
                if ref is not None and ref not in declared:
                    raise TemplateError(f"{where} slot '{name}' refers to undefined slot '{ref}'")
        ids = [c.id for c in compose.clauses]
        if len(set(ids)) != len(ids):
            raise TemplateError(
                f"{where}: clause ids repeat: {', '.join(sorted(i for i in set(ids) if ids.count(i) > 1))}"
            )
        index = {cid: k for k, cid in enumerate(ids)}
        for clause in compose.clauses:
            for ref in (*clause.requires, *clause.excludes, *(r for r in clause.into if r != "tail")):
                if ref not in index:
                    raise TemplateError(f"{where}: clause '{clause.id}' names unknown clause '{ref}'")
            if clause.into and (clause.tail or clause.id in compose.required):
                raise TemplateError(
                    f"{where}: clause '{clause.id}' has `into`: it can be neither tail nor required"
                )
            for ref in clause.into:
                if ref != "tail" and compose.clauses[index[ref]].into:
                    raise TemplateError(f"{where}: clause '{clause.id}' `into` names another `into` clause")
        for ref in compose.required:
            if ref not in index:
                raise TemplateError(f"{where}: required clause '{ref}' is not a clause")

        def compile_text(label: str, source: str, names: set[str]) -> _Fragment:
            try:
                fragment = _Fragment(env, source, f"{where} {label}")
            except TemplateSyntaxError as error:
                line = line_of(source, self.line) + (error.lineno or 1) - 1
                raise TemplateError(
                    f"{path}:{line}: entry '{entry.id}' {label}: template syntax: {error.message}"
                ) from None
            undefined = fragment.template.undeclared(names)
            if undefined:
                raise TemplateError(f"{where} {label} uses undefined slot '{undefined[0]}'")
            fragment.template.check()
            return fragment

        def compile_action(label: str, source: str, names: set[str]) -> SlotTemplate:
            return compile_text(label, source, names).template

        core_names = set(core_specs)
        self.frames = [
            compile_text(f"query {i + 1}", q, core_names | set(_SPECIAL))
            for i, q in enumerate(raw["queries"])
        ]
        self.core = compile_action("action", raw["action"], core_names)
        self.tail = compile_action("tail", (raw.get("compose") or {}).get("tail") or "", core_names)
        self.clauses: list[_Clause] = []
        parts: list[tuple[Any, Any]] = []  # each clause's compiled setup and goal
        raw_clauses = (raw.get("compose") or {}).get("clauses") or []
        for clause, raw_clause in zip(compose.clauses, raw_clauses, strict=True):
            names = core_names | set(clause.slots)
            # a clause may read the slots of the clauses it requires (they are on with it)
            for ref in clause.requires:
                names |= set(compose.clauses[index[ref]].slots)
            samplers = [
                SlotSampler(n, s, pools, f"{where} clause '{clause.id}'") for n, s in clause.slots.items()
            ]
            self.samplers.extend(samplers)
            label = f"clause '{clause.id}'"
            self.clauses.append(
                _Clause(
                    clause,
                    tuple((s.name, _soft_drawer(s)) for s in samplers),
                    [
                        compile_text(f"{label} query {i + 1}", q, names)
                        for i, q in enumerate(raw_clause.get("queries") or [])
                    ],
                    [
                        compile_text(f"{label} noun {i + 1}", q, names)
                        for i, q in enumerate(raw_clause.get("nouns") or [])
                    ],
                    compile_action(f"{label} action", raw_clause["action"], names),
                )
            )
            parts.append(
                (
                    None
                    if clause.setup is None
                    else _compile_setup(clause.setup, env, names, f"{where} {label} setup"),
                    None
                    if clause.goal is None
                    else _compile_setup(clause.goal, env, names, f"{where} {label} goal"),
                )
            )
        n = len(self.clauses)
        # What a clause adds beside its action lines (`into`, `last`, `setup`, `goal`); an entry
        # with none of them draws and renders as it did before they existed. `arguments`: for an
        # argument clause, the clauses it adds to and whether the entry's tail is one of them;
        # `into`: what choosing it needs (one of those clauses on; nothing when the tail is one).
        self.arguments = tuple(
            (tuple(index[ref] for ref in c.into if ref != "tail"), "tail" in c.into) if c.into else None
            for c in compose.clauses
        )
        self.into = tuple(() if args is None or args[1] else args[0] for args in self.arguments)
        self.lasts = frozenset(k for k, c in enumerate(compose.clauses) if c.last)
        self.clause_setups = tuple(_setup_renderer(st) if st is not None else None for st, _ in parts)
        self.clause_goals = tuple(_setup_renderer(g) if g is not None else None for _, g in parts)
        self.extras = any(self.arguments) or any(self.clause_setups) or any(self.clause_goals)
        self.goal_list = entry.goal is not None or any(self.clause_goals)
        self.required = tuple(sorted(index[r] for r in compose.required))
        self.optional = tuple(k for k in range(n) if k not in self.required)
        low, high = compose.count if compose.count is not None else (0, len(self.optional))
        if not 0 <= low <= high:
            raise TemplateError(f"{where}: compose count [{low}, {high}] is not a range")
        self.count = (low, min(high, len(self.optional)))
        self.count_cum: list[float] | None = None
        if compose.count_weights is not None:
            weights = compose.count_weights
            if len(weights) != high - low + 1 or any(w < 0 for w in weights) or not sum(weights) > 0:
                raise TemplateError(f"{where}: count_weights needs {high - low + 1} weights >= 0, not all 0")
            self.count_cum = list(accumulate(weights[: self.count[1] - low + 1]))
        self.weights = [c.spec.weight for c in self.clauses]
        self.stages = [c.spec.stage for c in self.clauses]
        self.uniform = len(set(self.weights)) <= 1
        # each optional clause's key exponent 1 / weight, and positions to sort by key
        self.powers = tuple(1.0 / self.weights[i] for i in self.optional)
        self.positions = tuple(range(len(self.optional)))
        # what turning a clause on brings with it (its `requires`, transitively), and what
        # it rules out (`excludes`, both ways)
        closure: list[frozenset[int]] = []
        for k in range(n):
            seen, todo = {k}, [k]
            while todo:
                for ref in self.clauses[todo.pop()].spec.requires:
                    if index[ref] not in seen:
                        seen.add(index[ref])
                        todo.append(index[ref])
            closure.append(frozenset(seen))
        self.closure = closure
        excluded: list[set[int]] = [set() for _ in range(n)]
        for k, clause in enumerate(self.clauses):
            for ref in clause.spec.excludes:
                excluded[k].add(index[ref])
                excluded[index[ref]].add(k)
        self.excluded = [frozenset(e) for e in excluded]
        # what turning a clause on rules out: what any clause it brings with it excludes
        self.blocked = [frozenset().union(*(self.excluded[j] for j in closure[k])) for k in range(n)]
        self.simple = [closure[k] == {k} and not self.blocked[k] and not self.into[k] for k in range(n)]
        for k in self.required:
            if closure[k] & frozenset().union(*(excluded[j] for j in self.required)):
                raise TemplateError(f"{where}: required clauses exclude each other")
        self.frames_any = tuple(range(len(self.frames)))
        self.frames_bare = tuple(k for k, f in enumerate(self.frames) if "items" not in f.specials)
        if not self.frames_bare:
            if self.count[0] == 0 and not self.required:
                raise TemplateError(
                    f"{where}: needs a query without {{{{ items }}}} for a request with no clause"
                )
            self.frames_bare = self.frames_any  # never used: every request has a clause
        self.paraphrase = compose.paraphrase
        self.synonyms = {**BUILTIN_SYNONYMS, **(synonyms or {}), **compose.paraphrase.synonyms}
        for fragment in [*self.frames, *(f for c in self.clauses for f in (*c.queries, *c.nouns))]:
            for kind, payload in fragment.parts or ():
                if kind == 1 and payload not in self.synonyms and payload != "stop":
                    raise TemplateError(f"{where}: unknown synonym pool [[{payload}]]")
            if fragment.parts is not None:
                fragment.parts = tuple(self._resolve(kind, payload) for kind, payload in fragment.parts)
        # what the shared tests and tools see: every template (frames and phrases, actions)
        self.queries = [f.template for f in self.frames] + [
            f.template for c in self.clauses for f in (*c.queries, *c.nouns)
        ]
        self.actions = [self.core, self.tail, *(c.action for c in self.clauses)]
        self.sources = [(f"query {i + 1}", q) for i, q in enumerate(raw["queries"])]
        self.setup = _compile_setup(entry.setup, env, declared, f"{where} setup")
        self.goal = _compile_setup(entry.goal, env, declared, f"{where} goal")
        self._setup = _setup_renderer(self.setup) if self.setup is not None else None
        self._goal = _setup_renderer(self.goal) if self.goal is not None else None

    # ------------------------------------------------------------------- drawing
    def draw_slots(self, rng: random.Random) -> dict[str, Any]:
        """Every slot of the core and of every clause (as if all were on), and empty clause
        places: what any of its templates can read."""
        values = CompiledEntry.draw_slots(self, rng)
        try:
            for clause in self.clauses:
                for name, draw in clause.draws:
                    values[name] = draw(rng, values)
        except ValueError as error:
            raise TemplateError(f"{self.path}:{self.line}: entry '{self.id}': {error}") from None
        values["clauses"] = values["items"] = ""
        return values

    def choose(self, rng: random.Random) -> list[int]:
        """The clauses on for one sample (indices, in declaration order)."""
        low, high = self.count
        if self.count_cum is not None:
            k = low + bisect(self.count_cum, rng.random() * self.count_cum[-1])
        else:
            k = low + below(rng, high - low + 1) if high > low else low  # rng.randint(low, high)
        if not k:
            return sorted(set(self.required))
        if self.uniform:
            order = permutation(rng, self.optional)
        else:  # weighted order without replacement (Efraimidis-Spirakis keys)
            random_ = rng.random  # one key per clause, drawn in the clauses' order
            keys = [-(random_() ** power) for power in self.powers]
            optional = self.optional
            order = [optional[j] for j in sorted(self.positions, key=keys.__getitem__)]
        on = set(self.required)
        picked = 0
        simple, closure, blocked = self.simple, self.closure, self.blocked
        for i in order:
            if picked >= k:
                break
            if i in on:
                continue
            if simple[i]:  # requires nothing, excludes nothing: `on | {i}` below, in place
                on.add(i)
                picked += 1
                continue
            together = on | closure[i]
            targets = self.into[i]
            if targets and together.isdisjoint(targets):  # an argument comes with a call it fits
                for t in sorted(targets, key=order.index):
                    with_target = together | closure[t]
                    if (blocked[i] | blocked[t]).isdisjoint(with_target):
                        together = with_target
                        break
                else:
                    continue
            elif not blocked[i].isdisjoint(together):
                continue
            on = together
            picked += 1
        return sorted(on)

    def draw(self, rng: random.Random) -> tuple[dict[str, Any], int]:
        active = self.choose(rng)
        values = CompiledEntry.draw_slots(self, rng)
        clauses = self.clauses
        try:
            for k in active:
                for name, draw in clauses[k].draws:
                    values[name] = draw(rng, values)
        except ValueError as error:
            raise TemplateError(f"{self.path}:{self.line}: entry '{self.id}': {error}") from None
        said = active[:]
        shuffle(rng, said)
        if self.lasts:
            lasts = self.lasts
            said = [k for k in said if k not in lasts] + [k for k in said if k in lasts]
        frames = self.frames_any if active else self.frames_bare
        frame = frames[below(rng, len(frames))]
        state: dict[str, str] = {}
        segments: list[str] = []
        try:
            self._segments(self.frames[frame], values, rng, said, state, segments)
        except (UndefinedError, SecurityError, TypeError, ValueError) as error:
            raise self._failed(error) from None
        values[_QUERY] = self._finish(segments, rng)
        # actions by stage, then in the order the request says them: a stable sort of `said`
        values[_PLAN] = tuple(sorted(said, key=self.stages.__getitem__))
        return values, frame

    # ------------------------------------------------------------------ the request
    def _segments(
        self,
        fragment: _Fragment,
        values: dict[str, Any],
        rng: random.Random,
        said: list[int],
        state: dict[str, str],
        out: list[str],
    ) -> None:
        """Append the fragment's segments to `out`: literal text as `str`, what a hole printed as
        `_Value` (see `Segment`)."""
        if fragment.parts is None:
            text = fragment.template.render(values)
            out.append(_Value(_SYNONYM.sub(lambda m: self._synonym(m.group(1), rng, state), text)))
            return
        start = len(out)
        append = out.append
        for kind, payload in fragment.parts:
            if kind == 0:
                append(payload)
            elif kind == 2:
                try:
                    append(_Value(payload(values)))
                except Exception:  # noqa: BLE001 - Jinja renders the whole text, with its own error
                    del out[start:]
                    append(_Value(fragment.template.jinja.render(values)))
                    return
            elif kind == 1 or kind == 5:  # a synonym: `below(rng, n)`, inline
                pool, n, bits = payload
                r = rng.getrandbits(bits)
                while r >= n:
                    r = rng.getrandbits(bits)
                word = pool[r]
                if kind == 5:
                    state["stop"] = "?" if word.split(" ", 1)[0].lower() in _QUESTION_WORDS else "."
                append(word)
            elif kind == 4:
                append(state.get("stop", "."))
            elif payload == "clauses":
                self._inline(values, rng, said, state, out)
            else:
                self._items(values, rng, said, state, out)

    def _resolve(self, kind: int, payload: Any) -> tuple[int, Any]:
        """A fragment's part with its `[[synonym]]` looked up: (1, draw) for a pool, (4, None) for
        `stop`, (5, draw) for `ask` (which sets what `stop` says); `draw` is (pool, its size,
        the bits `below` draws for it)."""
        if kind != 1:
            return kind, payload
        if payload == "stop":
            return 4, None
        pool = tuple(self.synonyms[payload])
        return (5 if payload == "ask" else 1), (pool, len(pool), len(pool).bit_length())

    def _synonym(self, name: str, rng: random.Random, state: dict[str, str]) -> str:
        if name == "stop":
            return state.get("stop", ".")
        pool = self.synonyms[name]
        word = pool[below(rng, len(pool))]
        if name == "ask":
            state["stop"] = "?" if word.split(" ", 1)[0].lower() in _QUESTION_WORDS else "."
        return word

    def _phrase(
        self,
        clause: _Clause,
        values: dict[str, Any],
        rng: random.Random,
        state: dict[str, str],
        noun_first: bool,
    ) -> tuple[list[str], bool]:
        if noun_first and clause.nouns:
            k = clause.n_queries + below(rng, len(clause.nouns))
        else:
            k = below(rng, clause.n_all)
        phrase: list[str] = []
        if k < clause.n_queries:
            self._segments(clause.queries[k], values, rng, [], state, phrase)
            return phrase, False
        self._segments(clause.nouns[k - clause.n_queries], values, rng, [], state, phrase)
        return phrase, True

    def _inline(
        self,
        values: dict[str, Any],
        rng: random.Random,
        said: list[int],
        state: dict[str, str],
        out: list[str],
    ) -> None:
        """The clauses in a sentence: phrases apart, noun phrases together after "with"."""
        units: list[list[str]] = []
        nouns: list[list[str]] = []
        for k in said:
            phrase, is_noun = self._phrase(self.clauses[k], values, rng, state, False)
            (nouns if is_noun else units).append(phrase)
        if nouns:
            group = [self._synonym("with", rng, state) + " "]
            _join(nouns, ", ", f" {self._synonym('and', rng, state)} ", group)
            units.insert(below(rng, len(units) + 1), group)
        if not units:
            return
        sep = (", ", ", ", ", ", " ", "; ")[below(rng, 5)] if len(units) > 1 else ""
        out.append(" ")
        _join(units, sep, sep, out)

    def _items(
        self,
        values: dict[str, Any],
        rng: random.Random,
        said: list[int],
        state: dict[str, str],
        out: list[str],
    ) -> None:
        """The clauses as a list: "3+ beds; under $500k; a pool"."""
        phrases = [self._phrase(self.clauses[k], values, rng, state, True)[0] for k in said]
        sep = ("; ", ", ", ", ")[below(rng, 3)]
        last = sep if rng.random() < 0.5 else f" {self._synonym('and', rng, state)} "
        _join(phrases, sep, last, out)

    def _finish(self, segments: list[str], rng: random.Random) -> str:
        """Casing, a typo and spacing, on the literal text only."""
        paraphrase = self.paraphrase
        lower = rng.random() < paraphrase.lower
        if lower:
            segments = [text if type(text) is _Value else text.lower() for text in segments]
        if rng.random() < paraphrase.typo:
            segments = _typo(segments, rng)
        if not lower:  # a sentence starts with a capital letter, when literal text starts it
            segments = _capitalise(segments)
        text = " ".join("".join(segments).split())
        return text.replace(" ,", ",").replace(" .", ".").replace(" ?", "?").replace(" ;", ";")

    def render_query(self, slots: dict[str, Any], paraphrase: int) -> str:
        return slots[_QUERY]

    def render_program(
        self, slots: dict[str, Any]
    ) -> tuple[list[str], dict[str, Any] | None, list[dict[str, Any]] | None]:
        """The core action, each clause's action in plan order (a `tail` clause's replaces the
        entry's tail), the tail; an entry with `into`, `setup` or `goal` clauses (`self.extras`)
        also adds their arguments to the calls they name and merges their setups and goals."""
        plan = slots[_PLAN]
        try:
            arguments = self._added_arguments(plan, slots) if self.extras else {}
            lines = [self.core.render(slots).strip()]
            tail = self.tail
            tail_args = arguments.get(-1, [])
            for k in plan:
                if self.arguments[k] is not None:  # an argument clause: added above, not a line
                    continue
                clause = self.clauses[k]
                if clause.spec.tail:
                    tail, tail_args = clause.action, [*arguments.get(k, []), *tail_args]
                else:
                    line = clause.action.render(slots).strip()
                    lines.append(_with_arguments(line, arguments[k]) if k in arguments else line)
            line = tail.render(slots).strip()
            lines.append(_with_arguments(line, tail_args) if tail_args else line)
            setup = self._setup(slots) if self._setup is not None else None
            goal = self._goal(slots) if self._goal is not None else None
            if self.extras:
                if self.goal_list and goal is None:
                    goal = []
                for k in plan:
                    if self.clause_setups[k] is not None:
                        setup = _merge_setup(setup, self.clause_setups[k](slots))
                    if self.clause_goals[k] is not None:
                        goal = [*goal, *self.clause_goals[k](slots)]  # type: ignore[misc]
        except (UndefinedError, SecurityError, TypeError, ValueError) as error:
            raise self._failed(error) from None
        return ["\n".join([line for line in lines if line])], setup, goal

    def _added_arguments(self, plan: list[int], slots: dict[str, Any]) -> dict[int, list[str]]:
        """Clause (-1: the tail) -> the keyword-argument texts the plan's argument clauses add to
        its call, in the order the request says them."""
        arguments: dict[int, list[str]] = {}
        for k in plan:
            if self.arguments[k] is not None:
                targets, to_tail = self.arguments[k]
                text = self.clauses[k].action.render(slots).strip()
                for target in (*targets, -1) if to_tail else targets:
                    if target == -1 or target in plan:
                        arguments.setdefault(target, []).append(text)
        return arguments

    def bare_sources(self, slots: dict[str, Any], paraphrase: int) -> list[str]:
        """The Jinja sources a plain template renderer would render for this sample (the frame,
        the first phrase of each clause that is on, the actions): the benchmark's floor."""
        on = [self.clauses[k] for k in slots[_PLAN]]
        return [
            self.frames[paraphrase].template.source,
            *((c.queries or c.nouns)[0].template.source for c in on),
            self.core.source,
            *(c.action.source for c in on),
            self.tail.source,
        ]


def _with_arguments(call: str, arguments: list[str]) -> str:
    """`call` (its last line a call) with `arguments` (keyword-argument texts) added to it."""
    if not call.endswith(")"):
        raise ValueError(f"cannot add arguments {', '.join(arguments)} to {call!r}: not a call")
    head = call[:-1].rstrip()
    return f"{head}{'' if head.endswith('(') else ', '}{', '.join(arguments)})"


def _merge_setup(setup: dict[str, Any] | None, extra: dict[str, Any]) -> dict[str, Any]:
    """A setup with a clause's setup merged in: lists extended, mappings merged, else replaced."""
    merged = dict(setup) if setup is not None else {}
    for key, value in extra.items():
        old = merged.get(key)
        if isinstance(old, list) and isinstance(value, list):
            merged[key] = [*old, *value]
        elif isinstance(old, dict) and isinstance(value, dict):
            merged[key] = _merge_setup(old, value)
        else:
            merged[key] = value
    return merged


_SENTENCE_START = re.compile(r"([.!?]\s+)([a-z])")


def _capitalise(segments: list[str]) -> list[str]:
    """Upper-case the first letter of each sentence where literal text starts it (a value that
    starts a sentence stays as it is). A segment after a sentence's first words with no `.`, `!`
    or `?` in it neither starts nor ends a sentence: it is passed over (most are)."""
    out = segments
    start = True  # at the start of a sentence
    for k, text in enumerate(segments):
        if not start and "." not in text and "!" not in text and "?" not in text:
            continue  # unchanged, and `start` stays False (or the segment is blank)
        tail = text.rstrip()
        if not tail:
            continue
        if type(text) is not _Value:
            changed = text
            first = len(text) - len(text.lstrip())  # the first non-blank character
            if start and text[first].islower():
                changed = text[:first] + text[first].upper() + text[first + 1 :]
            if "." in changed or "!" in changed or "?" in changed:
                changed = _SENTENCE_START.sub(_upper_second, changed)
            if changed is not text:
                if out is segments:
                    out = list(segments)
                out[k] = changed
        start = tail[-1] in ".!?"
    return out


def _upper_second(match: re.Match[str]) -> str:
    return match.group(1) + match.group(2).upper()


def _join(pieces: list[list[str]], sep: str, last: str, out: list[str]) -> None:
    """Append the pieces to `out`, `sep` between them and `last` before the last one."""
    final = len(pieces) - 1
    for k, piece in enumerate(pieces):
        if k:
            out.append(last if k == final else sep)
        out.extend(piece)


def _typo(segments: list[str], rng: random.Random) -> list[str]:
    """One typo (two letters swapped, one dropped or doubled) in a literal word of 4+ letters."""
    places = [
        (k, match.start(), match.end())
        for k, text in enumerate(segments)
        if type(text) is not _Value
        for match in _TYPO_WORD.finditer(text)
    ]
    if not places:
        return segments
    k, start, end = places[below(rng, len(places))]
    text = segments[k]
    word = text[start:end]
    j = 1 + below(rng, len(word) - 3)  # rng.randrange(1, len(word) - 2)
    kind = below(rng, 3)
    if kind == 0:
        word = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
    elif kind == 1:
        word = word[:j] + word[j + 1 :]
    else:
        word = word[:j] + word[j] + word[j:]
    return [*segments[:k], text[:start] + word + text[end:], *segments[k + 1 :]]


# ------------------------------------------------------------------------- coverage, diversity


def valid_function_sets(
    required: Iterable[str],
    optional: Iterable[str],
    requires: dict[str, Iterable[str]] | None = None,
    excludes: Iterable[tuple[str, str]] = (),
) -> set[frozenset[str]]:
    """Every function set of one variant of a tool's rules: `required` plus any subset of
    `optional` in which each function's `requires` are present and no `excludes` pair is."""
    base, extra = frozenset(required), sorted(set(optional) - set(required))
    needs = {k: frozenset(v) for k, v in (requires or {}).items()}
    pairs = [frozenset(p) for p in excludes]
    found: set[frozenset[str]] = set()
    for mask in range(1 << len(extra)):
        chosen = base | {f for b, f in enumerate(extra) if mask >> b & 1}
        if all(needs.get(f, frozenset()) <= chosen for f in chosen) and not any(p <= chosen for p in pairs):
            found.add(chosen)
    return found


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the texts (lower-cased word tokens)."""
    grams: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        words = _TOKEN.findall(text.lower())
        for k in range(len(words) - n + 1):
            grams.add(tuple(words[k : k + n]))
            total += 1
    return len(grams) / total if total else 0.0


_TOKEN = re.compile(r"[a-z0-9$]+(?:[',.][a-z0-9]+)*|[^\sa-z0-9]")


_NOT_WORD = re.compile(r"[^0-9a-z]+")


def normalise_query(query: str) -> str:
    """What counts as 'the same request' for dedupe: case, punctuation and spacing ignored."""
    return _NOT_WORD.sub(" ", query.lower()).strip()
