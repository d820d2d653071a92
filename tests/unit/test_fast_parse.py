"""The fast reader of the templates' action grammar (`toolbench/core/calls/fast_python.py`) gives
exactly what the full `ast` reader gives, or nothing (and the full reader decides).

"Exactly": the same names, the same argument order and the same values of the same types
(`Call ==` alone would take 1 for 1.0 and True, and ignore key order), on every template's
rendered actions, on random literal mixes in many spellings, and on random text over the
grammar's alphabet.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from toolbench.core.calls import FormatContext, PythonFormat
from toolbench.core.calls.fast_python import read_line
from toolbench.core.registry import get_tool, tool_names
from toolbench.foundation.errors import CallParseError
from toolbench.foundation.records import Call, FunctionSpec, Program
from toolbench.pipelines.generate import GenerateConfig, SampleFactory
from toolbench.pipelines.generate.engine import _Work

PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def typed(value: Any) -> Any:
    """A value with its types and order spelt out (floats by repr: -0.0 is not 0.0)."""
    if isinstance(value, dict):
        return ("dict", [(key, typed(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [typed(item) for item in value])
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


def typed_program(program: Program | list[Call]) -> list[Any]:
    return [(call.name, typed(call.arguments)) for call in program]


def full(context: FormatContext, text: str) -> Program | str:
    """The full reader's program (no line cache, no fast path), or its error kind."""
    try:
        return PythonFormat(context).parse_full(text)
    except CallParseError as error:
        return error.kind


def assert_line_agrees(context: FormatContext, line: str) -> Call | None:
    """`read_line` is None, or the one call the full reader reads from the line."""
    fast = read_line(line, context.specs)
    if fast is not None:
        reference = full(context, line)
        assert not isinstance(reference, str), (line, reference)
        assert len(reference) == 1 and typed_program([fast]) == typed_program(reference), line
    return fast


def assert_text_agrees(context: FormatContext, text: str) -> None:
    """`PythonFormat.parse` (line cache and fast path) gives the full reader's program or error."""
    reference = full(context, text)
    fmt = PythonFormat(context)
    for _ in range(2):  # the second time from the line cache
        try:
            got: Program | str = fmt.parse_lines(text)
        except CallParseError as error:
            got = error.kind
        if isinstance(reference, str):
            assert got == reference, text
        else:
            assert not isinstance(got, str), (text, got)
            assert typed_program(got) == typed_program(reference), text


# ------------------------------------------------------------------ the shipped templates


@pytest.mark.parametrize("tool", tool_names())
def test_every_templates_actions_read_as_the_full_reader_reads_them(tool):
    factory = SampleFactory(GenerateConfig(tools=[tool], n=1, seed=5, split="all"))
    context = get_tool(tool).format_context()
    works = [_Work(i) for i in range(1500)]
    factory._draw(works)
    factory._render_queries(works)
    works = [w for w in works if w.error is None]
    factory._render_programs(works)
    lines = fast = 0
    templates = set()
    for work in works:
        if work.error is not None:
            continue
        templates.add(work.entry.id)
        for text in work.texts:
            assert_text_agrees(context, text)
            for line in text.split("\n"):
                if line.strip():
                    lines += 1
                    fast += assert_line_agrees(context, line) is not None
    assert len(templates) > 5 and lines > 1000
    # the point of the fast path: the templates' lines are in its grammar (a template that
    # leaves it still works, through `ast`, only slower)
    assert fast / lines > 0.95, f"{tool}: {fast}/{lines} lines read by the fast path"


# ---------------------------------------------------------------------- random literals

SPECS = {
    "one": FunctionSpec(
        name="one", description="", parameters={"type": "object", "properties": {"value": {}}}
    ),
    "two": FunctionSpec(
        name="two", description="", parameters={"type": "object", "properties": {"a": {}, "b": {}}}
    ),
}
CONTEXT = FormatContext(SPECS, {})

text_values = st.one_of(
    st.text(max_size=12),  # mostly in the grammar
    st.text(
        alphabet=st.one_of(
            st.characters(codec="utf-8"),
            st.sampled_from(list("\"'\\\n\r\t\x00\x0c\x7f\u2028\x85 ,=()[]{}:#")),
            st.sampled_from(["\ud800", "\udfff"]),
        ),
        max_size=12,
    ),
)
numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -0.0, 0.0, 1e308, 1e-320, 2**63, -(2**63) - 1, 10**4200]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, text_values)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text_values, inner, max_size=4)),
    max_leaves=10,
)


def spellings(value: Any) -> list[str]:
    """The value as python source in several spellings, some of them outside the grammar or not
    python at all."""
    found = [PythonFormat(CONTEXT).literal(value) if _renderable(value) else repr(value), repr(value)]
    try:
        found.append(json.dumps(value, ensure_ascii=False))
        found.append(json.dumps(value))
        found.append(json.dumps(value, separators=(",", ":")))
    except (ValueError, TypeError):
        pass
    return found


def _renderable(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_renderable(item) for item in value)
    if isinstance(value, dict):
        return all(_renderable(item) for item in value.values())
    return True


