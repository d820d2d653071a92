"""Native tool-call formats of open models (hermes, llama-json, pythonic, mistral) and the `auto`
reader: exact parses, the detection rule, the relevance invariant, caps, and the two properties
every format holds (auto reads every format's render back; no input raises anything but
CallParseError). Where a maintained package defines a family's format (mistral-common,
llama-models), the answers it writes are read back."""

from __future__ import annotations

import json
import string
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import identifiers, json_values, programs
from toolbench.core.calls import (
    FORMATS,
    MAX_ANSWER_CHARS,
    MAX_CALLS,
    MAX_NESTING,
    AutoFormat,
    ChatNativeFormat,
    FormatContext,
    HermesFormat,
    LlamaJsonFormat,
    MistralFormat,
    PythonicFormat,
    get_format,
)
from toolbench.foundation.errors import CallParseError, UserError
from toolbench.foundation.records import Call, Program
from toolbench.tools.home_search import HomeSearch

AUTO = AutoFormat()
HOME_AUTO = AutoFormat(HomeSearch.format_context())


def program(*calls: tuple[str, dict]) -> Program:
    return Program([Call(name=name, arguments=args) for name, args in calls])


WEATHER = program(("get_weather", {"city": "Paris"}))
TWO = program(("get_weather", {"city": "Paris", "days": 3}), ("search", {"q": "x"}))


def parse_error(fmt, text: str) -> CallParseError:
    with pytest.raises(CallParseError) as caught:
        fmt.parse(text)
    return caught.value


# ------------------------------------------------------------------ the registry


def test_every_format_is_registered_under_its_name_and_has_the_full_interface():
    assert set(FORMATS) == {
        "auto",
        "json",
        "python",
        "hermes",
        "chat-native",
        "llama-json",
        "pythonic",
        "mistral",
    }
    for name in FORMATS:
        for context in (None, FormatContext.empty(), HomeSearch.format_context()):
            fmt = get_format(name, context)
            assert fmt.name == name
            assert fmt.parse(fmt.render(WEATHER)) == WEATHER
            assert fmt.split(fmt.render(Program([])))[1] == Program([])
    with pytest.raises(UserError, match="known: auto, json"):
        get_format("yaml")


# ------------------------------------------------------------------ hermes


def test_hermes_renders_what_the_qwen_template_writes_and_reads_it_with_content():
    assert HermesFormat().render(TWO) == (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}\n</tool_call>\n'
        '<tool_call>\n{"name": "search", "arguments": {"q": "x"}}\n</tool_call>'
    )
    text = "Let me look.\n" + HermesFormat().render(TWO) + "<|im_end|>"
    assert HermesFormat().split(text) == ("Let me look.\n\n<|im_end|>", TWO)
    assert AUTO.split(text) == ("Let me look.", TWO)


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}',  # unclosed final block
        '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}</tool_call>',
        '<tool_call>\n```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```\n</tool_call>',
        '<tool_call>{"name": "get_weather", "parameters": {"city": "Paris"}}</tool_call>',
    ],
)
def test_hermes_tolerates_what_models_write(text):
    assert HermesFormat().parse(text) == WEATHER
    assert AUTO.parse(text) == WEATHER


def test_python_literal_json_as_hermes_2_pro_writes_it_is_read():
    text = "<tool_call>\n{'arguments': {'symbol': 'TSLA', 'live': True, 'n': None}, 'name': 'get_stock'}\n</tool_call>"
    expected = program(("get_stock", {"symbol": "TSLA", "live": True, "n": None}))
    assert HermesFormat().parse(text) == expected
    assert AUTO.parse(text) == expected
    assert AUTO.parse("{'name': 'get_stock', 'arguments': {'symbol': 'TSLA', 'live': true}}") == program(
        ("get_stock", {"symbol": "TSLA", "live": True})
    )


def test_a_closing_tag_inside_a_string_argument_does_not_end_the_block():
    prog = program(("post", {"text": "see </tool_call> and <tool_call>"}))
    assert AUTO.parse(HermesFormat().render(prog)) == prog


