"""Templates: mistakes name file, line and slot; slot draws respect their constraints."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest

from toolbench.core.registry import get_tool
from toolbench.core.templating import TemplateSet
from toolbench.foundation.errors import TemplateError

ENTRY = """\
tool: home_search
entries:
  - id: ok_entry
    split: train
    slots:
      city: {pool: us_cities}
      low: {int: [100, 500], step: 50}
      high: {int: [100, 1000], step: 50, above: low}
    queries:
      - "Homes in {{ city }} from {{ low }} to {{ high }}"
    action: |
      API.set_location({{ city | py }})
"""


def write(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "home_search"
    folder.mkdir(exist_ok=True)
    (folder / "t.yaml").write_text(textwrap.dedent(text))
    return folder


def load(tmp_path: Path, text: str) -> TemplateSet:
    return TemplateSet("home_search", write(tmp_path, text))


def test_undefined_slot_names_file_line_and_slot(tmp_path):
    text = ENTRY.replace(
        "API.set_location({{ city | py }})",
        "API.set_location({{ city | py }})\n      API.set_num_beds({{ beds }})",
    )
    with pytest.raises(TemplateError) as caught:
        load(tmp_path, text)
    assert str(caught.value) == (
        f"{tmp_path}/home_search/t.yaml:13: entry 'ok_entry' action uses undefined slot 'beds'; "
        "declared slots: city, high, low"
    )


def test_jinja_syntax_error_names_the_line(tmp_path):
    with pytest.raises(TemplateError, match=r"t.yaml:10: entry 'ok_entry' query 1: template syntax"):
        load(tmp_path, ENTRY.replace("from {{ low }}", "from {{ low }"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("{pool: us_cities}", "{pool: nowhere}"), "slot 'city' uses unknown pool 'nowhere'"),
        (("above: low", "above: lowest"), "slot 'high' refers to undefined slot 'lowest'"),
        (("split: train", "split: dev"), "t.yaml:3: template entry field 'split'"),
        (("{int: [100, 500], step: 50}", "{int: [100, 500], choice: [1]}"), "exactly one of"),
    ],
)
def test_entry_mistakes_are_template_errors(tmp_path, change, message):
    with pytest.raises(TemplateError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load(tmp_path, ENTRY.replace(*change))


def test_duplicate_ids_are_refused(tmp_path):
    twice = ENTRY + ENTRY.split("entries:\n")[1]
    with pytest.raises(TemplateError, match="template id 'ok_entry' is used twice"):
        load(tmp_path, twice)


def test_bad_yaml_names_the_line(tmp_path):
    with pytest.raises(TemplateError, match=r"t.yaml:\d+: not valid YAML"):
        load(tmp_path, ENTRY + "  - id: [unclosed\n")


def test_slot_bounds_hold(tmp_path):
    entry = load(tmp_path, ENTRY).entries[0]
    for seed in range(300):
        slots = entry.draw_slots(random.Random(seed))
        assert 100 <= slots["low"] <= 500 and slots["low"] % 50 == 0
        assert slots["low"] < slots["high"] <= 1000


def test_shipped_templates_meet_the_bar():
    entries = TemplateSet("home_search", get_tool("home_search").templates_dir()).entries
    assert len(entries) >= 12
    assert sum(e.entry.split == "test" for e in entries) >= 3
    assert all(len(e.entry.queries) >= 2 for e in entries)


def test_setup_leaves_render_from_slots_keeping_types(tmp_path):
    text = ENTRY.replace(
        "    action: |",
        '    setup: {criteria: {min_price: "{{ low }}", note: "from {{ city }}", fixed: [1, 2]}}\n    action: |',
    )
    rendered = load(tmp_path, text).entries[0].render(random.Random(0))
    assert rendered.setup == {
        "criteria": {
            "min_price": rendered.slots["low"],
            "note": f"from {rendered.slots['city']}",
            "fixed": [1, 2],
        }
    }
    with pytest.raises(TemplateError, match="setup uses undefined slot 'nope'"):
        load(tmp_path, text.replace('"{{ low }}"', '"{{ nope }}"'))


def test_goal_renders_from_slots_keeping_types(tmp_path):
    text = ENTRY.replace(
        "    action: |",
        '    goal:\n      - {path: "home_search.criteria.location", value: "{{ city | lower }}"}\n'
        '      - {path: "home_search.criteria.min_price", op: in, value: ["{{ low }}"]}\n    action: |',
    )
    rendered = load(tmp_path, text).entries[0].render(random.Random(1))
    assert rendered.goal == [
        {"path": "home_search.criteria.location", "value": rendered.slots["city"].lower()},
        {"path": "home_search.criteria.min_price", "op": "in", "value": [rendered.slots["low"]]},
    ]
