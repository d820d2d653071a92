"""Compose entries: any combination of clauses renders a request and a program that executes;
values the program copies appear verbatim in the request; paraphrase is seeded; the held-out
phrasings stay held out; coverage is counted as defined."""

from __future__ import annotations

import random
import re
import textwrap
from pathlib import Path

import pytest
from jinja2 import nodes

from toolbench.core.calls import PythonFormat
from toolbench.core.executor import execute
from toolbench.core.registry import get_tool
from toolbench.core.templating import (
    ComposedEntry,
    TemplateSet,
    _typo,
    _Value,
    distinct_n,
    make_environment,
    valid_function_sets,
)
from toolbench.foundation.errors import TemplateError
from toolbench.foundation.goals import Predicate, unmet

PY = PythonFormat(get_tool("home_search").format_context())
COMPOSED_TOOLS = [
    "home_search",
    "trip_booking",
    "cat_api",
    "spreadsheet",
    "tabletop",
    "virtual_home",
    "weather",
]
# arguments whose values the request must spell exactly as the call does (names, places, ids,
# cell addresses; see `_said` for the tools that name objects by their words)
COPIED = {
    "set_location": {"value"},
    "set_max_commute_time": {"destination"},
    "select_home_type": {"home_types"},
    "set_origin": {"value"},
    "set_destination": {"value"},
    "set_hotel_location": {"value"},
    # cat_api
    "search_images": {"breed_id"},
    "get_image": {"image_id"},
    "vote": {"image_id"},
    "add_favourite": {"image_id"},
    "delete_vote": {"vote_id"},
    "delete_favourite": {"favourite_id"},
    "search_breeds": {"q"},
    # spreadsheet
    "update_cell": {"cell", "value"},
    "update": {"range", "values"},
    "get_values": {"range"},
    "set_format": {"range"},
    "sort": {"column"},
    "append_row": {"values"},
    "insert_row": {"row", "values"},
    "delete_rows": {"start", "end"},
    "delete_columns": {"start", "end"},
    # tabletop
    "put_first_on_second": {"obj1", "obj2"},
    "stack_objects": {"objects"},
    "get_obj_pos": {"obj"},
    "say": {"message"},
    # virtual_home
    "walk_to": {"target"},
    "find": {"target"},
    "grab": {"obj"},
    "put": {"obj", "target"},
    "open": {"obj"},
    "close": {"obj"},
    "switch_on": {"obj"},
    "switch_off": {"obj"},
    "sit": {"target"},
    # weather
    "current_weather": {"city"},
    "forecast": {"city"},
    "geocode": {"city"},
}


# valid function sets per tool (`SPACES` in benchmarks/coverage.py)
VALID_SETS = {
    "home_search": 4096,
    "trip_booking": 1152,
    "cat_api": 1023,
    "spreadsheet": 511,
    "tabletop": 31,
    "virtual_home": 288,
    "weather": 31,
}


def _said(value: object, query: str, tool: str) -> bool:
    """Whether a copied value is in the request as the call writes it (virtual_home's requests
    name an object by its id with spaces for underscores, "tv" as "TV")."""
    text = str(value)
    if tool == "virtual_home":
        return text.replace("_", " ").casefold() in query.casefold()
    return text in query


def _items(value: object) -> list[object]:
    if isinstance(value, list):
        return [item for element in value for item in _items(element)]
    return [value]