@PROPERTY
@given(
    st.lists(
        st.tuples(
            st.sampled_from([None] * 3 + ["a", "b", "value", "x", "_k9"] * 3 + ["if", "None", "é", "a b"]),
            values,
            st.sampled_from([0] * 4 + [1, 2, 3, 4]),  # 0: the canonical spelling
        ),
        max_size=4,
    ),
    # the templates' spelling most of the time (the first choice, repeated), others sometimes
    st.sampled_from(["one"] * 4 + ["two"] * 4 + ["three", "if", "API"]),
    st.sampled_from([", "] * 12 + [",", " , ", ", ,"]),
    st.sampled_from(["API."] * 12 + ["", "api.", "API .", "x.API."]),
    st.sampled_from([""] * 12 + [" ", "\t", "\r", ";", ",", " # c", "\x0c"]),
)
def test_random_literal_mixes_read_as_the_full_reader_reads_them(args, name, sep, receiver, tail):
    parts = []
    for keyword, value, spelling in args:
        options = spellings(value)
        source = options[spelling % len(options)]
        parts.append(source if keyword is None else f"{keyword}={source}")
    line = f"{receiver}{name}({sep.join(parts)}){tail}"
    assert_line_agrees(CONTEXT, line)
    assert_text_agrees(CONTEXT, line)
    assert_text_agrees(CONTEXT, f"{line}\n\n{line}")


@PROPERTY
@given(
    st.text(
        alphabet=st.sampled_from(list("API.one(two)=, \"'abx-01.5eE+[]{}:TrueFalsNn\\\n\t\r#_é")),
        max_size=40,
    )
)
def test_random_text_reads_as_the_full_reader_reads_it(tail):
    for text in (tail, "API.one(" + tail, "API.two(a=" + tail):
        assert_text_agrees(CONTEXT, text)
        for line in text.split("\n"):
            assert_line_agrees(CONTEXT, line)


@pytest.mark.parametrize(
    "line",
    [
        'API.two(a="x", b=-1)',
        "API.two(a=-0, b=-0.0)",
        "API.two(a=1e5, b=1.50)",
        "API.two(a=1E-3, b=[True, None, {}])",
        'API.two(a={"k": 1, "k": 2, "j": [1, [2, [3]]]})',
        'API.one("São Paulo")',
        'API.two("x", b=2)',
        "API.two(1, 2)",
        "API.f()",
        "API.f()  \t",
        'API.f(a="\u2028\x85 é 😀")',
        "API.f(a=" + "9" * 4000 + ")",
    ],
)
def test_examples_in_the_grammar(line):
    assert assert_line_agrees(CONTEXT, line) is not None


@pytest.mark.parametrize(
    "line",
    [
        "API.two(1, 2, 3)",  # too many positional
        "API.f(1)",  # positional, unknown function
        "API.two(a=1, 2)",  # positional after keyword
        "API.two(a=1, a=2)",
        "API.two(1, a=2)",  # duplicate_argument
        "API.f(if=1)",
        "API.if()",
        "API.f(a=1e999)",
        "API.f(a=-1e999)",
        "API.f(a=01)",
        "API.f(a=1_000)",
        "API.f(a=1.)",
        "API.f(a=.5)",
        "API.f(a=+1)",
        "API.f(a=- 1)",
        "API.f(a=(1, 2))",
        "API.f(a={1, 2})",
        "API.f(a=[1,2])",
        "API.f(a=[1, 2,])",
        "API.f(a=1,)",
        "API.f(a='x')",
        'API.f(a="x" "y")',
        'API.f(a=u"x")',
        'API.f(a="\\n")',
        'API.f(a="\t")',
        "API.f(a=x)",
        "API.f(a=true)",
        "API.f(a=Date(1, 2, 2023))",
        "API.f(a=1); API.g()",
        "API.f(a=1) # c",
        "  API.f(a=1)",
        "API .f(a=1)",
        "other.f(a=1)",
        "f(a=1)",
        "API.f(a=" + "[" * 9 + "]" * 9 + ")",  # deeper than MAX_DEPTH
        "API.f(a=" + "9" * 5000 + ")",  # beyond python's digit limit
    ],
)
def test_examples_outside_the_grammar_go_to_the_full_reader(line):
    assert read_line(line, SPECS) is None
    assert_text_agrees(CONTEXT, line)


def test_programs_the_full_reader_refuses_for_their_size_are_refused_alike():
    many = "\n".join(["API.f(a=1)"] * 65)
    deep = 'API.f(a="' + "(" * 70 + '")'
    wide = "API.f(a=[" + ", ".join(["1"] * 1100) + "])"
    for text in (many, deep, "\n".join([deep[:-2] + '")'] * 2), wide):
        assert_text_agrees(CONTEXT, text)
    assert full(CONTEXT, many) == "too_many_calls" and full(CONTEXT, wide) == "too_complex"


def test_an_int_beyond_64_bits_parses_instead_of_breaking_the_line_cache():
    fmt = PythonFormat(CONTEXT)
    text = "API.f(a=100000000000000000000000)\nx = 1\nAPI.f(a=x)"
    assert fmt.parse(text)[0].arguments == {"a": 10**23}


# ------------------------------------------------------------------- the writing side


def _string_reference(value: str) -> str:
    rendered = json.dumps(value, ensure_ascii=False)
    try:
        rendered.encode("utf-8")
    except UnicodeEncodeError:
        return repr(value)
    return rendered


@PROPERTY
@given(text_values)
def test_strings_are_written_as_json_dumps_writes_them(value):
    from toolbench.core.calls.python_format import _string

    assert _string(value) == _string_reference(value)


@PROPERTY
@given(values)
def test_literals_are_written_as_before(value):
    """`_value`'s shortcut for strings and numbers: the text of the general branches."""
    assume(_renderable(value))
    text = PythonFormat(CONTEXT).literal(value)
    reference = full(CONTEXT, f"API.f(a={text})")
    assert not isinstance(reference, str)
    assert typed(reference[0].arguments["a"]) == typed(value)
