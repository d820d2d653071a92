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

PY = PythonFormat(get_tool("home_search").format_context())
COMPOSED_TOOLS = ["home_search", "trip_booking"]
# arguments whose values the request must spell exactly as the call does (names, places)
COPIED = {
    "set_location": {"value"},
    "set_max_commute_time": {"destination"},
    "select_home_type": {"home_types"},
    "set_origin": {"value"},
    "set_destination": {"value"},
    "set_hotel_location": {"value"},
}

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
    for entry in entries:
        sets = set()
        python = PythonFormat(get_tool(tool).format_context())
        for seed in range(150):
            rendered = entry.render(random.Random(seed))
            program = python.parse(rendered.actions[0])
            result = execute(program, [tool])
            assert result.ok, (entry.id, rendered.query, rendered.actions[0], result.errors)
            sets.add(frozenset(call.name for call in program))
            for call in program:  # every place name a call copies is in the request as it is
                for key, value in call.arguments.items():
                    if call.name in COPIED and key in COPIED[call.name]:
                        for item in value if isinstance(value, list) else [value]:
                            assert item in rendered.query, (rendered.query, call)
        assert len(sets) > 40, entry.id


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
