"""The BFCL checker's rules, one value at a time, and the importer on real BFCL rows
(tests/fixtures/bfcl, a few rows of each Python category from bfcl-eval 2026.3.23, Apache-2.0)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from toolbench.core.bfcl_checker import check_value, normalise
from toolbench.core.score import Scorer
from toolbench.foundation.errors import CallParseError, UserError
from toolbench.foundation.records import Call, FunctionSpec, Program, Task
from toolbench.pipelines.bfcl_import import (
    PYTHON_CATEGORIES,
    concrete_answer,
    import_bfcl,
    json_schema,
    open_data,
    placeholder_call,
)

FIXTURE = Path(__file__).parents[1] / "fixtures" / "bfcl"


def spec(name: str, properties: dict[str, Any], required: list[str] | None = None) -> FunctionSpec:
    return FunctionSpec(
        name=name,
        description="",
        parameters={"type": "object", "properties": properties, "required": required or []},
    )


AREA = spec(
    "area",
    {"base": {"type": "integer"}, "height": {"type": "number"}, "unit": {"type": "string"}},
    ["base", "height"],
)
VOLUME = spec("volume", {"side": {"type": "integer"}}, ["side"])


def task(
    answers: list[dict[str, dict[str, list[Any]]]] | None,
    category: str = "simple_python",
    functions: list[FunctionSpec] | None = None,
    label: list[Call] | None = None,
) -> Task:
    return Task(
        id="t",
        tool="bfcl",
        category=category,  # type: ignore[arg-type]
        query="q",
        labels=[Program(label or [])],
        functions=functions or [AREA, VOLUME],
        answers=answers,
    )


def score(t: Task, *calls: Call):
    return Scorer().score(t, Program(list(calls)))


def call(name: str, **arguments: Any) -> Call:
    return Call(name=name, arguments=arguments)


AREA_ANSWER = [{"area": {"base": [10], "height": [5.0], "unit": ["units", "cm", ""]}}]


# ------------------------------------------------------------------ one call


@pytest.mark.parametrize(
    ("calls", "success", "error_type", "diagnosis"),
    [
        ([call("area", base=10, height=5.0, unit="units")], True, None, None),
        ([call("area", base=10, height=5.0)], True, None, None),  # "" listed: may be left out
        ([call("area", base=10, height=5, unit="CM")], True, None, None),  # int for float; case
        ([call("area", base=10.0, height=5.0)], False, "schema:type", "wrong_argument"),  # float for int
        ([call("area", base=True, height=5.0)], False, "schema:type", "wrong_argument"),  # bool is no int
        ([call("area", base="10", height=5.0)], False, "schema:type", "wrong_argument"),
        ([call("area", base=11, height=5.0)], False, "state:wrong_value", "wrong_argument"),
        ([call("area", base=10, height=5.0, unit="m")], False, "state:wrong_value", "wrong_argument"),
        ([call("area", height=5.0)], False, "schema:required", "wrong_argument"),
        (
            [call("area", base=10, height=5.0, colour="red")],
            False,
            "schema:additionalProperties",
            "wrong_argument",
        ),
        ([call("volume", side=10)], False, "state:wrong_function", "wrong_function"),
        ([call("perimeter", base=10)], False, "schema:unknown_function", "wrong_function"),
        ([], False, "state:wrong_count", "no_call"),
        ([call("area", base=10, height=5.0)] * 2, False, "state:wrong_count", "extra_call"),
    ],
)
def test_one_call_rules(calls, success, error_type, diagnosis):
    result = score(task(AREA_ANSWER, label=[call("area", base=10, height=5.0, unit="units")]), *calls)
    assert (result.success, result.error_type, result.diagnosis) == (success, error_type, diagnosis)
    assert result.ast_match is success and result.state_f1 == (1.0 if success else 0.0)
    assert result.n_calls == len(calls)


def test_a_declared_argument_the_answer_does_not_list_is_refused_and_one_it_needs_must_be_given():
    answer = [{"area": {"base": [10], "height": [5.0]}}]  # unit declared, not expected
    t = task(answer, label=[call("area", base=10, height=5.0)])
    assert score(t, call("area", base=10, height=5.0, unit="cm")).error_type == "state:unexpected_argument"
    needs_unit = task(
        [{"area": {"base": [10], "height": [5.0], "unit": ["cm"]}}],
        label=[call("area", base=10, height=5.0, unit="cm")],
    )
    assert score(needs_unit, call("area", base=10, height=5.0)).error_type == "state:missing_argument"


def test_strings_are_normalised_like_bfcl():
    assert normalise("New York, NY") == normalise("new york ny") == "newyorkny"
    assert normalise("2024-04-01") == normalise("2024/04/01") == "20240401"
    assert normalise("it's") == 'it"s'
    schema = {"type": "string"}
    assert check_value("city", "new-york,NY", schema, ["New York, NY"]).valid
    assert not check_value("city", "NYC", schema, ["New York, NY"]).valid


def test_a_value_in_the_answers_own_type_is_a_variable_compared_as_is():
    """BFCL: acceptable values of another type than declared (a string for a boolean) are
    matched exactly, in that type."""
    schema = {"type": "boolean"}
    assert check_value("flag", "True", schema, ["True"]).valid
    assert check_value("flag", True, schema, ["True"]).error_type == "state:wrong_value"
    assert check_value("flag", None, {"type": "string"}, ["", None]).valid  # None listed for a string
    assert check_value("flag", "true", schema, ["True"]).error_type == "state:wrong_value"  # no normalising


def test_arrays_match_an_acceptable_list_in_order_with_items_typed_one_level_deep():
    strings = {"type": "array", "items": {"type": "string"}}
    accepted = [["Santa Barbara", "Monterey"], ["Monterey", "Santa Barbara"]]
    assert check_value("stops", ["monterey", "santa barbara"], strings, accepted).valid
    assert check_value("stops", ["Monterey"], strings, accepted).error_type == "state:wrong_value"
    assert check_value("stops", "Monterey", strings, accepted).error_type == "schema:type"
    floats = {"type": "array", "items": {"type": "number"}}
    assert check_value("interval", [1.0, 3.0], floats, [[1.0, 3.0]]).valid
    # no int -> float inside arrays (BFCL converts only top-level values)
    assert check_value("interval", [1, 3], floats, [[1.0, 3.0]]).error_type == "schema:type"
    # ... unless "" is acceptable, which waives the item check; then 1 == 1.0
    assert check_value("interval", [1, 3], floats, [[1.0, 3.0], ""]).valid
    assert check_value("interval", [], floats, [[1.0, 3.0], ""]).valid  # "" as a list: []


def test_objects_match_key_by_key_and_lists_of_objects_object_by_object():
    obj = {"type": "object", "properties": {}}
    accepted = [
        {"department": ["Science"], "school": ["Bluebird High School", "Bluebird HS"], "year": ["", 2020]}
    ]
    assert check_value("c", {"department": "science", "school": "bluebird hs"}, obj, accepted).valid
    assert check_value(
        "c", {"department": "Science", "school": "Bluebird HS", "year": 2020}, obj, accepted
    ).valid
    assert not check_value("c", {"department": "Science"}, obj, accepted).valid  # school must be given
    assert not check_value(
        "c", {"department": "Science", "school": "Bluebird HS", "x": 1}, obj, accepted
    ).valid
    assert not check_value("c", {"department": "Art", "school": "Bluebird HS"}, obj, accepted).valid
    rows = {"type": "array", "items": {"type": "object"}}
    accepted_rows = [[{"name": ["a"]}, {"name": ["b", "B2"]}]]
    assert check_value("r", [{"name": "A"}, {"name": "b2"}], rows, accepted_rows).valid
    assert not check_value("r", [{"name": "b"}, {"name": "a"}], rows, accepted_rows).valid  # order matters
    assert not check_value("r", [{"name": "a"}], rows, accepted_rows).valid


# ------------------------------------------------------------------ several calls


PLAY = spec("play", {"artist": {"type": "string"}, "duration": {"type": "integer"}}, ["artist"])
PARALLEL = [
    {"play": {"artist": ["Taylor Swift"], "duration": [20]}},
    {"play": {"artist": ["Maroon 5"], "duration": [15]}},
]


def test_parallel_calls_match_in_any_order_and_count_exactly():
    swift, maroon = (
        call("play", artist="Taylor Swift", duration=20),
        call("play", artist="Maroon 5", duration=15),
    )
    t = task(PARALLEL, "parallel", [PLAY], [swift, maroon])
    assert score(t, swift, maroon).success and score(t, maroon, swift).success
    short = score(t, maroon)
    assert (short.success, short.diagnosis, short.error_type) == (False, "missing_call", "state:wrong_count")
    wrong = score(t, maroon, call("play", artist="Maroon 5", duration=16))
    assert (wrong.diagnosis, wrong.error_type, wrong.lcs) == ("wrong_argument", "state:wrong_value", 0.0)
    half = score(t, swift, call("play", artist="Maroon 5", duration=16))
    assert half.lcs == 0.5  # the first expected call was matched


def test_parallel_matching_is_greedy_like_bfcl():
    """Each expected call takes the first unmatched call that fits it: with [1, 2] then [1]
    acceptable, f(1), f(2) fails although f(2)->first, f(1)->second would fit (BFCL says wrong)."""
    f = spec("f", {"x": {"type": "integer"}}, ["x"])
    t = task([{"f": {"x": [1, 2]}}, {"f": {"x": [1]}}], "parallel", [f], [call("f", x=2), call("f", x=1)])
    assert not score(t, call("f", x=1), call("f", x=2)).success
    assert score(t, call("f", x=2), call("f", x=1)).success


def test_multiple_offers_several_functions_and_one_call_is_right():
    t = task([{"volume": {"side": [3]}}], "multiple", label=[call("volume", side=3)])
    assert score(t, call("volume", side=3)).success
    assert score(t, call("area", base=3, height=1.0)).diagnosis == "wrong_function"


def test_irrelevance_is_right_with_no_call_even_an_unreadable_answer():
    t = task([], "irrelevance")
    assert score(t).success
    wrong = score(t, call("area", base=1, height=1.0))
    assert (wrong.success, wrong.diagnosis, wrong.error_type) == (
        False,
        "unexpected_call",
        "state:unexpected_call",
    )
    unreadable = Scorer().score(t, CallParseError("syntax", "bad"))
    assert unreadable.success and unreadable.diagnosis is None


def test_relevance_is_right_with_any_call():
    t = task(None, "live_relevance", label=[call("volume", side=1)])
    assert score(t, call("area", base=99, height=1.0)).success
    none = score(t)
    assert (none.success, none.diagnosis) == (False, "no_call")
    unreadable = Scorer().score(t, CallParseError("syntax", "bad"))
    assert (unreadable.success, unreadable.diagnosis, unreadable.error_type) == (
        False,
        "parse_error",
        "parse:syntax",
    )


def test_a_task_with_its_own_functions_names_only_those():
    with pytest.raises(ValidationError, match="not among the task's functions"):
        task(AREA_ANSWER, label=[call("perimeter", side=1)])
    with pytest.raises(ValidationError, match="names a function twice"):
        task(AREA_ANSWER, functions=[AREA, AREA])
    with pytest.raises(ValidationError, match="'answers' needs 'functions'"):
        Task(id="t", tool="weather", query="q", labels=[Program([])], answers=[])


# ------------------------------------------------------------------ properties


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=0, max_size=4), st.randoms())
def test_parallel_verdicts_do_not_depend_on_call_order(raw_calls, rng):
    """With one expected call per function (BFCL's parallel_multiple shape), any permutation of
    an answer gets the same verdict, right or wrong."""
    functions = [spec(f"f{i}", {"x": {"type": "integer"}}, ["x"]) for i in range(3)]
    answers = [{"f0": {"x": [0, 1]}}, {"f1": {"x": [2]}}, {"f2": {"x": [3, 0]}}]
    t = task(answers, "parallel_multiple", functions, [call("f0", x=0), call("f1", x=2), call("f2", x=3)])
    calls = [call(f"f{min(i, 2)}", x=x) for i, x in raw_calls]
    shuffled = list(calls)
    rng.shuffle(shuffled)
    assert score(t, *calls).success == score(t, *shuffled).success
    for permutation in itertools.permutations([call("f0", x=1), call("f1", x=2), call("f2", x=0)]):
        assert score(t, *permutation).success


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet="abcXYZ ,./-_*^", min_size=1, max_size=12), st.randoms())
def test_case_spaces_and_listed_punctuation_never_matter(text, rng):
    noisy = "".join(c.upper() if rng.random() < 0.5 else c for c in text) + rng.choice([" ", ",", "-", ""])
    assert check_value("s", noisy, {"type": "string"}, [text]).valid


@given(st.integers(-(10**6), 10**6))
def test_an_integer_is_accepted_for_a_number_and_not_the_reverse(n):
    assert check_value("x", n, {"type": "number"}, [float(n)]).valid
    assert check_value("x", float(n), {"type": "integer"}, [n]).error_type == "schema:type"


# ------------------------------------------------------------------ the importer


@pytest.fixture(scope="module")
def imported():
    return import_bfcl(open_data(FIXTURE), list(PYTHON_CATEGORIES))


def test_import_reads_every_python_category_and_skips_rows_no_answer_meets(imported):
    assert imported.counts == {
        "simple_python": 5,
        "multiple": 2,
        "parallel": 2,
        "parallel_multiple": 2,
        "irrelevance": 2,
        "live_simple": 2,
        "live_multiple": 2,
        "live_parallel": 1,
        "live_parallel_multiple": 1,
        "live_irrelevance": 2,
        "live_relevance": 1,
    }
    assert imported.skipped == [
        ("live_simple_112-68-0", "no answer meets its acceptable values (BFCL data error)")
    ]
    by_id = {t.id: t for t in imported.tasks}
    first = by_id["simple_python_0"]
    assert (first.tool, first.category, first.query) == (
        "bfcl",
        "simple_python",
        "Find the area of a triangle with a base of 10 units and height of 5 units.",
    )
    assert first.labels[0].root == [call("calculate_triangle_area", base=10, height=5, unit="units")]
    assert first.answers == [
        {"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}
    ]
    factorial = by_id["simple_python_1"]
    assert [s.name for s in factorial.functions or []] == ["math_factorial"]
    assert factorial.meta["bfcl_names"] == {"math_factorial": "math.factorial"}
    assert by_id["irrelevance_0"].answers == [] and by_id["irrelevance_0"].labels[0].root == []
    assert by_id["live_irrelevance_120-9-0"].functions == []  # nothing offered at all
    relevance = by_id["live_relevance_0-0-0"]
    assert relevance.answers is None and len(relevance.labels[0]) == 1
    system = by_id["live_multiple_1-0-1"]
    assert system.query.startswith("system: You are an agent") and "\n\nuser: NO SUGAR" in system.query
    assert system.meta["bfcl_messages"] == 2
    # every label passes its own task
    scorer = Scorer()
    assert all(scorer.score(t, t.labels[0]).success for t in imported.tasks)


def test_types_become_json_schema_types_recursively():
    converted = json_schema(
        {
            "type": "dict",
            "properties": {
                "a": {"type": "float"},
                "b": {"type": "tuple", "items": {"type": "any"}},
                "c": {"type": "dict", "properties": {"d": {"type": "boolean"}}},
            },
        },
        "here",
    )
    assert converted == {
        "type": "object",
        "properties": {
            "a": {"type": "number"},
            "b": {"type": "array", "items": {"type": "string"}},
            "c": {"type": "object", "properties": {"d": {"type": "boolean"}}},
        },
    }


def test_concrete_answers_take_first_values_and_leave_out_what_may_be():
    functions = {"area": AREA}
    label = concrete_answer(
        functions, [{"area": {"base": [10], "height": ["", 5.0], "unit": ["cm", ""]}}], "simple_python"
    )
    assert label is not None and label.root == [
        call("area", base=10, height=5.0, unit="cm")
    ]  # height required
    assert concrete_answer(functions, [{"area": {"base": [], "height": [1.0]}}], "simple_python") is None
    assert placeholder_call(AREA) == call("area", base=1, height=1.0)


def test_bad_data_is_one_line_naming_file_and_line(tmp_path):
    folder = tmp_path / "data"
    (folder / "possible_answer").mkdir(parents=True)
    rows = (FIXTURE / "BFCL_v4_simple_python.json").read_text().splitlines()
    (folder / "BFCL_v4_simple_python.json").write_text("\n".join([rows[0], "{not json", *rows[2:]]) + "\n")
    (folder / "possible_answer" / "BFCL_v4_simple_python.json").write_text(
        (FIXTURE / "possible_answer" / "BFCL_v4_simple_python.json").read_text()
    )
    with pytest.raises(UserError, match=r"BFCL_v4_simple_python\.json:2: not JSON"):
        import_bfcl(open_data(folder), ["simple_python"])
    (folder / "BFCL_v4_simple_python.json").write_text(rows[0].replace('"integer"', '"complex"', 1) + "\n")
    (folder / "possible_answer" / "BFCL_v4_simple_python.json").write_text(
        (FIXTURE / "possible_answer" / "BFCL_v4_simple_python.json").read_text().splitlines()[0] + "\n"
    )
    with pytest.raises(UserError, match=r"BFCL_v4_simple_python\.json:1: .*unknown type 'complex'"):
        import_bfcl(open_data(folder), ["simple_python"])
    with pytest.raises(UserError, match="not yet supported category 'simple_java'"):
        import_bfcl(open_data(folder), ["simple_java"])
    with pytest.raises(UserError, match="no such file"):
        import_bfcl(open_data(folder), ["multiple"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no BFCL data here"):
        open_data(tmp_path / "empty")
    with pytest.raises(UserError, match="not a folder nor a readable wheel"):
        open_data(folder / "BFCL_v4_simple_python.json")
