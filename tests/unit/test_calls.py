"""Call formats: exact parses, precise errors, and the two properties every format must hold."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import json_values, programs
from toolbench.core.calls import FormatContext, JsonFormat, PythonFormat, ValueConstructor, strip_fences
from toolbench.foundation.errors import CallParseError
from toolbench.foundation.records import Call, Program
from toolbench.tools.home_search import HomeSearch

HOME = PythonFormat(HomeSearch.format_context())


def _date_build(args, kwargs):
    month, day, year = args
    if not (1 <= month <= 12 and 1 <= day <= 31):
        raise ValueError("month must be 1-12 and day 1-31")
    return f"{year:04d}-{month:02d}-{day:02d}"


def _date_render(value):
    year, month, day = (int(part) for part in value.split("-"))
    return f"Date({month}, {day}, {year})"


DATE = ValueConstructor("Date", "date", _date_build, _date_render)


def program(*calls: tuple[str, dict]) -> Program:
    return Program([Call(name=name, arguments=args) for name, args in calls])


# ----------------------------------------------------------------- python: examples


def test_python_parses_toolbench_style_positional_and_keyword():
    text = 'API.set_location("Oakland, CA")\nAPI.set_buy_or_rent(value="rent")\nAPI.set_max_commute_time(30, destination="downtown")\nAPI.search()'
    assert HOME.parse(text) == program(
        ("set_location", {"value": "Oakland, CA"}),
        ("set_buy_or_rent", {"value": "rent"}),
        ("set_max_commute_time", {"minutes": 30, "destination": "downtown"}),
        ("search", {}),
    )


def test_python_renders_single_parameter_calls_positionally_and_others_by_keyword():
    rendered = HOME.render(
        program(("set_num_beds", {"value": 3}), ("set_max_commute_time", {"minutes": 20, "destination": "x"}))
    )
    assert rendered == 'API.set_num_beds(3)\nAPI.set_max_commute_time(minutes=20, destination="x")'


def test_python_assignments_literals_and_constructors():
    fmt = PythonFormat(FormatContext({}, {"Date": DATE}))
    text = 'd = Date(4, 12, 2023)\nn = -2\nAPI.book(when=d, n=n, tags=("a", "b"), opts={"x": None, "y": True}, f=1.5e3)'
    assert fmt.parse(text) == program(
        (
            "book",
            {"when": "2023-04-12", "n": -2, "tags": ["a", "b"], "opts": {"x": None, "y": True}, "f": 1500.0},
        )
    )


def test_python_renders_declared_formats_through_their_constructor():
    specs = {"book": _spec("book", {"when": {"type": "string", "format": "date"}})}
    fmt = PythonFormat(FormatContext(specs, {"Date": DATE}))
    prog = program(("book", {"when": "2023-04-12"}))
    assert fmt.render(prog) == "API.book(Date(4, 12, 2023))"
    assert fmt.parse(fmt.render(prog)) == prog


def _spec(name, properties):
    from toolbench.foundation.records import FunctionSpec

    return FunctionSpec(name=name, description="", parameters={"type": "object", "properties": properties})


def test_python_strips_code_fences_and_accepts_bare_function_names():
    assert HOME.parse("```python\nset_num_beds(2)\n```\nThat should do it.") == program(
        ("set_num_beds", {"value": 2})
    )


@pytest.mark.parametrize(
    ("text", "kind", "fragment"),
    [
        ("API.set_location(", "syntax", "line 1"),
        ("import os", "unsupported", "got Import"),
        ("API.search(sort_by=os.system('x'))", "unsupported", "a call is not a value"),
        ("API.set_location(value=city)", "undefined_name", "'city' is not defined"),
        ("API.frob(1)", "unknown_function", "'frob' is not one of"),
        ("API.set_num_beds(1, 2)", "too_many_positional", "takes 1 argument(s), got 2"),
        ("API.set_num_beds(1, value=2)", "duplicate_argument", "got 'value' twice"),
        ("API.search(**opts)", "unsupported", "** unpacking"),
        ("x = API.search()", "unsupported", "only values can be assigned"),
        ("API.set_num_beds(1e999)", "value", "not a finite number"),
        ("API.set_num_beds(b'3')", "unsupported", "bytes literals"),
        ("API.set_location(f'{x}')", "unsupported", "JoinedStr"),
        ("API.set_num_beds(-True)", "unsupported", "a sign goes only before a number"),
        ("Date(40, 1, 2023)", "unknown_function", "'Date' is not one of"),
        ("a.b.c()", "unsupported", "call a function by name"),
        ("API.x(d={1: 2})", "unsupported", "dictionary keys must be strings"),
        ("for i in x: pass", "unsupported", "got For"),
    ],
)
def test_python_rejects_with_a_precise_error(text, kind, fragment):
    with pytest.raises(CallParseError) as caught:
        HOME.parse(text)
    assert caught.value.error_type == f"parse:{kind}"
    assert fragment in caught.value.message


def test_python_constructor_errors_say_why():
    fmt = PythonFormat(FormatContext({}, {"Date": DATE}))
    with pytest.raises(CallParseError) as caught:
        fmt.parse("API.book(when=Date(13, 1, 2023))")
    assert caught.value.error_type == "parse:value"
    assert "month must be 1-12" in caught.value.message


def test_empty_text_is_the_empty_program_in_both_formats():
    assert HOME.parse("  \n") == Program([])
    assert JsonFormat().parse("") == Program([])


# ------------------------------------------------------------------- json: examples


@pytest.mark.parametrize(
    "text",
    [
        '[{"name": "f", "arguments": {"a": 1}}]',
        '{"name": "f", "arguments": {"a": 1}}',
        '{"name": "f", "parameters": {"a": 1}}',
        '{"tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{\\"a\\": 1}"}}]}',
        '```json\n[{"name": "f", "arguments": {"a": 1}}]\n```',
        'Sure!\n```\n{"name": "f", "arguments": {"a": 1}}\n```',
    ],
)
def test_json_accepts_the_shapes_models_emit(text):
    assert JsonFormat().parse(text) == program(("f", {"a": 1}))


def test_json_accepts_one_call_per_line():
    assert JsonFormat().parse(
        '{"name": "f", "arguments": {}}\n{"name": "g", "arguments": {"x": "y"}}'
    ) == program(("f", {}), ("g", {"x": "y"}))


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("[{", "json"),
        ('{"arguments": {}}', "shape"),
        ('[{"name": "f", "arguments": [1]}]', "shape"),
        ('{"name": "f", "arguments": "{oops"}', "arguments"),
        ("42", "shape"),
        ('[{"name": "f", "arguments": {"x": NaN}}]', "json"),
    ],
)
def test_json_rejects_with_a_kind(text, kind):
    with pytest.raises(CallParseError) as caught:
        JsonFormat().parse(text)
    assert caught.value.error_type == f"parse:{kind}"


def test_strip_fences_keeps_only_the_first_block():
    assert strip_fences("x\n```py\nA\n```\n```\nB\n```") == "A\n"


def test_trusted_calls_equal_validated_calls():
    assert Call.trusted("f", {"a": [1, {"b": None}]}) == Call(name="f", arguments={"a": [1, {"b": None}]})


# ----------------------------------------------------------------------- properties

PROPERTY = settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow]
)  # examples: the profile in tests/conftest.py


@PROPERTY
@given(programs)
def test_python_round_trip(prog):
    fmt = PythonFormat()
    assert fmt.parse(fmt.render(prog)) == prog


@PROPERTY
@given(programs)
def test_json_round_trip(prog):
    fmt = JsonFormat()
    assert fmt.parse(fmt.render(prog)) == prog


home_calls = st.sampled_from(list(HomeSearch.specs)).flatmap(
    lambda name: st.builds(
        Call,
        name=st.just(name),
        arguments=st.fixed_dictionaries(
            {}, optional={p: json_values for p in HomeSearch.specs[name].parameter_names}
        ),
    )
)


@PROPERTY
@given(st.lists(home_calls, max_size=6).map(Program))
def test_python_round_trip_with_specs_and_positional_rendering(prog):
    assert HOME.parse(HOME.render(prog)) == prog


code_like = st.text(
    alphabet=st.sampled_from(list("API.()[]{}=,:'\"\\\n #*-+0123456789abcdefxyz_e")), max_size=80
)


@PROPERTY
@given(st.one_of(st.text(max_size=200), code_like))
def test_python_parser_raises_only_call_parse_errors(text):
    try:
        result = HOME.parse(text)
    except CallParseError:
        return
    assert isinstance(result, Program)


def test_model_text_with_odd_escapes_parses_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning the parser lets out fails the test
        program = HOME.parse('API.set_location("C:\\yes\\d, TX")')
    assert [(c.name, c.arguments) for c in program] == [("set_location", {"value": "C:\\yes\\d, TX"})]


@PROPERTY
@given(st.one_of(st.text(max_size=200), code_like, json_values.map(lambda v: __import__("json").dumps(v))))
def test_json_parser_raises_only_call_parse_errors(text):
    try:
        result = JsonFormat().parse(text)
    except CallParseError:
        return
    assert isinstance(result, Program)


def test_deeply_nested_input_is_a_parse_error_not_a_crash():
    for fmt, text in (
        (HOME, "API.f(x=" + "[" * 5000 + "]" * 5000 + ")"),
        (JsonFormat(), "[" * 100_000 + "]" * 100_000),
    ):
        with pytest.raises(CallParseError):
            fmt.parse(text)


def test_line_cache_gives_the_same_programs_and_fresh_objects():
    fmt = PythonFormat(HomeSearch.format_context())
    text = 'API.set_location("São Paulo")\nAPI.select_home_type(["Condo"])'
    first, second = fmt.parse(text), fmt.parse(text)  # the second comes from the cache
    assert first == second and first[1].arguments is not second[1].arguments
    assert fmt.parse('API.select_home_type(["Condo"])\nAPI.set_location("São Paulo")') == Program(
        [first[1], first[0]]
    )
    with pytest.raises(CallParseError):
        fmt.parse(
            'API.set_location("São Paulo")\n  API.select_home_type(["Condo"])'
        )  # indented: still a syntax error
    assert fmt.parse('x = "São Paulo"\nAPI.set_location(x)') == Program([first[0]])
    assert fmt.parse('x = "Lima"\nAPI.set_location(x)')[0].arguments == {"value": "Lima"}


def test_backticks_inside_arguments_survive_fence_handling():
    prog = program(("f", {"a": "```", "b": "x ``` y"}))
    assert JsonFormat().parse(JsonFormat().render(prog)) == prog
    assert PythonFormat().parse(PythonFormat().render(prog)) == prog
    assert PythonFormat().parse("Here:\n```python\nAPI.f(a=1)\n```") == program(
        ("f", {"a": 1})
    )  # still unwrapped