@pytest.mark.parametrize(
    ("text", "kind", "fragment"),
    [
        ('<tool_call>\n{"name": "f", "arguments": {"a": 1}\n</tool_call>', "hermes:json", "tool call 1"),
        ("<tool_call></tool_call>", "hermes:empty", "holds no call"),
        ('<tool_call>{"arguments": {}}</tool_call>', "hermes:shape", "missing a string 'name'"),
        (
            '<tool_call>{"name": "f"}</tool_call>\n<tool_call>{"name": "g", "arguments": [1]}</tool_call>',
            "hermes:shape",
            "tool call 2",
        ),
    ],
)
def test_hermes_errors_are_namespaced_and_say_which_block(text, kind, fragment):
    for fmt in (HermesFormat(), ChatNativeFormat(), AUTO):
        error = parse_error(fmt, text)
        assert (error.kind, error.error_type) == (kind, f"parse:{kind}")
        assert fragment in error.message


def test_chat_native_keeps_its_render_and_reads_like_hermes():
    assert (
        ChatNativeFormat().render(WEATHER)
        == '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    )
    assert ChatNativeFormat().parse(HermesFormat().render(TWO)) == TWO
    assert ChatNativeFormat().split('[{"name": "f", "arguments": {}}]') == ("", program(("f", {})))
    assert ChatNativeFormat().split("{not json at all}") == ("{not json at all}", Program([]))


# ------------------------------------------------------------------ llama-json


def test_llama_json_renders_what_the_llama_3_template_writes():
    assert LlamaJsonFormat().render(TWO) == (
        '{"name": "get_weather", "parameters": {"city": "Paris", "days": 3}}; {"name": "search", "parameters": {"q": "x"}}'
    )


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "get_weather", "parameters": {"city": "Paris", "days": 3}}; {"name": "search", "parameters": {"q": "x"}}',
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris", "days": 3}}; {"name": "search", "parameters": {"q": "x"}}<|eom_id|>',
        '{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}\n{"name": "search", "arguments": {"q": "x"}}<|eot_id|>',
        '{"type": "function", "name": "get_weather", "parameters": {"city": "Paris", "days": 3}}{"type": "function", "name": "search", "parameters": {"q": "x"}}',
        '<function=get_weather>{"city": "Paris", "days": 3}</function><function=search>{"q": "x"}</function>',
        '<|python_start|>[{"name": "get_weather", "parameters": {"city": "Paris", "days": 3}}, {"name": "search", "parameters": {"q": "x"}}]<|python_end|><|eom|>',
    ],
)
def test_llama_json_reads_the_shapes_llama_models_emit(text):
    assert LlamaJsonFormat().parse(text) == TWO
    assert AUTO.parse(text) == TWO


def test_llama_json_keeps_text_before_the_tag_as_content():
    text = 'Checking the weather.<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}'
    assert LlamaJsonFormat().split(text) == ("Checking the weather.", WEATHER)
    assert AUTO.split(text) == ("Checking the weather.", WEATHER)
    assert LlamaJsonFormat().split("The weather in Paris is sunny.") == (
        "The weather in Paris is sunny.",
        Program([]),
    )


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("<|python_tag|>get the weather", "llama-json:json"),
        ("<|python_tag|>", "llama-json:json"),
        ('<|python_tag|>{"name": "f", "parameters": {"a": }}', "llama-json:json"),
        ('<|python_tag|>{"tool_calls": []}', "llama-json:empty"),
        ("<function=>{}</function>", "llama-json:syntax"),
        ('<|python_tag|>{"parameters": {}}', "llama-json:shape"),
    ],
)
def test_llama_json_errors(text, kind):
    assert parse_error(LlamaJsonFormat(), text).kind == kind
    assert parse_error(AUTO, text).kind == kind


# ------------------------------------------------------------------ pythonic


def test_pythonic_renders_a_python_list_of_keyword_calls():
    prog = program(
        ("get_weather", {"city": "Paris", "days": 3}),
        ("book", {"ok": True, "x": None, "tags": ["a"], "o": {"k": 1.5}}),
    )
    assert PythonicFormat().render(prog) == (
        '[get_weather(city="Paris", days=3), book(ok=True, x=None, tags=["a"], o={"k": 1.5})]'
    )