TOY = """\
tool: home_search
synonyms:
  homes: [homes, places, listings]
entries:
  - id: toy
    split: train
    slots:
      city: {choice: ["Austin, TX", "the big apple"]}
    queries:
      - "[[ask]] find [[homes]] to buy in {{ city }}{{ clauses }}[[stop]]"
      - "{{ city }} purchase: {{ items }}."
    action: |
      API.set_location({{ city | py }})
      API.set_buy_or_rent("buy")
    compose:
      tail: API.search()
      paraphrase: {lower: 0.3, typo: 0.5}
      clauses:
        - id: beds
          slots: {beds: {int: [1, 5]}}
          nouns: ["{{ beds }}+ bedrooms"]
          action: API.set_num_beds({{ beds }})
        - id: low
          slots: {low: {int: [100, 500], step: 50}}
          queries: ["over {{ low | money }}"]
          action: API.set_min_price({{ low }})
          excludes: [range]
        - id: high
          slots: {high: {int: [100, 1000], step: 50, above: low}}
          queries: ["under {{ high | money }}"]
          action: API.set_max_price({{ high }})
          excludes: [range]
        - id: range
          slots:
            a: {int: [100, 500], step: 50}
            b: {int: [600, 900], step: 50}
          queries: ["between {{ a }} and {{ b }} dollars"]
          action: |
            API.set_min_price({{ a }})
            API.set_max_price({{ b }})
        - id: pool
          slots: {pools: {int: [1, 2]}}
          nouns: ["{{ pools }} pools"]
          action: API.set_num_swimming_pools({{ pools }})
          requires: [beds]
        - id: sort
          tail: true
          slots: {order: {choice: [newest, price_low]}}
          queries: ["sorted by {{ order }}"]
          action: API.search(sort_by={{ order | py }})
"""


def toy(tmp_path: Path, text: str = TOY) -> ComposedEntry:
    folder = tmp_path / "home_search"
    folder.mkdir(exist_ok=True)
    (folder / "t.yaml").write_text(textwrap.dedent(text))
    entry = TemplateSet("home_search", folder).entries[0]
    assert isinstance(entry, ComposedEntry)
    return entry


def functions(action: str) -> frozenset[str]:
    return frozenset(call.name for call in PY.parse(action))


def test_every_combination_renders_a_program_that_executes(tmp_path):
    entry = toy(tmp_path)
    seen: set[frozenset[str]] = set()
    for seed in range(600):
        rendered = entry.render(random.Random(seed))
        (action,) = rendered.actions
        result = execute(PY.parse(action), ["home_search"])
        assert result.ok, (rendered.query, action, result.errors)
        names = functions(action)
        seen.add(names)
        calls = [c.name for c in PY.parse(action)]
        assert calls[:2] == ["set_location", "set_buy_or_rent"] and calls[-1] == "search"
        if "set_num_swimming_pools" in names:  # `requires: [beds]`
            assert "set_num_beds" in names
        state = result.state["home_search"]
        if "sort" in rendered.query:
            assert state["sort_by"] == rendered.slots["order"]
    core = {"set_location", "set_buy_or_rent", "search"}
    expected = valid_function_sets(
        core,
        ["set_num_beds", "set_min_price", "set_max_price", "set_num_swimming_pools"],
        requires={"set_num_swimming_pools": ["set_num_beds"]},
    )
    assert seen == expected  # every valid set, and nothing else
    assert len(expected) == 12  # 2^4 = 16, less the 4 with a pool and no beds


def test_clause_values_appear_verbatim_and_slots_of_clauses_off_are_not_drawn(tmp_path):
    entry = toy(tmp_path)
    for seed in range(300):
        slots, _ = entry.draw(random.Random(seed))
        query = entry.render_query(slots, 0)
        (action,) = entry.render_program(slots)[0]
        program = PY.parse(action)
        assert program[0].arguments["value"] in query  # the city, exactly as the call writes it
        for call in program[2:]:
            for value in call.arguments.values():
                assert str(value) in query.replace(",", "") or f"${value:,}" in query, (query, action)
        if "set_min_price" not in functions(action):
            assert "low" not in slots and "a" not in slots
        if "set_max_price" in functions(action) and "set_min_price" in functions(action) and "high" in slots:
            assert slots["high"] > slots["low"]  # `above:` holds when both clauses are on


def test_paraphrase_is_deterministic_for_a_seed(tmp_path):
    entry = toy(tmp_path)
    first = [entry.render(random.Random(seed)) for seed in range(50)]
    again = [toy(tmp_path).render(random.Random(seed)) for seed in range(50)]
    assert [r.query for r in first] == [r.query for r in again]
    assert [r.actions for r in first] == [r.actions for r in again]
    assert len({r.query for r in first}) == 50


