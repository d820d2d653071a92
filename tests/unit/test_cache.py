r"""Storage of model answers: any text a model can produce goes into the request cache and into JSONL
files and comes back unchanged, including what orjson refuses (lone surrogates such as the
`API.set_location('\udcff')` that once stopped `eval`), NUL, huge and deeply nested text."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from toolbench.core.backends.base import BackendParams, BackendRequest, BackendResponse
from toolbench.core.cache import RequestCache, cached_generate, request_key
from toolbench.foundation.errors import UserError
from toolbench.foundation.io import dumps, iter_jsonl, loads, read_records, write_json, write_jsonl
from toolbench.foundation.records import Prediction

# Every code point, surrogates (category Cs) included: st.characters() leaves them out by default.
ANY_CHAR = st.characters(codec=None, exclude_categories=())
ANY_TEXT = st.text(alphabet=ANY_CHAR, max_size=200)
# Text that is sure to hold a lone surrogate, so each run tries plenty of them.
SURROGATE_TEXT = st.builds(
    lambda before, surrogate, after: before + surrogate + after,
    ANY_TEXT,
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    ANY_TEXT,
)
TEXTS = st.one_of(ANY_TEXT, SURROGATE_TEXT)


def joined(text: str) -> str:
    """`text` as JSON holds it: a high surrogate followed by a low one is the character they pair
    into (JSON strings are UTF-16), so that is what any JSON reader gives back."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


PROPERTY = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

HOSTILE = [
    "API.set_location('\udcff')",
    "API.set_location('\ud83d')\udc00\udfff\ud800",  # lone and reversed halves
    "API.set_location('a\x00b')\x00",
    "[" * 100_000 + "]" * 100_000,  # deeply nested JSON, as text
    '{"a": ' * 5_000 + "1" + "}" * 5_000,
    "x" * 5_000_000,
    "\ufeff\u2028\u2029\x7f\x1b[31m",
    "",
]


def response(text: str) -> BackendResponse:
    return BackendResponse(
        text=text,
        tool_calls=[{"name": text[:50], "arguments": text}, {"name": "f", "arguments": {text: [text, 1]}}],
        finish_reason="stop",
        usage={"prompt_tokens": 3, "completion_tokens": 4},
    )


def request(text: str) -> BackendRequest:
    return BackendRequest(
        id="t",
        mode="chat",
        messages=[{"role": "assistant", "content": text}, {"role": "user", "content": "go"}],
    )


@pytest.fixture
def cache(tmp_path: Path):
    cache = RequestCache(tmp_path / "requests.sqlite")
    yield cache
    cache.close()


# --- the request cache ------------------------------------------------------------------------------


@PROPERTY
@given(text=TEXTS)
@example(text=HOSTILE[0])
def test_any_answer_text_round_trips_through_the_cache(cache, text):
    key = request_key("hf:model", request(text), BackendParams(stop=(text,) if text else ()))
    assert key == request_key("hf:model", request(text), BackendParams(stop=(text,) if text else ()))
    cache.put(key, response(text))
    assert cache.get(key) == response(joined(text))


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_answers_are_cached_and_read_back(cache, text):
    key = request_key("openai:m@http://x", request(text), BackendParams())
    cache.put(key, response(text))
    assert cache.get(key) == response(text)
    assert len(cache) == 1


def test_a_hostile_answer_survives_cached_generate_and_a_rerun_hits_the_cache(cache):
    class Hostile:
        fingerprint = "hostile"
        calls = 0

        def generate(self, requests, params, on_done=None):
            Hostile.calls += 1
            answers = [response(HOSTILE[i % len(HOSTILE)]) for i in range(len(requests))]
            for i, answer in enumerate(answers):
                if on_done:
                    on_done(i, answer)
            return answers

    requests = [request(f"task {i}") for i in range(len(HOSTILE))]
    first, hits = cached_generate(Hostile(), requests, BackendParams(), cache)
    assert hits == 0 and [a.text for a in first] == HOSTILE
    again, hits = cached_generate(Hostile(), requests, BackendParams(), cache)
    assert hits == len(HOSTILE) and again == first and Hostile.calls == 1


def test_keys_orjson_can_write_are_unchanged(cache):
    """Caches made before the fallback keep hitting: the key is still sha256(orjson, sorted keys)."""
    req, params = request("Homes in Austin? é"), BackendParams(max_tokens=256, stop=("\n",))
    # the params as they were written before `guided` existed: an unguided key did not change
    settings = {"max_tokens": 256, "temperature": 0.0, "top_p": 1.0, "stop": ["\n"], "seed": 0}
    payload = {"backend": "hf:m", "request": req.payload(), "params": settings}
    assert (
        request_key("hf:m", req, params)
        == hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()
    )
    assert request_key("hf:m", request("\udcff"), params) != request_key("hf:m", request("\udcfe"), params)


