"""spreadsheet: rules and their error types, the formula evaluator, state and scoring."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import assert_wrong
from toolbench.core.calls import PythonFormat
from toolbench.core.episode import single_shot_tools
from toolbench.core.executor import execute
from toolbench.core.registry import spec_index, tool_names
from toolbench.core.score import Scorer, flatten_state
from toolbench.core.task_files import verify_tasks
from toolbench.foundation.errors import ToolError
from toolbench.foundation.records import Task
from toolbench.pipelines.results import score_text
from toolbench.tools.spreadsheet import TABLES, TOOL, make_pools

PY = PythonFormat(TOOL.format_context())
GRADES = {"spreadsheet": {"table": "grades"}}
MATH = [78, 92, 65, 88, 97, 73, 81, 59, 84, 90, 70, 86]  # grades B2:B13, as shipped


def run(text: str, setup: dict | None = GRADES):
    return execute(PY.parse(text), ["spreadsheet"], setup)


def sheet(text: str, setup: dict | None = GRADES) -> dict:
    execution = run(text, setup)
    assert execution.ok, execution.errors
    return execution.state["spreadsheet"]


def error_of(text: str, setup: dict | None = GRADES) -> str | None:
    errors = run(text, setup).errors
    return errors[0].error_type if errors else None


# ------------------------------------------------------------------- the tool


def test_functions_and_registry():
    assert TOOL.name == "spreadsheet" and "spreadsheet" in tool_names()
    assert set(TOOL.specs) == {
        "get_values",
        "update_cell",
        "update",
        "append_row",
        "insert_row",
        "delete_rows",
        "delete_columns",
        "sort",
        "set_format",
    }
    spec_index(tuple(single_shot_tools()))  # no function name clashes with any other tool
    cell = TOOL.specs["update_cell"].parameters["properties"]["value"]
    assert cell["type"] == ["string", "number", "null"]


def test_shipped_tables_are_what_the_templates_assume():
    assert 4 <= len(TABLES) <= 6
    for rows in TABLES.values():
        assert 8 <= len(rows) - 1 <= 15 and 4 <= len(rows[0]) <= 6
        assert len({row[0] for row in rows[1:]}) == len(rows) - 1  # column A is a unique key
    assert [row[1] for row in TABLES["grades"][1:]] == MATH


def test_generated_pools_match_the_tables():
    folder = TOOL.templates_dir() / "pools"
    for name, items in make_pools.pools().items():
        assert (folder / f"{name}.yaml").read_text(encoding="utf-8") == make_pools.render(items), name


def test_frozen_tasks_verify():
    n_tasks, n_labels, problems = verify_tasks(TOOL.tasks_file())
    assert n_tasks >= 100 and n_labels > n_tasks and problems == []


# --------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    ("text", "error_type"),
    [
        ('API.get_values("B")', "spreadsheet:range"),
        ('API.get_values("3")', "spreadsheet:range"),
        ('API.get_values("B0")', "spreadsheet:range"),
        ('API.get_values("A1:B2:C3")', "spreadsheet:range"),
        ('API.get_values("B2:")', "spreadsheet:range"),
        ('API.get_values("B:3")', "spreadsheet:range"),
        ('API.get_values("F2")', "spreadsheet:range"),  # grades has columns A-E
        ('API.get_values("A14")', "spreadsheet:range"),  # and rows 1-13
        ('API.get_values("C3:B2")', "spreadsheet:range"),  # start after end
        ('API.get_values("sales!B2")', "spreadsheet:range"),  # another sheet
        ('API.update_cell("B2:C2", 1)', "spreadsheet:range"),
        ('API.insert_row(15, ["Zoe"])', "spreadsheet:range"),
        ("API.delete_rows(5, 3)", "spreadsheet:range"),
        ("API.delete_rows(14)", "spreadsheet:range"),
        ('API.delete_columns("F")', "spreadsheet:range"),
        ('API.delete_columns("1")', "spreadsheet:range"),
        ('API.delete_columns("D", "B")', "spreadsheet:range"),
        ('API.delete_columns("A", "E")', "spreadsheet:range"),  # every column
        ('API.sort("Z")', "spreadsheet:range"),
        ('API.update("B2:C2", [[1, 2, 3]])', "spreadsheet:shape"),
        ('API.update("B2:B3", [[1]])', "spreadsheet:shape"),
        ('API.update("B2:C3", [[1, 2], [3]])', "spreadsheet:shape"),
        ('API.append_row(["Zoe", 1, 2, 3, 4, 5])', "spreadsheet:shape"),
        ('API.insert_row(2, ["Zoe", 1, 2, 3, 4, 5])', "spreadsheet:shape"),
        ('API.update_cell("B2", "=SUM(B3:B5")', "spreadsheet:formula"),
        ('API.update_cell("B2", "=FOO(B3)")', "spreadsheet:formula"),
        ('API.update_cell("B2", "=B3+")', "spreadsheet:formula"),
        ('API.update_cell("B2", "=")', "spreadsheet:formula"),
        ('API.update_cell("B2", "=B3:B5")', "spreadsheet:formula"),  # a range outside a function
        ('API.update_cell("B2", "=SUM(Z99)")', "spreadsheet:formula"),  # outside the table
        ('API.update_cell("B2", "=B2+1")', "spreadsheet:formula"),  # circular
        ('API.append_row(["Total", "=SUM(B2:B14)"])', "spreadsheet:formula"),  # includes itself
        ('API.set_format("A1")', "spreadsheet:format"),
        ('API.set_format("A1", bold=None, italic=None)', "spreadsheet:format"),
        ('API.insert_row(1, ["Zoe"])', "schema:minimum"),
        ("API.delete_rows(1)", "schema:minimum"),
        ('API.update_cell("B2", True)', "schema:type"),
        ('API.update_cell("B2", [1])', "schema:type"),
        ("API.append_row([])", "schema:minItems"),
        ('API.set_format("A1", background="purple")', "schema:enum"),
        ('API.sort("B", ascending="no")', "schema:type"),
    ],
)
def test_rules_raise_their_error_type(text, error_type):
    assert error_of(text) == error_type


def test_a_failed_formula_write_changes_nothing():
    start = sheet('API.append_row(["Total", "=SUM(B2:B13)"])')
    simulator = TOOL(GRADES["spreadsheet"])
    simulator.append_row(["Total", "=SUM(B2:B13)"])
    for bad in ("=B14", "=SUM(B2:B14)*2"):
        with pytest.raises(ToolError, match="circular"):
            simulator.update_cell("B2", bad)
    with pytest.raises(ToolError, match="circular"):
        simulator.insert_row(3, ["X", "=B15"])  # the total moves to B15 and would need X
    assert simulator.state() == start


# ---------------------------------------------------------- state and results


def test_state_is_keyed_by_cell_with_defaults_filled():
    state = sheet('API.get_values("A1")')
    assert state["cells"]["A1"] == "Student" and state["cells"]["E13"] == 91 and len(state["cells"]) == 65
    assert state["formulas"] == {} and state["formats"] == {}
    assert state["reads"] == [{"range": "A1", "values": [["Student"]]}]
    assert sheet("", None)["cells"]["A1"] == "Rep"  # no setup: the first table, sales
    # an omitted default and an explicit one give the same state
    assert sheet('API.sort("B")') == sheet('API.sort("B", ascending=True)')
    assert sheet("API.delete_rows(3)") == sheet("API.delete_rows(3, 3)") == sheet("API.delete_rows(3, None)")
    assert sheet('API.set_format("A1", bold=True)') == sheet(
        'API.set_format("A1", bold=True, italic=None, number_format=None, background=None)'
    )
    # a format back to its default is no format at all
    assert sheet('API.set_format("A1:B1", bold=False, background="white")') == sheet("")
    assert sheet('API.set_format("A1", bold=True)\nAPI.set_format("A1", bold=False)') == sheet("")
    # whole rows/columns, one-cell ranges, sheet prefixes and case are the same addresses
    assert sheet('API.set_format("1:1", bold=True)') == sheet('API.set_format("A1:E1", bold=True)')
    assert (
        sheet('API.get_values("b3:b3")')
        == sheet('API.get_values("B3")')
        == sheet('API.get_values("grades!B3")')
    )
    assert sheet('API.get_values("B:B")')["reads"][0]["range"] == "B1:B13"


def test_values_are_read_as_sheets_reads_user_input():
    state = sheet('API.update("B2:E2", [["91", "", "7.5", None]])')["cells"]
    assert (state["B2"], state["C2"], state["D2"], state["E2"]) == (91, None, 7.5, None)
    assert sheet('API.update_cell("B2", "91")') == sheet('API.update_cell("B2", 91)')


def test_results_and_state_are_deterministic():
    program = """API.insert_row(4, ["Zoe", 88, 92, 75, 81])