@pytest.mark.parametrize(
    "text",
    [
        '[get_weather(city="Paris", days=3), search(q="x")]',
        "[get_weather(city='Paris', days=3), search(q='x')]",
        '<|python_start|>[get_weather(city="Paris", days=3), search(q="x")]<|python_end|><|eot|>',
        '<|python_tag|>[get_weather(city="Paris", days=3), search(q="x")]<|eom_id|>',
        '[get_weather(city="Paris", days=3)][search(q="x")]',  # llama-models joins calls so
        '```python\n[get_weather(city="Paris", days=3),\n search(q="x")]\n```',
        '[get_weather(city="Paris", days=3)]\n[search(q="x")]',
    ],
)
def test_pythonic_reads_the_shapes_models_emit(text):
    assert PythonicFormat().parse(text) == TWO
    assert AUTO.parse(text) == TWO


def test_pythonic_takes_json_constants_and_positional_arguments_with_a_context():
    assert AUTO.parse("[f(a=true, b=false, c=null)]") == program(("f", {"a": True, "b": False, "c": None}))
    home = PythonicFormat(HomeSearch.format_context())
    assert home.parse('[set_location("Austin, TX"), search()]') == program(
        ("set_location", {"value": "Austin, TX"}), ("search", {})
    )
    assert HOME_AUTO.parse('[set_location("Austin, TX"), search()]') == home.parse(
        '[set_location("Austin, TX"), search()]'
    )


@pytest.mark.parametrize(
    ("text", "kind", "fragment"),
    [
        ('[get_weather(city="Paris")', "pythonic:syntax", "never closed"),
        ("[get_weather(city=Paris)]", "pythonic:undefined_name", "'Paris' is not defined"),
        ('[get_weather(city="Paris"), 3]', "pythonic:unsupported", "expected a call, got Constant"),
        ("[get_weather(city=os.getcwd())]", "pythonic:unsupported", "a call is not a value"),
        ("[f(x=1)][0]", "pythonic:unsupported", "expected a call"),
        ("<|python_start|>[]<|python_end|>", "llama-json:empty", "an empty list of calls"),
        (
            "[f(x=" + "[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1) + ")]",
            "pythonic:too_deep",
            "nest deeper",
        ),
    ],
)
def test_pythonic_errors(text, kind, fragment):
    error = parse_error(AUTO, text)
    assert error.kind == kind and fragment in error.message


# ------------------------------------------------------------------ mistral


def test_mistral_renders_the_v3_form_with_nine_character_ids():
    assert MistralFormat().render(TWO) == (
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}, "id": "call00000"}, '
        '{"name": "search", "arguments": {"q": "x"}, "id": "call00001"}]'
    )


@pytest.mark.parametrize(
    "text",
    [
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}, "id": "abcDEF123"}, {"name": "search", "arguments": {"q": "x"}, "id": "xyzXYZ987"}]</s>',
        '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}, {"name": "search", "arguments": "{\\"q\\": \\"x\\"}"}]',
        '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris", "days": 3}[TOOL_CALLS]search[ARGS]{"q": "x"}</s>',
        '[TOOL_CALLS]get_weather[CALL_ID]abcDEF123[ARGS]{"city": "Paris", "days": 3}[TOOL_CALLS]search[CALL_ID]xyzXYZ987[ARGS]{"q": "x"}',
    ],
)
def test_mistral_reads_both_forms(text):
    assert MistralFormat().parse(text) == TWO
    assert AUTO.parse(text) == TWO