def test_paraphrase_varies_casing_politeness_synonyms_and_typos(tmp_path):
    entry = toy(tmp_path)
    queries = [entry.render(random.Random(seed)).query for seed in range(400)]
    assert any(q.startswith("Could you") and q.endswith("?") for q in queries)
    assert any(q.startswith("find ") for q in queries)  # the literal text in lower case
    assert {"homes", "places", "listings"} <= {w for q in queries for w in q.split()}
    words = {w.strip(".,?") for q in queries for w in q.split()}
    assert words & {"fnid", "fin", "finnd", "placs", "plcaes", "homs", "lisitngs", "purchse", "purchae"}


def test_typos_and_casing_never_touch_values(tmp_path):
    entry = toy(tmp_path)
    lower_city = 0
    for seed in range(500):
        rendered = entry.render(random.Random(seed))
        assert rendered.slots["city"] in rendered.query  # "Austin, TX" keeps its case, always
        lower_city += rendered.slots["city"] == "the big apple" and rendered.query.startswith("the big apple")
    assert lower_city  # a value that starts the request is not capitalised either
    segments = ["Find homes in ", _Value("Springfield"), " please"]  # a value: what a hole printed
    for seed in range(50):
        out = _typo(segments, random.Random(seed))
        assert out[1] == "Springfield" and type(out[1]) is _Value
        assert out != segments


def test_compose_mistakes_are_template_errors(tmp_path):
    with pytest.raises(TemplateError, match="names unknown clause 'nope'"):
        toy(tmp_path, TOY.replace("requires: [beds]", "requires: [nope]"))
    with pytest.raises(TemplateError, match="unknown synonym pool"):
        toy(tmp_path, TOY.replace("[[homes]]", "[[houses]]"))
    with pytest.raises(TemplateError, match="no alternatives"):
        toy(tmp_path, TOY.replace("    compose:\n", "    alternatives: ['API.search()']\n    compose:\n"))
    with pytest.raises(TemplateError, match="declared twice"):
        toy(tmp_path, TOY.replace("{pools: {int: [1, 2]}}", "{beds: {int: [1, 2]}}"))


def test_coverage_of_a_toy_tool():
    # two variants, a requires rule and an excludes pair
    sets = valid_function_sets(["a"], ["b", "c", "d"], requires={"d": ["b"]}, excludes=[("b", "c")])
    assert sets == {
        frozenset("a"),
        frozenset("ab"),
        frozenset("ac"),
        frozenset("abd"),
    }
    assert len(valid_function_sets([], ["x", "y"])) == 4  # the empty set included
    assert distinct_n(["a b a b"], 1) == 0.5 and distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)


