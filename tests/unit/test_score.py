"""The scorer: exact verdicts on hand-written wrong predictions, and F1 properties."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import assert_wrong
from toolbench.core.calls import PythonFormat
from toolbench.core.score import Scorer, aggregate, error_family, flatten_state, state_f1, summarize
from toolbench.foundation.records import Program, Task
from toolbench.pipelines.results import score_text
from toolbench.tools.home_search import HomeSearch

PY = PythonFormat(HomeSearch.format_context())
GOLD = 'API.set_location("Austin, TX")\nAPI.set_buy_or_rent("buy")\nAPI.set_num_beds(3)\nAPI.set_max_price(500000)\nAPI.search()'
TASK = Task(id="t1", tool="home_search", query="3+ bed homes in Austin under $500k", labels=[PY.parse(GOLD)])


def score(text: str, task: Task = TASK):
    return score_text(task, text)


def test_gold_scores_one_in_any_filter_order_but_ast_match_needs_a_label_order():
    assert score(GOLD).success and score(GOLD).ast_match and score(GOLD).state_f1 == 1.0
    swapped = GOLD.replace(
        "API.set_num_beds(3)\nAPI.set_max_price(500000)", "API.set_max_price(500000)\nAPI.set_num_beds(3)"
    )
    result = score(swapped)
    assert result.success and result.state_f1 == 1.0 and not result.ast_match


def test_explicit_default_counts_as_the_same_program():
    result = score(GOLD.replace("API.search()", 'API.search(sort_by="recommended")'))
    assert result.success and result.ast_match


def test_gold_state_items():
    items = flatten_state(Scorer().gold(TASK)[0].execution.state)
    assert sorted(items) == sorted(
        [
            ("home_search.criteria.location", '"austin, tx"'),
            ("home_search.criteria.buy_or_rent", '"buy"'),
            ("home_search.criteria.num_beds", "3"),
            ("home_search.criteria.max_price", "500000"),
            ("home_search.searched", "true"),
            ("home_search.sort_by", '"recommended"'),
        ]
    )


@pytest.mark.parametrize(
    ("name", "text", "error_type", "f1"),
    [
        ("wrong value", GOLD.replace("(3)", "(4)"), "state:mismatch", 5 / 6),
        (
            "missing call",
            GOLD.replace("API.set_num_beds(3)\n", ""),
            "state:mismatch",
            2 * (5 / 5) * (5 / 6) / (1 + 5 / 6),
        ),
        (
            "extra call",
            GOLD.replace("API.search()", "API.set_num_garages(1)\nAPI.search()"),
            "state:mismatch",
            2 * (6 / 7) / (1 + 6 / 7),
        ),
        (
            "wrong order",
            GOLD.replace(
                'API.set_location("Austin, TX")\nAPI.set_buy_or_rent("buy")',
                'API.set_buy_or_rent("buy")\nAPI.set_location("Austin, TX")',
            ),
            "home_search:order",
            0.0,
        ),
        ("wrong function", GOLD.replace("set_max_price", "set_min_price"), "state:mismatch", 5 / 6),
        # stops at call 3: location and buy_or_rent match (2 of the 4 predicted items, of 6 gold)
        (
            "schema violation",
            GOLD.replace("(3)", '("three")'),
            "schema:type",
            2 * (2 / 4) * (2 / 6) / (2 / 4 + 2 / 6),
        ),
        ("syntax", GOLD[:-1], "parse:syntax", 0.0),
    ],
)
def test_wrong_predictions_get_exact_verdicts(name, text, error_type, f1):
    assert_wrong(score(text), error_type, f1, name)


def test_no_search_keeps_partial_credit():
    # criteria all right (4 items) but searched=false and sort_by=null: 4 of 6 items on each side
    result = score(GOLD.replace("\nAPI.search()", ""))
    assert result.state_f1 == pytest.approx(4 / 6)


def test_missing_prediction_and_best_label_choice():
    scorer = Scorer()
    assert scorer.score(TASK, None).error_type == "missing"
    other = PY.parse(GOLD.replace("(3)", "(4)"))
    task = TASK.model_copy(update={"labels": [other, PY.parse(GOLD)]})
    result = scorer.score(task, PY.parse(GOLD))
    assert result.best_label == 1 and result.success


def test_relevance_tasks_need_no_call():
    task = Task(
        id="r",
        tool="home_search",
        category="relevance",
        query="What's the weather in Paris?",
        labels=[Program([])],
    )
    assert Scorer().score(task, Program([])).success
    result = Scorer().score(task, PY.parse('API.set_location("Paris")'))
    assert not result.success and result.error_type == "state:mismatch"


def test_aggregates_and_families():
    scores = [
        score(GOLD),
        score(GOLD[:-1]),
        score(GOLD.replace("(3)", "(4)")),
        score(GOLD.replace("(3)", '("x")')),
    ]
    agg = aggregate(scores)
    assert (agg.n, agg.success, agg.parse_error_rate, agg.tool_error_rate, agg.crash_rate) == (
        4,
        0.25,
        0.25,
        0.25,
        0.0,
    )
    assert agg.error_types == {"parse:syntax": 1, "schema:type": 1, "state:mismatch": 1}
    assert [error_family(t) for t in ("parse:json", "home_search:order", "exec:crash", None)] == [
        "parse",
        "tool",
        "exec",
        None,
    ]
    summary = summarize(scores)
    assert summary.macro.success == 0.25 and summary.per_tool["home_search"].n == 4


def test_flatten_treats_lists_as_multisets_of_whole_elements_and_integral_floats_as_ints():
    assert flatten_state({"a": [1, 2.0, {"b": "x", "c": 3.0}]}) == Counter(
        {("a[]", "1"): 1, ("a[]", "2"): 1, ("a[]", '{"b": "x", "c": 3}'): 1}
    )
    assert flatten_state({"a": [2, 1]}) == flatten_state({"a": [1, 2]})
    assert flatten_state({"a": True}) != flatten_state({"a": 1})
    # two logged requests with their fields swapped are two wrong items, not a match
    log = {"requests": [{"city": "Paris", "units": "metric"}, {"city": "Rome", "units": "standard"}]}
    swapped = {"requests": [{"city": "Paris", "units": "standard"}, {"city": "Rome", "units": "metric"}]}
    assert state_f1(flatten_state(log), flatten_state(swapped)) == 0.0


items = st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from(["1", "2", "3"])), max_size=8).map(
    Counter
)


@settings(deadline=None)  # examples: the profile in tests/conftest.py
@given(items, items)
def test_state_f1_properties(a, b):
    f1 = state_f1(a, b)
    assert 0.0 <= f1 <= 1.0
    assert f1 == pytest.approx(state_f1(b, a))
    assert (f1 == 1.0) == (a == b)
    assert state_f1(a, a) == 1.0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10,
)


@settings(deadline=None)  # examples: the profile in tests/conftest.py
@given(json_values)
def test_fast_state_encoding_equals_canonical_json(value):
    import json

    from toolbench.core.score import _canonical, _encode

    assert _encode(value) == json.dumps(_canonical(value), sort_keys=True)


def test_lcs_and_executability():
    from toolbench.core.score import lcs_ratio
    from toolbench.foundation.records import Call

    a, b, c = (Call(name=n, arguments={}) for n in "abc")
    assert lcs_ratio([a, b, c], [a, b, c]) == 1.0
    assert lcs_ratio([a, c], [a, b, c]) == pytest.approx(2 / 3)
    assert lcs_ratio([c, b, a], [a, b, c]) == pytest.approx(1 / 3)
    assert lcs_ratio([], []) == 1.0 and lcs_ratio([a], []) == 0.0
    gold, swapped = (
        score(GOLD),
        score(
            GOLD.replace(
                "API.set_num_beds(3)\nAPI.set_max_price(500000)",
                "API.set_max_price(500000)\nAPI.set_num_beds(3)",
            )
        ),
    )
    assert (gold.executable, gold.lcs) == (True, 1.0)
    assert swapped.executable and swapped.lcs == pytest.approx(4 / 5)
    broken = score(GOLD.replace("(3)", '("three")'))
    assert not broken.executable and aggregate([gold, broken]).executability == 0.5


def test_wilson_interval_matches_known_values_and_stays_in_bounds():
    from toolbench.core.score import wilson_interval

    low, high = wilson_interval(60, 120)
    assert abs(low - 0.4119) < 1e-3 and abs(high - 0.5881) < 1e-3  # ±9 points at 50% on 120 tasks
    assert wilson_interval(0, 10)[0] == 0.0 and 0.27 < wilson_interval(0, 10)[1] < 0.28
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(0, 0) == (0.0, 1.0)


def test_corrupted_replays_are_diagnosed_as_what_was_done_to_them(home_tasks):
    from toolbench.core.replay import corrupt_predictions
    from toolbench.core.score import summarize
    from toolbench.pipelines.results import score_all

    tasks = home_tasks[:40]
    predictions = {p.id: p for p in corrupt_predictions(tasks)}
    scores = score_all(tasks, predictions, "auto")
    expected = {
        "intact": None,
        "wrong_value": "wrong_argument",
        "missing_call": "missing_call",
        "syntax": "parse_error",
    }
    for score in scores:
        assert score.diagnosis == expected[predictions[score.id].meta["corruption"]], score
    cell = summarize(scores).cells["home_search/multi_call"]
    assert cell.diagnoses == {"missing_call": 10, "parse_error": 10, "wrong_argument": 10}
    assert cell.n == 40 and cell.success == 0.25


@pytest.mark.parametrize(
    "predicted, label, diagnosis",
    [
        ([], [("a", {})], "no_call"),
        ([("a", {})], [], "unexpected_call"),
        ([("b", {})], [("a", {})], "wrong_function"),
        ([("a", {"x": 1})], [("a", {"x": 1}), ("c", {})], "missing_call"),
        ([("a", {"x": 1}), ("a", {"x": 1})], [("a", {"x": 1})], "extra_call"),
        ([("a", {"x": 2})], [("a", {"x": 1})], "wrong_argument"),
    ],
)
def test_diagnose_names_the_first_thing_that_went_wrong(predicted, label, diagnosis):
    from toolbench.core.score import diagnose
    from toolbench.foundation.records import Call, ExecError

    calls = [Call.trusted(n, a) for n, a in predicted]
    gold = [Call.trusted(n, a) for n, a in label]
    assert diagnose(calls, gold, [ExecError(error_type="state:mismatch", message="m")]) == diagnosis


def test_percentile_interpolates_between_order_statistics_like_numpy():
    from toolbench.core.score import percentile

    assert percentile([40.0, 10.0, 30.0, 20.0], 0.5) == 25.0  # mean of the middle two
    assert percentile([float(v) for v in range(1, 101)], 0.95) == pytest.approx(95.05)
    assert percentile([7.0], 0.95) == 7.0


def test_cost_counts_cached_tokens_but_times_only_what_was_asked():
    from toolbench.core.backends.base import BackendResponse
    from toolbench.core.score import cost_summary
    from toolbench.pipelines.results import cost_cells

    usage = {"prompt_tokens": 100, "completion_tokens": 10}
    answers = [
        BackendResponse(text="a", usage=usage, latency_ms=20.0),
        BackendResponse(text="b", usage=usage, latency_ms=40.0),
        BackendResponse(text="c", usage=usage, latency_ms=None, cached=True),
        BackendResponse(text="d", latency_ms=1000.0),  # an endpoint that sent no usage
    ]
    cost = cost_summary(answers)
    assert (cost.requests, cost.cached, cost.timed, cost.usage_reported) == (4, 1, 3, 3)
    assert (cost.prompt_tokens, cost.completion_tokens) == (300, 30)
    assert cost.latency_p50_ms == 40.0 and cost.latency_p95_ms == pytest.approx(40 + 0.9 * 960)
    assert cost_cells(cost) == ["4", "1", "300 (3 of 4 reported)", "30 (3 of 4 reported)", "40", "904"]
    silent = cost_summary([BackendResponse(text="x", cached=True)])
    assert (silent.prompt_tokens, silent.latency_p50_ms) == (None, None)
    assert cost_cells(silent) == ["1", "1", "n/a", "n/a", "n/a", "n/a"]
    # neither field reaches the answer cache: a cached answer never carries an old latency
    assert "latency_ms" not in answers[0].model_dump() and "cached" not in answers[2].model_dump()