def test_mistral_content_is_the_text_before_the_token():
    text = 'Let me check.[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}'
    assert MistralFormat().split(text) == ("Let me check.", WEATHER)
    assert AUTO.split(text) == ("Let me check.", WEATHER)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("[TOOL_CALLS]", "mistral:syntax"),
        ("[TOOL_CALLS][]", "mistral:empty"),
        ("[TOOL_CALLS] I would call get_weather", "mistral:syntax"),
        ('[TOOL_CALLS]get_weather{"city": "Paris"}', "mistral:syntax"),
        ('[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"', "mistral:json"),
        ('[TOOL_CALLS]get_weather[ARGS]["Paris"]', "mistral:shape"),
        ('[TOOL_CALLS][{"name": "f", "arguments": {}}]\n[TOOL_CALLS]oops', "mistral:syntax"),
    ],
)
def test_mistral_errors(text, kind):
    assert parse_error(MistralFormat(), text).kind == kind
    assert parse_error(AUTO, text).kind == kind


# ------------------------------------------------------------------ auto: the detection rule


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I'm sorry, but I can't help with that: none of the functions books flights.",
        "I cannot call set_location because you did not say which city.",
        "You could use `search()` once a city is set.",
        "set_location(value) needs a city, which you did not give.",
        "search(), which sorts the results, needs a location first.",
        "search() is not what you want here.",
        "search().",
        "Note(s): none of these tools fits.",
        "I (the assistant) cannot book flights.",
        "[]",
        '{"answer": "no suitable function"}',
        "E = mc^2, as everyone knows.",
        '<think>\nShould I call get_weather(city="Paris")? No: the user asked for a joke.\n</think>\nWhy did the chicken…',
        "```\nno code here\n```",
    ],
)
def test_prose_that_mentions_functions_is_no_call(text):
    content, prog = AUTO.split(text)
    assert prog == Program([])
    assert AUTO.detect(text) is None


@pytest.mark.parametrize(
    ("text", "family"),
    [
        ('<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>', "hermes"),
        ('[TOOL_CALLS][{"name": "f", "arguments": {}}]', "mistral"),
        ('<|python_tag|>{"name": "f", "parameters": {}}', "llama-json"),
        ("<|python_tag|>[f()]", "pythonic"),
        ("<|python_start|>f(a=1)<|python_end|>", "pythonic"),
        ('<function=f>{"a": 1}</function>', "llama-json"),
        ('[{"name": "f", "arguments": {}}]', "json"),
        ('Sure:\n```json\n{"name": "f", "arguments": {}}\n```', "json"),
        ('{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}', "json"),
        ("[f(a=1)]", "pythonic"),
        ("API.f(a=1)", "python"),
        ("n = 3\nf(a=n)", "python"),
        ('API.post(text="<tool_call> in a string")', "python"),
        ('<think>plan: f(a=1)</think>\n<tool_call>{"name": "f", "arguments": {}}</tool_call>', "hermes"),
    ],
)
def test_detection_picks_the_family(text, family):
    assert AUTO.detect(text) == family
    assert len(AUTO.parse(text)) == 1


def test_toolbench_python_lines_with_assignments_and_constructors():
    from toolbench.tools.trip_booking import TOOL as TRIP

    trip = AutoFormat(TRIP.format_context())
    text = "Here you go:\n```python\nd = Date(4, 12, 2025)\nAPI.set_departure_date(d)\n```\nAnything else?"
    content, prog = trip.split(text)
    assert prog == program(("set_departure_date", {"value": "2025-04-12"}))
    assert content == "Here you go:\n\nAnything else?"


def test_python_lines_between_prose_are_read_and_the_prose_is_content():
    text = (
        'Sure! First the city:\n  API.set_location(value="Austin, TX")\nthen the search:\nAPI.search()\nDone.'
    )
    assert AUTO.split(text) == (
        "Sure! First the city:\nthen the search:\nDone.",
        program(("set_location", {"value": "Austin, TX"}), ("search", {})),
    )