@pytest.mark.parametrize("tool", COMPOSED_TOOLS)
def test_shipped_compose_entries_execute_and_copy_values(tool):
    entries = [
        e for e in TemplateSet(tool, get_tool(tool).templates_dir()).entries if isinstance(e, ComposedEntry)
    ]
    assert entries and all(e.entry.split == "train" for e in entries)
    space = VALID_SETS[tool]
    for entry in entries:
        sets, shapes = set(), set()
        python = PythonFormat(get_tool(tool).format_context())
        for seed in range(150):
            rendered = entry.render(random.Random(seed))
            program = python.parse(rendered.actions[0])
            result = execute(program, [tool], {tool: rendered.setup} if rendered.setup is not None else None)
            assert result.ok, (entry.id, rendered.query, rendered.actions[0], result.errors)
            if rendered.goal is not None:  # a clause's goal holds after its program
                goal = [Predicate.model_validate(p) for p in rendered.goal]
                assert not unmet(goal, result.state), (entry.id, rendered.query, rendered.goal)
            sets.add(frozenset(call.name for call in program))
            shapes.add(frozenset((call.name, *sorted(call.arguments)) for call in program))
            for call in program:  # every name, id or address a call copies is in the request
                for key, value in call.arguments.items():
                    if call.name in COPIED and key in COPIED[call.name]:
                        for item in _items(value):
                            assert _said(item, rendered.query, tool), (rendered.query, call)
        # many function sets; an entry of one call varies its optional arguments instead
        assert len(sets) > min(40, space // 2) or len(shapes) >= 15, entry.id


def _frame(source: str) -> re.Pattern[str] | None:
    """A held-out query's phrasing frame: its literal text, any text where its holes are."""
    tree = make_environment().parse(source)
    if not all(isinstance(node, nodes.Output) for node in tree.body):
        return None
    parts = []
    for node in tree.body:
        for child in node.nodes:
            parts.append(re.escape(child.data) if isinstance(child, nodes.TemplateData) else ".+?")
    return re.compile("".join(parts), re.IGNORECASE)


@pytest.mark.parametrize("tool", COMPOSED_TOOLS)
def test_no_compose_request_has_a_held_out_phrasing(tool):
    entries = TemplateSet(tool, get_tool(tool).templates_dir()).entries
    frames = [f for e in entries if e.entry.split == "test" for q in e.entry.queries if (f := _frame(q))]
    assert frames
    for entry in (e for e in entries if isinstance(e, ComposedEntry)):
        for seed in range(300):
            query = entry.render(random.Random(seed)).query
            assert not any(frame.fullmatch(" ".join(query.split())) for frame in frames), query


ARGUMENTS = """\
tool: weather
entries:
  - id: toy_arguments
    split: train
    slots:
      city: {choice: [Paris, Rome]}
    queries:
      - "{{ city }}: {{ items }}."
    action: ""
    compose:
      count: [1, 4]
      tail: API.geocode(city={{ city | py }})
      paraphrase: {lower: 0, typo: 0}
      clauses:
        - id: now
          queries: ["the weather now"]
          action: API.current_weather(city={{ city | py }})
        - id: forecast
          queries: ["the forecast"]
          action: API.forecast(city={{ city | py }})
        - id: metric
          into: [now, forecast]
          queries: ["in Celsius"]
          action: units="metric"
        - id: steps
          into: [forecast]
          slots: {n: {int: [1, 5]}}
          queries: ["{{ n }} steps"]
          action: cnt={{ n }}
        - id: limit
          into: [tail]
          slots: {k: {int: [1, 5]}}
          queries: ["at most {{ k }} matches"]
          action: limit={{ k }}
        - id: air
          last: true
          queries: ["the air at 48.86, 2.35 last"]
          action: API.air_pollution(lat=48.86, lon=2.35)
"""


def _toy(tmp_path: Path, tool: str, text: str) -> ComposedEntry:
    folder = tmp_path / tool
    folder.mkdir(exist_ok=True)
    (folder / "t.yaml").write_text(text)
    entry = TemplateSet(tool, folder).entries[0]
    assert isinstance(entry, ComposedEntry)
    return entry


def test_argument_clauses_go_into_the_calls_they_name(tmp_path):
    entry = _toy(tmp_path, "weather", ARGUMENTS)  # every request has a clause: no bare frame needed
    python = PythonFormat(get_tool("weather").format_context())
    seen = set()
    for seed in range(300):
        rendered = entry.render(random.Random(seed))
        program = python.parse(rendered.actions[0])
        assert execute(program, ["weather"]).ok, rendered.actions[0]
        calls = {call.name: call.arguments for call in program}
        weather = [calls[name] for name in ("current_weather", "forecast") if name in calls]
        celsius = "in Celsius" in rendered.query
        assert all((args.get("units") == "metric") == celsius for args in weather), rendered
        if celsius:  # an argument comes only with a call it fits: one of them is on
            assert weather
        if "steps" in rendered.query:
            assert calls["forecast"]["cnt"] == rendered.slots["n"]
        assert calls["geocode"].get("limit") == rendered.slots.get("k")  # the entry's tail
        assert program[-1].name == "geocode"
        if "air_pollution" in calls:  # `last`: said after the others
            assert rendered.query.endswith("the air at 48.86, 2.35 last.")
        seen.add(frozenset((call.name, *sorted(call.arguments)) for call in program))
    assert len(seen) > 15


SETUP_AND_GOAL = """\
tool: tabletop
entries:
  - id: toy_parts
    split: train
    setup: {blocks: [red, green, blue], bowls: [red]}
    queries: ["{{ items }}"]
    action: ""
    compose:
      count: [1, 2]
      clauses:
        - id: unstack
          setup: {place: [["red block", "green block"]]}
          queries: ["move the red block off the green block to the middle"]
          action: API.put_first_on_second("red block", "middle")
          goal: [{path: "tabletop.on.red block", op: eq, value: middle}]
        - id: bowl
          setup: {place: [["blue block", "top side"]], said: [hello]}
          queries: ["put the blue block from the top side in the red bowl"]
          action: API.put_first_on_second("blue block", "red bowl")
          goal: [{path: "tabletop.on.blue block", op: eq, value: red bowl}]
"""


def test_clauses_add_their_setup_and_goal(tmp_path):
    entry = _toy(tmp_path, "tabletop", SETUP_AND_GOAL)
    seen = set()
    for seed in range(60):
        rendered = entry.render(random.Random(seed))
        on = rendered.actions[0].count("API.")
        places = [["red block", "green block"]] * ("middle" in rendered.actions[0])
        places += [["blue block", "top side"]] * ("red bowl" in rendered.actions[0])
        assert sorted(rendered.setup["place"]) == sorted(places) and len(rendered.goal) == on
        assert rendered.setup["blocks"] == ["red", "green", "blue"]  # the entry's own setup
        assert rendered.setup.get("said") == (["hello"] if "red bowl" in rendered.actions[0] else None)
        result = execute(_tabletop(rendered.actions[0]), ["tabletop"], {"tabletop": rendered.setup})
        assert result.ok and not unmet([Predicate.model_validate(p) for p in rendered.goal], result.state)
        seen.add(on)
    assert seen == {1, 2}


def _tabletop(action: str):
    return PythonFormat(get_tool("tabletop").format_context()).parse(action)


def test_argument_clause_mistakes_are_template_errors(tmp_path):
    with pytest.raises(TemplateError, match="names unknown clause 'later'"):
        _toy(tmp_path, "weather", ARGUMENTS.replace("into: [forecast]", "into: [later]"))
    with pytest.raises(TemplateError, match="names another `into` clause"):
        _toy(tmp_path, "weather", ARGUMENTS.replace("into: [forecast]", "into: [metric]"))
    with pytest.raises(TemplateError, match="can be neither tail nor required"):
        _toy(tmp_path, "weather", ARGUMENTS.replace("into: [tail]", "into: [tail]\n          tail: true"))
    with pytest.raises(TemplateError, match="needs a query without"):
        _toy(tmp_path, "weather", ARGUMENTS.replace("count: [1, 4]", "count: [0, 4]"))


def test_the_spreadsheet_compose_pool_describes_the_tables():
    from toolbench.core.templating import load_yaml, plain
    from toolbench.tools.spreadsheet import TABLES
    from toolbench.tools.spreadsheet.formula import column_index, column_letters

    records = plain(load_yaml(get_tool("spreadsheet").templates_dir() / "pools" / "compose_sheets.yaml"))
    for record in records:
        rows = TABLES[record["table"]]
        header, width = rows[0], len(rows[0])
        assert len(rows) >= 11  # rows 2-9 are edited and read, rows up to 10 deleted

        def numeric(letters: str, rows=rows) -> bool:
            return all(isinstance(row[column_index(letters)], (int, float)) for row in rows[1:])

        assert (record["prev_col"], record["last_col"]) == (
            column_letters(width - 2),
            column_letters(width - 1),
        )
        for letters, name in zip(record["num"], record["numh"], strict=True):
            assert header[column_index(letters)] == name and numeric(letters)
        for letters, name, number in zip(record["sort"], record["sorth"], record["sortnum"], strict=True):
            assert header[column_index(letters)] == name and numeric(letters) == number
        assert all(len(row) == width for row in record["new"])
        # the value grid (lo + k * step, k = 0..30) lies about where the column's values lie
        low, high = record["lo"], record["lo"] + 30 * record["step"]
        values = [row[column_index(record["num"][0])] for row in rows[1:]]
        assert 0 <= low <= max(values) and min(values) <= high <= 4 * max(values), record["table"]