API.update_cell("B7", 90)
API.sort("B", ascending=False)
API.append_row(["Average", "=AVERAGE(B2:B14)"])
API.set_format("A1:E1", bold=True, background="yellow")
API.get_values("A2:B3")"""
    first, second = run(program), run(program)
    assert first.ok and first.results == second.results and first.state == second.state
    json.dumps(first.state, allow_nan=False)  # plain JSON
    assert first.results[:2] == [{"updated_range": "A4:E4", "row": 4}, {"updated_range": "B7", "value": 90}]
    assert first.results[-1] == {"range": "A2:B3", "values": [["Maya", 92], ["Priya", 90]]}  # ties keep order
    state = first.state["spreadsheet"]
    assert state["cells"]["B15"] == pytest.approx((963 - 97 + 90 + 88) / 13)
    assert state["formats"]["C1"] == {"bold": True, "background": "yellow"}
    assert TOOL.final_reply(list(PY.parse(program)), first.results) == (
        "I inserted a row at row 4, set B7 to 90, sorted the rows by column B (descending), added a row at "
        "row 15 and formatted A1:E1; A2:B3 holds Maya, 92; Priya, 90."
    )
    assert TOOL.final_reply([], []) == "Done."


def test_sort_orders_numbers_text_and_blanks_and_keeps_the_header():
    cells = sheet('API.update_cell("B3", None)\nAPI.update_cell("B4", "absent")\nAPI.sort("B")')["cells"]
    column = [cells[f"B{r}"] for r in range(1, 14)]
    assert column == ["Math", 59, 70, 73, 78, 81, 84, 86, 88, 90, 97, "absent", None]
    down = sheet('API.sort("B", ascending=False)')["cells"]
    assert [down[f"B{r}"] for r in range(2, 14)] == sorted(MATH, reverse=True)
    assert down["A2"] == "Priya" and down["A1"] == "Student"
    names = sheet('API.sort("A", ascending=False)')["cells"]
    assert names["A2"] == "Wendy" and names["A13"] == "Liam"


def test_formats_move_with_their_rows():
    state = sheet(
        'API.set_format("A3:E3", background="green")\nAPI.insert_row(2, ["Zoe"])\nAPI.delete_columns("B")'
    )
    assert state["formats"] == {f"{c}4": {"background": "green"} for c in "ABCD"}
    moved = sheet('API.set_format("B3", italic=True)\nAPI.sort("B")')  # Maya's 92 sorts to row 12
    assert moved["formats"] == {"B12": {"italic": True}}


# ------------------------------------------------------------------ formulas


def total_row(formula: str) -> tuple:
    state = sheet(f'API.append_row(["Total", {json.dumps(formula)}])')
    return state["cells"]["B14"], state["formulas"]["B14"]


@pytest.mark.parametrize(
    ("formula", "value", "text"),
    [
        ("=SUM(B2:B13)", 963, "=SUM(B2:B13)"),
        ("=AVERAGE(B2:B13)", 80.25, "=AVERAGE(B2:B13)"),
        ("=MIN(B2:B13)", 59, "=MIN(B2:B13)"),
        ("=MAX(B2:B13)", 97, "=MAX(B2:B13)"),
        ("=COUNT(B2:B13)", 12, "=COUNT(B2:B13)"),
        ("=COUNT(A1:B13)", 12, "=COUNT(A1:B13)"),  # text is not counted
        ("= sum( b13 : b2 )", 963, "=SUM(B2:B13)"),  # canonical text: case, spaces, corner order
        ("=SUM(B2:B3, 10, C2)", 78 + 92 + 10 + 85, "=SUM(B2:B3,10,C2)"),
        ("=B2", 78, "=B2"),
        ("=A2", "Liam", "=A2"),
        ("=B2*2+C2/4", 177.25, "=B2*2+C2/4"),
        ("=(B2+B3)*2", 340, "=(B2+B3)*2"),
        ("=B2-(B3-B4)", 51, "=B2-(B3-B4)"),
        ("=((B2))", 78, "=B2"),
        ("=-B2+ +1", -77, "=-B2+1"),
        ("=MAX(B2:E2)-MIN(B2:E2)", 19, "=MAX(B2:E2)-MIN(B2:E2)"),
        ("=0.1+0.2", 0.3, "=0.1+0.2"),
        ("=B2/0", "#DIV/0!", "=B2/0"),
        ("=AVERAGE(A2:A13)", "#DIV/0!", "=AVERAGE(A2:A13)"),
        ("=A2+1", "#VALUE!", "=A2+1"),
    ],
)
def test_formula_values_and_canonical_text(formula, value, text):
    assert total_row(formula) == (value, text)


def test_formulas_recompute_after_edits_and_move_with_rows():
    base = 'API.append_row(["Total", "=SUM(B2:B13)", "=AVERAGE(B2:B13)"])\n'
    edited = sheet(base + 'API.update_cell("B2", 100)')
    assert edited["cells"]["B14"] == 963 - 78 + 100 and edited["cells"]["C14"] == pytest.approx(
        (963 + 22) / 12
    )
    # inserting inside the range grows it; the new value counts
    grown = sheet(base + 'API.insert_row(5, ["Zoe", 37])')
    assert grown["formulas"] == {"B15": "=SUM(B2:B14)", "C15": "=AVERAGE(B2:B14)"}
    assert grown["cells"]["B15"] == 1000
    # deleting rows shrinks it; deleting below the range leaves it alone
    shrunk = sheet(base + "API.delete_rows(2, 4)")
    assert shrunk["formulas"]["B11"] == "=SUM(B2:B10)" and shrunk["cells"]["B11"] == 963 - 78 - 92 - 65
    # deleting a column shifts references left; deleting a referenced cell is #REF!
    left = sheet(base + 'API.update_cell("E14", "=D2+B2")\nAPI.delete_columns("C")')
    assert left["formulas"]["D14"] == "=C2+B2" and left["cells"]["D14"] == 91 + 78
    gone = sheet(base + 'API.delete_columns("B")')
    assert gone["formulas"] == {"B14": "=AVERAGE(#REF!)"} and gone["cells"]["B14"] == "#REF!"
    # a formula that reads another formula is evaluated after it
    chained = sheet(base + 'API.update_cell("D14", "=B14-C14")')
    assert chained["cells"]["D14"] == pytest.approx(963 - 80.25)


def test_the_gold_alternative_of_a_summary_row_is_the_same_state():
    delete_first = sheet('API.delete_rows(3)\nAPI.append_row(["Average", "=AVERAGE(B2:B12)"])')
    append_first = sheet('API.append_row(["Average", "=AVERAGE(B2:B13)"])\nAPI.delete_rows(3)')
    assert delete_first == append_first


formula_tokens = st.sampled_from(
    ["SUM(", "AVERAGE(", "min(", "MAX(", "COUNT(", "FOO(", "B2", "b13", "Z9", "A1", "E13", ":", ",", "(", ")",
     "+", "-", "*", "/", "1", "0", "2.5", ".5", "1e5", " ", "$", "#REF!", "'x'", "\"", "=", "9" * 400]
)  # fmt: skip
formula_texts = st.one_of(
    st.text(max_size=60),
    st.lists(formula_tokens, max_size=40).map("".join),
    st.integers(0, 400).map(lambda n: "(" * n + "1" + ")" * n),
    st.integers(0, 400).map(lambda n: "-" * n + "B2"),
    st.integers(0, 400).map(lambda n: "+".join(["B2"] * (n + 1))),
)


@settings(deadline=None)  # examples: the profile in tests/conftest.py
@given(formula_texts, st.sampled_from(["B2", "B14", "C14"]))
def test_any_formula_text_gives_a_value_or_a_tool_error(text, cell):
    simulator = TOOL(GRADES["spreadsheet"])
    simulator.append_row(["Total", "=SUM(B2:B13)"])
    try:
        simulator.update_cell(cell, "=" + text)
    except ToolError as error:
        assert error.error_type == "spreadsheet:formula"
        return
    value = simulator.state()["cells"][cell]
    assert value is None or isinstance(value, (int, float, str))
    json.dumps(simulator.state(), allow_nan=False)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("update_cell"), st.sampled_from(["B2", "C5", "E13", "B14", "A3"]),
                  st.sampled_from([1, "x", None, "=SUM(B2:B9)", "=B3*2", "=C14", "=AVERAGE(C2:E4)"])),
        st.tuples(st.just("append_row"), st.sampled_from([["T", "=SUM(B2:B13)"], ["U", 5, "=MAX(B2:D6)"]])),
        st.tuples(st.just("insert_row"), st.integers(2, 14), st.just(["I", 3, "=B2"])),
        st.tuples(st.just("delete_rows"), st.integers(2, 14), st.integers(2, 14)),
        st.tuples(st.just("delete_columns"), st.sampled_from("ABCDE"), st.sampled_from("ABCDE")),
        st.tuples(st.just("sort"), st.sampled_from("ABCDE"), st.booleans()),
        st.tuples(st.just("set_format"), st.sampled_from(["A1:E1", "2:3", "B:B"]), st.booleans()),
    ),
    max_size=8,
)  # fmt: skip


@settings(deadline=None)  # examples: the profile in tests/conftest.py
@given(operations)
def test_any_sequence_of_operations_keeps_a_consistent_sheet(ops):
    simulator = TOOL(GRADES["spreadsheet"])
    for name, *args in ops:
        try:
            getattr(simulator, name)(*args)
        except ToolError:
            pass
    state = simulator.state()
    json.dumps(state, allow_nan=False)
    height, width = len(simulator.rows), simulator.width
    assert len(state["cells"]) == height * width
    assert set(state["formulas"]) <= set(state["cells"]) and set(state["formats"]) <= set(state["cells"])


# ------------------------------------------------------------------- scoring

# Zoe is inserted as row 4, so Priya (row 6 before) is row 7 when her Math mark (B) is changed.
GOLD = 'API.insert_row(4, ["Zoe", 88, 92, 75, 81])\nAPI.update_cell("B7", 90)'
REVERSED = 'API.update_cell("B6", 90)\nAPI.insert_row(4, ["Zoe", 88, 92, 75, 81])'
TASK = Task(
    id="sp1",
    tool="spreadsheet",
    query="In grades, insert Zoe (88, 92, 75, 81) as row 4, then set Priya's Math (B6 before the insert) to 90.",
    labels=[PY.parse(GOLD), PY.parse(REVERSED)],
    setup=GRADES,
)


def score(text: str):
    return score_text(TASK, text)


def test_gold_state_items():
    # 14 rows x 5 columns = 70 cell items; empty formulas/formats/reads add none
    items = flatten_state(Scorer().gold(TASK)[0].execution.state)
    assert sum(items.values()) == 70
    assert items[("spreadsheet.cells.B7", "90")] == 1 and items[("spreadsheet.cells.A4", '"Zoe"')] == 1


def test_gold_and_its_alternative_succeed():
    for text, ast in (
        (GOLD, True),
        (REVERSED, True),
        (GOLD.replace('"B7", 90', 'cell="B7", value=90'), True),
    ):
        result = score(text)
        assert result.success and result.state_f1 == 1.0 and result.ast_match is ast


# F1 = 2 * overlap / (|predicted items| + |gold items|), with 70 gold items.
@pytest.mark.parametrize(
    ("name", "text", "error_type", "f1"),
    [
        # B7 holds 91, not 90: 69 of 70 items on each side match
        ("wrong value", GOLD.replace("90", "91"), "state:mismatch", 69 / 70),
        # update then insert at the gold's addresses: B7 is Quinn's row when updated, so after the
        # insert B8=90 (gold 73) and B7=97 (gold 90): 2 of 70 items differ on each side
        (
            "wrong order",
            'API.update_cell("B7", 90)\nAPI.insert_row(4, ["Zoe", 88, 92, 75, 81])',
            "state:mismatch",
            68 / 70,
        ),
        # no update: B7 keeps 97, 69 of 70 match
        ("missing call", GOLD.split("\n")[0], "state:mismatch", 69 / 70),
        # a bold A1 adds one predicted item: 70 overlap of 71 predicted and 70 gold
        ("extra call", GOLD + '\nAPI.set_format("A1", bold=True)', "state:mismatch", 2 * 70 / (71 + 70)),
        # a read instead of the write: B7 wrong (69 overlap) and one read item (71 predicted)
        (
            "wrong function",
            GOLD.replace('update_cell("B7", 90)', 'get_values("B7")'),
            "state:mismatch",
            2 * 69 / 141,
        ),
        # the second call is refused: the state after the insert alone, 69 of 70 match
        (
            "schema violation",
            GOLD.replace("90)", '90, colour="red")'),
            "schema:additionalProperties",
            69 / 70,
        ),
        ("schema type", GOLD.replace("90", "[90]"), "schema:type", 69 / 70),
        ("rule", GOLD.replace("B7", "B15"), "spreadsheet:range", 69 / 70),
        ("syntax", GOLD[:-1], "parse:syntax", 0.0),
    ],
)
def test_wrong_predictions_get_exact_verdicts(name, text, error_type, f1):
    assert_wrong(score(text), error_type, f1, name)