@pytest.mark.parametrize(
    ("text", "kind", "fragment"),
    [
        ('API.set_location(value="Oakland, CA"', "syntax", "never closed"),  # truncated
        ('get_weather(city="Paris") API.search()', "syntax", "invalid syntax"),
        ("get_weather(city=Paris)", "undefined_name", "'Paris' is not defined"),
        ('{"name": "f", "arguments": {"a": 1}', "json", "not valid JSON"),
        ("{'name': 'f', 'arguments': {1, 2}}", "json", "not valid JSON"),  # a set: neither JSON nor a value
        ('[{"name": "f", "arguments": [1]}]', "shape", "must be an object"),
        ('API.f(x=1)\n<tool_call>{"name": "g"}</tool_call>', "auto:mixed", "<tool_call> at line 2"),
        ("API.f(x=1)\n[g(y=2)]", "auto:mixed", "python at line 1, pythonic at line 2"),
        ('[g(y=2)]\n{"name": "f", "arguments": {}}', "auto:mixed", "pythonic at line 1, JSON at line 2"),
    ],
)
def test_call_attempts_that_cannot_be_read_are_precise_errors(text, kind, fragment):
    error = parse_error(AUTO, text)
    assert error.kind == kind and fragment in error.message


def test_auto_reads_python_exactly_like_the_python_format():
    text = 'API.set_location("Oakland, CA")\nAPI.set_buy_or_rent(value="rent")\nAPI.set_max_commute_time(30, destination="downtown")\nAPI.search()'
    assert HOME_AUTO.parse(text) == get_format("python", HomeSearch.format_context()).parse(text)
    for broken in (text[:-1], "API.frob(1)", "API.set_num_beds(1, 2)", "API.search(sort_by=os.system('x'))"):
        ours, theirs = (
            parse_error(HOME_AUTO, broken),
            parse_error(get_format("python", HomeSearch.format_context()), broken),
        )
        assert (ours.kind, ours.message) == (theirs.kind, theirs.message)


# ------------------------------------------------------------------ the relevance invariant

marked = st.one_of(
    st.tuples(
        st.sampled_from(
            [
                "<tool_call>",
                "[TOOL_CALLS]",
                "<|python_tag|>",
                "<|python_start|>",
                "<function=",
                "[f(",
                '{"name": ',
            ]
        ),
        st.text(max_size=60),
    ),
    # a call line whose parentheses close on the line and words follow is prose, by the line rule
    st.tuples(st.just("API.f("), st.text(st.characters(blacklist_characters=")"), max_size=60)),
)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30), marked)
def test_a_marked_or_call_shaped_answer_is_never_no_call(before, marker_and_rest):
    """Relevance scoring counts any recognised call as a call: an answer with a line that opens
    with a marker or a call must come out as calls or as an error, never as Program([])."""
    marker, after = marker_and_rest
    text = before.replace("\n", " ") + "\n" + marker + after
    if "<think>" in text or '"""' in before or "'''" in before:
        return  # a reasoning block hides what it holds, and so does a string that spans lines
    try:
        prog = AUTO.parse(text)
    except CallParseError:
        return
    assert len(prog) > 0, text


# ------------------------------------------------------------------ caps


