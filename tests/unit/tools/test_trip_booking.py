"""trip_booking: rules with exact error types, deterministic results and filled defaults, the
value objects Loc/Date in both call formats, exact scorer verdicts, and the shipped templates."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolbench.core.calls import JsonFormat, PythonFormat
from toolbench.core.executor import execute
from toolbench.core.score import Scorer, flatten_state
from toolbench.core.task_files import verify_tasks
from toolbench.foundation.errors import CallParseError
from toolbench.foundation.records import Call, Program, Task
from toolbench.pipelines.generate import GenerateConfig, SampleFactory
from toolbench.pipelines.results import score_text
from toolbench.tools.trip_booking import TOOL, TripBooking

PY = PythonFormat(TOOL.format_context())
JS = JsonFormat(TOOL.format_context())

TRIP = 'API.select_booking_type("trip")\n'
HOTEL = 'API.select_booking_type("hotel")\n'
TRIP_FIELDS = 'API.set_origin(Loc("Paris"))\nAPI.set_destination(Loc("Rome"))\nAPI.set_departure_date(Date(4, 12, 2025))\n'
HOTEL_FIELDS = (
    'API.set_hotel_location(Loc("Rome"))\nAPI.set_checkin_date(Date(4, 12, 2025))\n'
    "API.set_checkout_date(Date(4, 15, 2025))\n"
)


def run(text: str):
    return execute(PY.parse(text), ["trip_booking"])


def call(name: str, **arguments) -> Call:
    return Call(name=name, arguments=arguments)


# ------------------------------------------------------------------------------ rules


@pytest.mark.parametrize(
    ("text", "error_type", "fragment"),
    [
        # order: booking type first (once), search last
        (
            'API.set_origin(Loc("Paris"))',
            "trip_booking:order",
            "select_booking_type() must be the first call",
        ),
        ("API.set_num_adults(2)", "trip_booking:order", "before set_num_adults()"),
        ("API.search_trips()", "trip_booking:order", "select_booking_type() must be the first call"),
        (TRIP + 'API.select_booking_type("hotel")', "trip_booking:order", "and only one"),
        (TRIP + TRIP_FIELDS + "API.search_trips()\nAPI.set_num_adults(2)", "trip_booking:order", "last call"),
        (TRIP + TRIP_FIELDS + "API.search_trips()\nAPI.search_trips()", "trip_booking:order", "last call"),
        # booking type: trip settings need a trip, hotel settings a hotel
        (TRIP + 'API.set_hotel_location(Loc("Rome"))', "trip_booking:booking_type", "a hotel setting"),
        (TRIP + "API.set_num_rooms(2)", "trip_booking:booking_type", "it needs hotel or trip_and_hotel"),
        (TRIP + 'API.select_room_type("king")', "trip_booking:booking_type", "a hotel setting"),
        (TRIP + "API.set_max_room_price(100)", "trip_booking:booking_type", "a hotel setting"),
        (HOTEL + 'API.select_transportation("train")', "trip_booking:booking_type", "a trip setting"),
        (
            HOTEL + "API.set_return_date(Date(4, 19, 2025))",
            "trip_booking:booking_type",
            "but the booking type is 'hotel'",
        ),
        (
            HOTEL + "API.set_min_ticket_price(10)",
            "trip_booking:booking_type",
            "it needs trip or trip_and_hotel",
        ),
        # dates: strictly later, whichever is set first
        (
            TRIP + TRIP_FIELDS + "API.set_return_date(Date(4, 12, 2025))",
            "trip_booking:dates",
            "must be after",
        ),
        (
            TRIP + "API.set_return_date(Date(4, 10, 2025))\nAPI.set_departure_date(Date(4, 12, 2025))",
            "trip_booking:dates",
            "return date 2025-04-10 must be after departure date 2025-04-12",
        ),
        (
            HOTEL + "API.set_checkout_date(Date(1, 2, 2026))\nAPI.set_checkin_date(Date(12, 30, 2026))",
            "trip_booking:dates",
            "checkout date 2026-01-02 must be after checkin date 2026-12-30",
        ),
        # range: minimum not above maximum, whichever is set first
        (
            TRIP + "API.set_max_ticket_price(100)\nAPI.set_min_ticket_price(250)",
            "trip_booking:range",
            "ticket price: minimum 250 is above maximum 100",
        ),
        (
            HOTEL + "API.set_min_room_price(300)\nAPI.set_max_room_price(99.5)",
            "trip_booking:range",
            "room price: minimum 300 is above maximum 99.5",
        ),
        # missing: the fields a search needs
        (
            TRIP + 'API.set_origin(Loc("Paris"))\nAPI.search_trips()',
            "trip_booking:missing",
            "a trip search needs set_destination(), set_departure_date()",
        ),
        (
            HOTEL
            + 'API.set_hotel_location(Loc("Rome"))\nAPI.set_checkin_date(Date(4, 12, 2025))\nAPI.search_trips()',
            "trip_booking:missing",
            "needs set_checkout_date()",
        ),
        (
            'API.select_booking_type("trip_and_hotel")\n' + TRIP_FIELDS + "API.search_trips()",
            "trip_booking:missing",
            "a trip_and_hotel search needs set_hotel_location(), set_checkin_date(), set_checkout_date()",
        ),
        # value: what the schema cannot say
        (TRIP + 'API.set_origin(Loc("   "))', "trip_booking:value", "origin must not be blank"),
        (TRIP + 'API.set_departure_date("2025-4-12")', "trip_booking:value", "YYYY-MM-DD"),
        (TRIP + 'API.set_departure_date("2025-02-30")', "trip_booking:value", "got '2025-02-30'"),
        (HOTEL + 'API.set_checkin_date("12 April 2025")', "trip_booking:value", "real date"),
        # the schema's own checks
        ('API.select_booking_type("flight")', "schema:enum", "'flight' is not one of"),
        (TRIP + 'API.select_transportation("car")', "schema:enum", "'car' is not one of"),
        (TRIP + "API.set_num_adults(0)", "schema:minimum", "less than the minimum of 1"),
        (TRIP + "API.set_max_ticket_price(-5)", "schema:minimum", "less than the minimum of 0"),
        (TRIP + 'API.set_origin("")', "schema:minLength", "should be non-empty"),
        (TRIP + "API.set_departure_date(20250412)", "schema:type", "is not of type 'string'"),
        (
            TRIP + TRIP_FIELDS + 'API.search_trips(sort_by="price")',
            "schema:additionalProperties",
            "unexpected",
        ),
    ],
)
def test_rules_give_namespaced_error_types(text, error_type, fragment):
    program = PY.parse(text)
    result = execute(program, ["trip_booking"])
    assert [e.error_type for e in result.errors] == [error_type]
    assert fragment in result.errors[0].message
    assert result.errors[0].call_index == len(program) - 1


def test_malformed_iso_dates_arriving_as_json_are_a_tool_error():
    text = '[{"name": "select_booking_type", "arguments": {"value": "hotel"}}, {"name": "set_checkin_date", "arguments": {"value": "2025-13-01"}}]'
    result = execute(JS.parse(text), ["trip_booking"])
    assert [e.error_type for e in result.errors] == ["trip_booking:value"]


def test_settings_in_any_order_and_travellers_for_any_booking_type():
    text = (
        'API.select_booking_type("trip_and_hotel")\nAPI.set_num_children(2)\n'
        + HOTEL_FIELDS
        + "API.set_num_rooms(2)\n"
        + TRIP_FIELDS
        + "API.set_num_adults(3)\nAPI.search_trips()"
    )
    assert run(text).ok
    assert run(
        HOTEL + "API.set_num_adults(2)\nAPI.set_num_children(1)\n" + HOTEL_FIELDS + "API.search_trips()"
    ).ok
    # equal bounds and a one-night stay are fine
    assert run(HOTEL + "API.set_min_room_price(100)\nAPI.set_max_room_price(100)\n" + HOTEL_FIELDS).ok


# ------------------------------------------------------------------------ state, results


def test_state_is_normalised_with_defaults_filled_for_the_booked_parts():
    result = run(
        'API.select_booking_type("trip_and_hotel")\nAPI.set_origin(Loc("  New   York "))\n'
        'API.set_destination(Loc("ROME"))\nAPI.set_departure_date(Date(4, 12, 2025))\n'
        'API.set_hotel_location(Loc("Rome"))\nAPI.set_checkin_date(Date(month=4, day=12, year=2025))\n'
        'API.set_checkout_date("2025-04-15")\nAPI.set_max_room_price(120.0)\nAPI.search_trips()'
    )
    assert result.ok
    assert result.state == {
        "trip_booking": {
            "booking_type": "trip_and_hotel",
            "criteria": {
                "num_adults": 1,
                "num_children": 0,
                "transportation": "any",
                "num_rooms": 1,
                "room_type": "any",
                "origin": "new york",
                "destination": "rome",
                "departure_date": "2025-04-12",
                "hotel_location": "rome",
                "checkin_date": "2025-04-12",
                "checkout_date": "2025-04-15",
                "max_room_price": 120.0,
            },
            "searched": True,
        }
    }
    # results keep the place names as written (whitespace tidied), not casefolded
    assert result.results[-1]["from"] == "New York" and result.results[-1]["hotel_city"] == "Rome"


def test_only_the_booked_parts_get_defaults():
    assert TripBooking().state() == {
        "booking_type": None,
        "criteria": {"num_adults": 1, "num_children": 0},
        "searched": False,
    }
    assert run(TRIP).state["trip_booking"]["criteria"] == {
        "num_adults": 1,
        "num_children": 0,
        "transportation": "any",
    }
    assert run(HOTEL).state["trip_booking"]["criteria"] == {
        "num_adults": 1,
        "num_children": 0,
        "num_rooms": 1,
        "room_type": "any",
    }


def test_explicit_defaults_reach_the_same_state_and_results():
    plain = run(TRIP + TRIP_FIELDS + "API.search_trips()")
    explicit = run(
        TRIP
        + 'API.select_transportation("any")\nAPI.set_num_adults(1)\nAPI.set_num_children(0)\n'
        + TRIP_FIELDS
        + "API.search_trips()"
    )
    assert plain.ok and explicit.ok
    assert plain.state == explicit.state
    assert plain.results[-1] == explicit.results[-1]


def test_results_are_deterministic_within_bounds_and_change_with_the_criteria():
    text = (
        'API.select_booking_type("trip_and_hotel")\nAPI.select_transportation("train")\n'
        + TRIP_FIELDS
        + HOTEL_FIELDS
        + "API.set_min_ticket_price(50)\nAPI.set_max_ticket_price(80)\nAPI.set_max_room_price(140)\nAPI.search_trips()"
    )
    first, second = run(text), run(text)
    assert first.ok and first.results == second.results
    found = first.results[-1]
    assert all(t["transportation"] == "train" and 50 <= t["price"] <= 80 for t in found["trips"])
    assert all(t["departs"].startswith("2025-04-12 ") for t in found["trips"])
    assert all(h["price_per_night"] <= 140 and 3.0 <= h["rating"] <= 5.0 for h in found["hotels"])
    other = run(text.replace("Rome", "Milan")).results[-1]
    assert other != found
    # the setters return nothing; only the search has results
    assert first.results[:-1] == [None] * (len(first.results) - 1)


def test_setup_gives_the_initial_state():
    result = execute(
        PY.parse("API.set_num_rooms(2)\nAPI.search_trips()"),
        ["trip_booking"],
        {
            "trip_booking": {
                "booking_type": "hotel",
                "criteria": {
                    "hotel_location": "rome",
                    "checkin_date": "2025-04-12",
                    "checkout_date": "2025-04-14",
                },
            }
        },
    )
    assert result.ok and result.state["trip_booking"]["criteria"]["num_rooms"] == 2
    with pytest.raises(ValueError, match="booking_type must be one of"):
        TripBooking({"booking_type": "cruise"})


def test_final_reply_is_one_sentence_about_the_results():
    program = PY.parse(
        'API.select_booking_type("trip_and_hotel")\n' + TRIP_FIELDS + HOTEL_FIELDS + "API.search_trips()"
    )
    result = execute(program, ["trip_booking"])
    reply = TOOL.final_reply(list(program), result.results)
    found = result.results[-1]
    cheapest = min(t["price"] for t in found["trips"])
    assert reply.startswith(f"I found {found['trip_matches']} trip options from Paris to Rome")
    assert f"${cheapest:,} per person" in reply and f"{found['hotel_matches']} hotels in Rome" in reply
    assert reply.endswith(".") and reply.count(".") <= 2  # one sentence (a rating like 4.1 has a dot)
    hotel_only = execute(PY.parse(HOTEL + HOTEL_FIELDS + "API.search_trips()"), ["trip_booking"])
    assert TOOL.final_reply([], hotel_only.results).startswith("I found ")
    assert TOOL.final_reply([], [None, None]) == "Done."


# ------------------------------------------------------------------------- value objects

ROUND_TRIP = Program(
    [
        call("select_booking_type", value="trip_and_hotel"),
        call("set_origin", value='Rio "Galeão" de Janeiro'),
        call("set_destination", value="São Paulo"),
        call("set_departure_date", value="2025-12-31"),
        call("set_return_date", value="2026-01-02"),
        call("set_hotel_location", value="São Paulo"),
        call("set_checkin_date", value="0999-02-28"),
        call("set_checkout_date", value="2025-4-12"),  # not canonical: stays a plain string
        call("search_trips"),
    ]
)


def test_python_format_writes_loc_and_date_and_both_formats_round_trip():
    text = PY.render(ROUND_TRIP)
    assert 'API.set_origin(Loc("Rio \\"Galeão\\" de Janeiro"))' in text
    assert "API.set_departure_date(Date(12, 31, 2025))" in text
    assert "API.set_checkin_date(Date(2, 28, 999))" in text
    assert 'API.set_checkout_date("2025-4-12")' in text
    assert PY.parse(text) == ROUND_TRIP
    assert JS.parse(JS.render(ROUND_TRIP)) == ROUND_TRIP
    assert '"value": "2025-12-31"' in JS.render(ROUND_TRIP)


def test_constructors_accept_keywords_an_iso_string_and_assignments():
    program = PY.parse(
        'd = Date(year=2025, month=4, day=12)\nhome = Loc(name="Paris")\n'
        'API.set_departure_date(d)\nAPI.set_return_date(Date("2025-04-19"))\nAPI.set_origin(home)'
    )
    assert [c.arguments["value"] for c in program] == ["2025-04-12", "2025-04-19", "Paris"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Date(2, 30, 2025)", "day 30 does not exist: February 2025 has 28 days"),
        ("Date(2, 29, 2025)", "February 2025 has 28 days"),
        ("Date(13, 1, 2025)", "month 13 is not between 1 and 12 (the order is month, day, year)"),
        ("Date(2025, 4, 12)", "month 2025 is not between 1 and 12"),
        ("Date(4, 12)", "missing year"),
        ("Date(4, 12, 2025, 1)", "takes 3 arguments"),
        ("Date(4.0, 12, 2025)", "month must be a whole number"),
        ("Date(True, 12, 2025)", "month must be a whole number"),
        ("Date(4, 12, year=2025, hour=3)", "unexpected argument 'hour'"),
        ('Date("12/04/2025")', "is not a date"),
        ("Loc()", "takes exactly one place name"),
        ("Loc(5)", "the place must be a string"),
        ('Loc(city="Paris")', "unexpected argument 'city'"),
    ],
)
def test_impossible_values_are_parse_value_errors_that_say_why(text, fragment):
    with pytest.raises(CallParseError) as caught:
        PY.parse(f"API.set_departure_date({text})")
    assert caught.value.error_type == "parse:value"
    assert fragment in caught.value.message


def test_leap_days_exist_only_in_leap_years():
    assert PY.parse("API.set_checkin_date(Date(2, 29, 2024))")[0].arguments == {"value": "2024-02-29"}
    with pytest.raises(CallParseError, match="February 2100 has 28 days"):
        PY.parse("API.set_checkin_date(Date(2, 29, 2100))")


def test_schemas_carry_the_formats_the_renderer_uses():
    assert TOOL.specs["set_origin"].parameters["properties"]["value"]["format"] == "location"
    assert TOOL.specs["set_checkout_date"].parameters["properties"]["value"]["format"] == "date"
    assert "format" not in TOOL.specs["set_num_adults"].parameters["properties"]["value"]


@settings(deadline=None)  # examples: the profile in tests/conftest.py
@given(
    st.dates(),
    st.text(max_size=12),
    st.sampled_from(["2025-4-12", "2025-02-30", "20250412", "", "0000-01-01"]),
)
def test_round_trip_property(day, place, odd):
    program = Program(
        [
            call("set_departure_date", value=day.isoformat()),
            call("set_hotel_location", value=place),
            call("set_checkout_date", value=odd),
        ]
    )
    assert PY.parse(PY.render(program)) == program
    assert JS.parse(JS.render(program)) == program


# ---------------------------------------------------------------------------------- scorer

GOLD = (
    'API.select_booking_type("trip")\nAPI.select_transportation("train")\nAPI.set_origin(Loc("Paris"))\n'
    'API.set_destination(Loc("Rome"))\nAPI.set_departure_date(Date(4, 12, 2025))\n'
    "API.set_return_date(Date(4, 19, 2025))\nAPI.set_max_ticket_price(150)\nAPI.search_trips()"
)
TASK = Task(
    id="tb1",
    tool="trip_booking",
    category="multi_call",
    query="Round-trip train tickets Paris to Rome, April 12 to April 19, 2025, at most $150.",
    labels=[PY.parse(GOLD)],
)


def score(text: str):
    return score_text(TASK, text)


def test_gold_state_items():
    # 10 items: booking type, 8 criteria (3 of them filled defaults), searched
    assert sorted(flatten_state(Scorer().gold(TASK)[0].execution.state)) == sorted(
        [
            ("trip_booking.booking_type", '"trip"'),
            ("trip_booking.criteria.num_adults", "1"),
            ("trip_booking.criteria.num_children", "0"),
            ("trip_booking.criteria.transportation", '"train"'),
            ("trip_booking.criteria.origin", '"paris"'),
            ("trip_booking.criteria.destination", '"rome"'),
            ("trip_booking.criteria.departure_date", '"2025-04-12"'),
            ("trip_booking.criteria.return_date", '"2025-04-19"'),
            ("trip_booking.criteria.max_ticket_price", "150"),
            ("trip_booking.searched", "true"),
        ]
    )


def test_gold_succeeds_in_any_settings_order_with_explicit_defaults_and_as_json():
    result = score(GOLD)
    assert result.success and result.ast_match and result.state_f1 == 1.0
    reordered = GOLD.replace(
        'API.select_transportation("train")\nAPI.set_origin(Loc("Paris"))',
        'API.set_origin(Loc("Paris"))\nAPI.select_transportation("train")',
    )
    result = score(reordered)
    assert result.success and result.state_f1 == 1.0 and not result.ast_match
    result = score(GOLD.replace("API.search_trips()", "API.set_num_adults(1)\nAPI.search_trips()"))
    assert result.success and not result.ast_match
    as_json = JS.parse(JS.render(PY.parse(GOLD)))
    assert as_json[4].arguments == {"value": "2025-04-12"}
    result = Scorer().score(TASK, as_json)
    assert result.success and result.ast_match


@pytest.mark.parametrize(
    ("name", "text", "error_type", "f1"),
    [
        # Gold has 10 items (above). F1 = 2PR/(P+R) over the flattened states.
        # one criterion differs: 9 of 10 items shared on each side
        ("wrong value", GOLD.replace('Loc("Rome")', 'Loc("Milan")'), "state:mismatch", 9 / 10),
        # no return date: 9 predicted items, all in gold -> P = 1, R = 9/10
        (
            "missing call",
            GOLD.replace("API.set_return_date(Date(4, 19, 2025))\n", ""),
            "state:mismatch",
            18 / 19,
        ),
        # an extra minimum price: 11 predicted items, 10 shared -> P = 10/11, R = 1
        (
            "extra call",
            GOLD.replace("API.search_trips()", "API.set_min_ticket_price(50)\nAPI.search_trips()"),
            "state:mismatch",
            20 / 21,
        ),
        # an extra call that changes a filled default: num_children 0 -> 2, still 10 items, 9 shared
        (
            "extra call on a default",
            GOLD.replace("API.search_trips()", "API.set_num_children(2)\nAPI.search_trips()"),
            "state:mismatch",
            9 / 10,
        ),
        # min instead of max: the max item is missing and a min item is extra -> 9/10 both ways
        (
            "wrong function",
            GOLD.replace("set_max_ticket_price", "set_min_ticket_price"),
            "state:mismatch",
            9 / 10,
        ),
        # search before the last setting: stops there with 9 items (no max price), all in gold
        (
            "search not last",
            GOLD.replace(
                "API.set_max_ticket_price(150)\nAPI.search_trips()",
                "API.search_trips()\nAPI.set_max_ticket_price(150)",
            ),
            "trip_booking:order",
            18 / 19,
        ),
        # a setting before the booking type: stops at call 0; state = booking_type null, adults 1,
        # children 0, searched false (4 items), 2 shared -> P = 2/4, R = 2/10 -> F1 = 2/7
        (
            "wrong order",
            GOLD.replace(
                'API.select_booking_type("trip")\nAPI.select_transportation("train")\nAPI.set_origin(Loc("Paris"))',
                'API.set_origin(Loc("Paris"))\nAPI.select_booking_type("trip")\nAPI.select_transportation("train")',
            ),
            "trip_booking:order",
            2 / 7,
        ),
        # hotel booking: stops at select_transportation; state = booking_type hotel, adults, children,
        # rooms, room type, searched false (6 items), 2 shared -> P = 1/3, R = 1/5 -> F1 = 1/4
        ("wrong booking type", GOLD.replace('"trip"', '"hotel"'), "trip_booking:booking_type", 1 / 4),
        # return before departure: stops at call 5 with 8 items (searched false), 7 shared
        # -> P = 7/8, R = 7/10 -> F1 = 7/9
        ("dates", GOLD.replace("Date(4, 19, 2025)", "Date(4, 10, 2025)"), "trip_booking:dates", 7 / 9),
        # negative price: stops at call 6 with 9 items (searched false), 8 shared
        # -> P = 8/9, R = 8/10 -> F1 = 16/19
        ("schema violation", GOLD.replace("(150)", "(-150)"), "schema:minimum", 16 / 19),
        ("impossible date", GOLD.replace("Date(4, 19, 2025)", "Date(4, 31, 2025)"), "parse:value", 0.0),
        ("syntax", GOLD[:-1], "parse:syntax", 0.0),
    ],
)
def test_wrong_predictions_get_exact_verdicts(name, text, error_type, f1):
    result = score(text)
    assert result.success is False, name
    assert result.error_type == error_type, name
    assert result.state_f1 == pytest.approx(f1), name


def test_no_search_keeps_partial_credit():
    # 9 of 10 items shared on each side: searched false instead of true
    result = score(GOLD.replace("\nAPI.search_trips()", ""))
    assert result.error_type == "state:mismatch" and result.state_f1 == pytest.approx(9 / 10)


# ------------------------------------------------------------------------------- templates


def test_templates_render_programs_that_execute_cleanly():
    factory = SampleFactory(GenerateConfig(tools=["trip_booking"], n=1, seed=7))
    candidates = factory.make_range(0, 400)
    assert [c.reject for c in candidates if c.reject] == []
    assert {e.entry.split for e in factory.entries["trip_booking"]} == {"train", "test"}


def test_frozen_test_tasks_verify():
    n_tasks, n_labels, problems = verify_tasks(TOOL.tasks_file())
    assert problems == [] and n_tasks >= 100 and n_labels > n_tasks