def test_a_guided_answer_has_its_own_key():
    req = request("Homes in Austin?")
    assert request_key("hf:m", req, BackendParams(guided=True)) != request_key("hf:m", req, BackendParams())


def test_a_row_this_version_cannot_read_is_a_miss_not_a_crash(cache):
    key = request_key("hf:m", request("a"), BackendParams())
    cache.db.execute("INSERT INTO answers VALUES (?, ?)", (key, b'{"text": "unterminated'))
    assert cache.get(key) is None
    cache.put(key, response("fixed"))
    assert cache.get(key) == response("fixed")


def test_an_answer_written_by_an_older_version_still_reads(cache):
    key = request_key("hf:m", request("a"), BackendParams())
    cache.db.execute("INSERT INTO answers VALUES (?, ?)", (key, orjson.dumps(response("old").model_dump())))
    assert cache.get(key) == response("old")


# --- JSONL and JSON files ---------------------------------------------------------------------------


@PROPERTY
@given(text=TEXTS, key=TEXTS)
@example(text=HOSTILE[0], key="\udcff")
def test_any_text_round_trips_through_jsonl(tmp_path, text, key):
    def records(text: str, key: str) -> list[dict]:
        return [{"id": "a", "text": text, "meta": {key: [text, {"n": 1}]}}, {"id": "b", "text": "plain"}]

    path = tmp_path / "out.jsonl"
    assert write_jsonl(path, records(text, key)) == 2
    expected = records(joined(text), joined(key))
    assert [value for _, value in iter_jsonl(path)] == expected
    assert loads(dumps(records(text, key)[0])) == expected[0]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_predictions_round_trip_through_jsonl(tmp_path, text):
    path = tmp_path / "predictions.jsonl"
    write_jsonl(path, [Prediction(id="t1", text=text), Prediction(id="t2", text="ok")])
    assert [p.text for p in read_records(path, Prediction)] == [text, "ok"]


def test_a_predictions_file_written_by_json_dumps_reads_whole(tmp_path):
    """The issue's file: Python's json.dumps writes a lone surrogate as a `\\udcff` escape, which
    orjson refuses; the whole file used to be refused. Raw surrogate bytes (WTF-8) read too."""
    path = tmp_path / "predictions.jsonl"
    lines = [json.dumps({"id": "t1", "text": "API.set_location('\udcff')"}), '{"id": "t2", "text": "fine"}']
    path.write_bytes(
        ("\n".join(lines) + "\n").encode()
        + json.dumps({"id": "t3", "text": "\udcff"}, ensure_ascii=False).encode("utf-8", "surrogatepass")
        + b"\n"
    )
    assert [p.text for p in read_records(path, Prediction)] == [
        "API.set_location('\udcff')",
        "fine",
        "\udcff",
    ]


def test_surrogates_are_written_as_ascii_escapes_and_other_lines_stay_utf8(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [{"text": "é \udcff"}, {"text": "é"}])
    first, second = path.read_bytes().splitlines()
    assert first == b'{"text":"\\u00e9 \\udcff"}' and second == '{"text":"é"}'.encode()
    assert json.loads(first) == {"text": "é \udcff"}  # any JSON reader gets the same value back


def test_a_high_and_a_low_surrogate_side_by_side_read_back_as_their_character(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [{"text": "\ud83d\ude00 \ude00\ud83d"}])  # a pair, then the halves reversed
    assert next(iter_jsonl(path))[1] == {"text": "\U0001f600 \ude00\ud83d"}


def test_values_orjson_cannot_write_round_trip(tmp_path):
    nested: object = "\udcff"
    for _ in range(400):  # orjson writes 255 levels at most
        nested = [nested]
    record = {"big": [10**30, -(2**64)], "nested": nested, "nan": float("nan"), "surrogate": "\udcff"}
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [record])
    [(_, value)] = list(iter_jsonl(path))
    assert value == {**record, "nan": None}  # NaN is null, as orjson writes it
    assert isinstance(value["big"][0], int)  # exact, not orjson's float
    write_json(tmp_path / "out.json", record)
    assert loads((tmp_path / "out.json").read_bytes())["big"] == [10**30, -(2**64)]


def test_what_json_cannot_hold_is_still_refused(tmp_path):
    with pytest.raises(TypeError):
        dumps({1: "a non-string key"})
    too_deep: object = 1
    for _ in range(100_000):
        too_deep = [too_deep]
    with pytest.raises(ValueError, match="nested"):
        dumps(too_deep)
    path = tmp_path / "bad.jsonl"
    for line in (b'{"a": NaN}', b'{"text": "cut', b'"\xff"'):
        path.write_bytes(b'{"ok": 1}\n' + line + b"\n")
        with pytest.raises(UserError, match=r"bad\.jsonl:2: not valid JSON"):
            list(iter_jsonl(path))