def test_an_answer_over_the_size_cap_is_refused_before_it_is_read():
    text = "API.search()\n" * (MAX_ANSWER_CHARS // 13 + 1)
    for name in FORMATS:
        started = time.perf_counter()
        error = parse_error(get_format(name), text)
        assert error.kind.endswith("too_long") and f"{MAX_ANSWER_CHARS:,}" in error.message
        assert time.perf_counter() - started < 0.05
    assert parse_error(AUTO, text).kind == "auto:too_long"


@pytest.mark.parametrize(
    ("name", "one"),
    [
        ("auto", "API.f(a=1)\n"),
        ("auto", '{"name": "f", "arguments": {}}\n'),
        ("auto", "[f(a=1)]\n"),
        ("python", "API.f(a=1)\n"),
        ("json", '{"name": "f", "arguments": {}}\n'),
        ("hermes", '<tool_call>{"name": "f", "arguments": {}}</tool_call>'),
        ("llama-json", '{"name": "f", "parameters": {}}; '),
        ("pythonic", "[f(a=1)]\n"),
        ("mistral", "[TOOL_CALLS]f[ARGS]{}"),
    ],
)
def test_more_calls_than_the_cap_is_an_error_and_the_cap_itself_is_fine(name, one):
    fmt = get_format(name)
    assert len(fmt.parse(one * MAX_CALLS)) == MAX_CALLS
    assert parse_error(fmt, one * (MAX_CALLS + 1)).kind.endswith("too_many_calls")
    started = time.perf_counter()
    parse_error(fmt, one * 5000)
    assert time.perf_counter() - started < 0.5


def test_a_list_of_too_many_calls_in_one_value_is_refused():
    calls = ", ".join(["f()"] * (MAX_CALLS + 1))
    assert parse_error(AUTO, f"[{calls}]").kind == "pythonic:too_many_calls"
    assert parse_error(AUTO, json.dumps([{"name": "f"}] * (MAX_CALLS + 1))).kind == "too_many_calls"


@pytest.mark.parametrize(
    "text",
    [
        "[f(x=" + "[" * 100_000 + "]" * 100_000 + ")]",
        "API.f(x=" + "(" * 100_000,
        "API.f(x=" + "-" * 199_000 + "1)",
        "API.f(x=" + "1+" * 99_000 + "1)",
        "a" + ".b" * 99_000 + "()",
        "API.f(x=[" + "1," * 99_000 + "])",
        "<tool_call>" + "[" * 199_000,
        "[TOOL_CALLS]" + "{" * 199_000,
        "<|python_tag|>" + '{"a":' * 39_000,
    ],
)
def test_deep_or_huge_code_is_refused_cheaply(text):
    import tracemalloc

    for fmt in (AUTO, get_format("python"), get_format("pythonic")):
        tracemalloc.start()
        started = time.perf_counter()
        try:
            fmt.parse(text)
        except CallParseError:
            pass
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 10 * len(text) + 1_000_000 and elapsed < 2.0, (fmt.name, peak, elapsed)


# ----------------------------------------------------------------------- properties

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALL = sorted(FORMATS)


@PROPERTY
@given(st.sampled_from(ALL), programs)
def test_auto_reads_every_formats_render_back(name, prog):
    rendered = get_format(name).render(prog)
    assert get_format(name).parse(rendered) == prog
    assert AUTO.parse(rendered) == prog


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["json", "hermes", "chat-native", "llama-json", "mistral", "auto"]),
    st.lists(
        st.builds(
            Call,
            name=st.text(min_size=1, max_size=10).filter(str.strip),
            arguments=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
        ),
        max_size=4,
    ).map(Program),
)
def test_json_families_round_trip_any_names_and_keys(name, prog):
    rendered = get_format(name).render(prog)
    assert get_format(name).parse(rendered) == prog
    assert AUTO.parse(rendered) == prog


hostile = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=st.sampled_from(list("API.()[]{}=,:;'\"\\\n #*-+0123456789abcfxyz_e<>|")), max_size=100),
    st.builds(
        lambda marker, body: marker + body,
        st.sampled_from(
            [
                "<tool_call>",
                "[TOOL_CALLS]",
                "<|python_tag|>",
                "<|python_start|>",
                "<function=f>",
                "[f(x=",
                "API.f(",
                '{"name": "f", "arguments": ',
                "[TOOL_CALLS]f[ARGS]",
                "<think>",
                "```json\n",
                "\x00",
                "\ud800",
            ]
        ),
        st.text(max_size=100),
    ),
    st.integers(0, 3000).flatmap(
        lambda n: st.sampled_from(
            [
                "[" * n,
                "{" * n,
                "(" * n,
                "[f(x=" + "[" * n,
                "<tool_call>" + "[" * n,
                '{"name": "f", "arguments": ' * (n // 20 + 1),
            ]
        )
    ),
    json_values.map(json.dumps),
)


@PROPERTY
@given(st.sampled_from(ALL), hostile)
def test_no_input_raises_anything_but_call_parse_error(name, text):
    for fmt in (get_format(name), get_format(name, HomeSearch.format_context())):
        try:
            result = fmt.parse(text)
        except CallParseError as error:
            assert error.error_type.startswith("parse:") and error.message
            continue
        assert isinstance(result, Program)
        content, split = fmt.split(text)
        assert split == result and isinstance(content, str)


# ------------------------------------------------------------------ maintained packages: mistral-common


def _mistral_tokenizers(tmp_path_factory) -> dict[str, object]:
    """mistral-common's own tokenizers: v3 (tekken, shipped in the package) and v11 / v13, which
    change how tool calls are written; their tokenizer files are not shipped, so they are made
    from the shipped tekken vocabulary with the version and the [ARGS] / [CALL_ID] control tokens
    set (the tool-call layout comes from mistral-common's InstructTokenizerV11/V13)."""
    from pathlib import Path

    import mistral_common
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    tokenizers: dict[str, object] = {"v3": MistralTokenizer.v3(is_tekken=True)}
    data = json.loads((Path(mistral_common.__file__).parent / "data" / "tekken_240718.json").read_text())
    specials = [
        {"rank": t["rank"], "token_str": str(t["token_str"]), "is_control": True}
        for t in Tekkenizer.DEPRECATED_SPECIAL_TOKENS
    ]
    specials += [
        {"rank": 20, "token_str": "[ARGS]", "is_control": True},
        {"rank": 21, "token_str": "[CALL_ID]", "is_control": True},
    ]
    # the first 2,000 tokens (the 256 bytes and the commonest merges) keep the files small and
    # fast to load; tekken is byte-level, so every text still encodes and decodes exactly
    data["vocab"] = data["vocab"][:2000]
    data["config"]["default_vocab_size"] = data["config"]["default_num_special_tokens"] + 2000
    data["special_tokens"] = specials
    folder = tmp_path_factory.mktemp("mistral")
    for version in ("v11", "v13"):
        data["config"]["version"] = version
        path = folder / f"tekken_{version}.json"
        path.write_text(json.dumps(data))
        tokenizers[version] = MistralTokenizer.from_file(str(path))
    return tokenizers


@pytest.fixture(scope="module")
def mistral_tokenizers(tmp_path_factory):
    pytest.importorskip("mistral_common")
    return _mistral_tokenizers(tmp_path_factory)


def _mistral_answer(tokenizer, prog: Program) -> str:
    """The assistant turn as the model would write it: encode a conversation holding the calls,
    decode it with the control tokens kept, and cut out the assistant's part."""
    from mistral_common.protocol.instruct.messages import AssistantMessage, ToolMessage, UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.protocol.instruct.tool_calls import Function, FunctionCall, Tool, ToolCall
    from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy

    tool_calls = [
        ToolCall(
            id=f"call{i:05d}",
            function=FunctionCall(name=c.name, arguments=json.dumps(c.arguments, ensure_ascii=False)),
        )
        for i, c in enumerate(prog)
    ]
    names = sorted({c.name for c in prog})
    request = ChatCompletionRequest(
        messages=[UserMessage(content="Weather in Paris?"), AssistantMessage(tool_calls=tool_calls)]
        + [ToolMessage(tool_call_id=t.id, name=t.function.name, content="ok") for t in tool_calls],
        tools=[
            Tool(function=Function(name=n, description="", parameters={"type": "object", "properties": {}}))
            for n in names
        ],
    )
    tokens = tokenizer.encode_chat_completion(request).tokens
    instruct = tokenizer.instruct_tokenizer
    begin = max(i for i, token in enumerate(tokens) if token == instruct.END_INST) + 1
    end = tokens.index(instruct.tokenizer.eos_id, begin) + 1  # the assistant turn, its </s> included
    return tokenizer.decode(tokens[begin:end], special_token_policy=SpecialTokenPolicy.KEEP)


def test_mistral_common_answers_read_back_in_every_tokenizer_version(mistral_tokenizers):
    prog = program(
        ("get_weather", {"city": "Paris é", "days": 3, "units": None}), ("search", {"q": ["x", {"y": 1.5}]})
    )
    answers = {version: _mistral_answer(tok, prog) for version, tok in mistral_tokenizers.items()}
    assert answers["v3"].startswith("[TOOL_CALLS][{") and answers["v11"].startswith(
        "[TOOL_CALLS]get_weather[CALL_ID]call00000[ARGS]{"
    )
    assert answers["v13"].startswith("[TOOL_CALLS]get_weather[ARGS]{")
    assert answers["v3"] == MistralFormat().render(prog) + "</s>"  # render writes what mistral-common writes
    for answer in answers.values():
        assert MistralFormat().parse(answer) == prog
        assert AUTO.parse(answer) == prog


mistral_safe_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
mistral_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31) | mistral_safe_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(mistral_safe_text, inner, max_size=3),
    max_leaves=6,
)
mistral_programs = st.lists(
    st.builds(Call, name=identifiers, arguments=st.dictionaries(identifiers, mistral_values, max_size=3)),
    min_size=1,
    max_size=3,
).map(Program)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.sampled_from(["v3", "v11", "v13"]), mistral_programs)
def test_mistral_common_round_trip(mistral_tokenizers, version, prog):
    answer = _mistral_answer(mistral_tokenizers[version], prog)
    assert MistralFormat().parse(answer) == prog
    assert AUTO.parse(answer) == prog


# ------------------------------------------------------------------ maintained packages: llama-models


@pytest.fixture(scope="module")
def llama_chat_format():
    pytest.importorskip("llama_models")
    pytest.importorskip("tiktoken")
    from llama_models.llama3.chat_format import ChatFormat
    from llama_models.llama3.tokenizer import Tokenizer

    return ChatFormat(Tokenizer.get_instance())


def _llama_answer(chat_format, prog: Program, prompt_format) -> str:
    """Meta's reference encoding of an assistant turn with custom tool calls, decoded."""
    from llama_models.datatypes import RawMessage, StopReason, ToolCall

    message = RawMessage(
        role="assistant",
        content="",
        stop_reason=StopReason.end_of_turn,
        tool_calls=[
            ToolCall(call_id=str(i), tool_name=c.name, arguments=c.arguments) for i, c in enumerate(prog)
        ],
    )
    tokens, _ = chat_format.encode_message(message, prompt_format)
    text = chat_format.tokenizer.decode(tokens)
    return text.split("<|end_header_id|>\n\n", 1)[1]


# llama-models' ToolCall takes scalars, lists of scalars and flat dicts as argument values, and its
# python_list writer quotes strings as f'"{value}"' (no escaping) and dicts as `{k=v}`: only
# values that survive that are generated for it.
llama_plain = st.text(string.ascii_letters + string.digits + " ,.-_", max_size=12)
llama_scalars = st.none() | st.booleans() | st.integers(-(2**31), 2**31) | llama_plain
llama_values = llama_scalars | st.lists(llama_scalars, max_size=3)
llama_programs = st.lists(
    st.builds(Call, name=identifiers, arguments=st.dictionaries(identifiers, llama_values, max_size=3)),
    min_size=1,
    max_size=3,
).map(Program)
llama_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**31), 2**31)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
)
llama_json_values = (
    llama_json_scalars
    | st.lists(llama_json_scalars, max_size=3)
    | st.dictionaries(st.text(max_size=5), llama_json_scalars, max_size=3)
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.sampled_from(["json", "function_tag", "python_list"]), llama_programs)
def test_llama_models_answers_read_back(llama_chat_format, prompt_format, prog):
    from llama_models.datatypes import ToolPromptFormat

    answer = _llama_answer(llama_chat_format, prog, ToolPromptFormat(prompt_format))
    assert answer.endswith("<|eot_id|>")
    reader = PythonicFormat() if prompt_format == "python_list" else LlamaJsonFormat()
    assert reader.parse(answer) == prog
    assert AUTO.parse(answer) == prog


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(["llama-json", "pythonic"]),
    st.builds(Call, name=identifiers, arguments=st.dictionaries(identifiers, llama_json_values, max_size=3)),
)
def test_llama_models_reads_our_renders(llama_chat_format, name, call):
    """The other direction: Meta's reference parser reads what `llama-json` and `pythonic` write."""
    from llama_models.datatypes import StopReason

    rendered = get_format(name).render(Program([call])) + "<|eot_id|>"
    message = llama_chat_format.decode_assistant_message_from_content(rendered, StopReason.end_of_turn)
    assert [(t.tool_name, t.arguments) for t in message.tool_calls] == [(call.name, call.arguments)]
