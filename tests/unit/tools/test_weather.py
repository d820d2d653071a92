"""weather: the location rule, normalised request log with defaults filled, deterministic
synthetic results, templates that render valid programs, and exact scorer verdicts."""

from __future__ import annotations

import json
import math
import random

import pytest

from tests.helpers import assert_wrong
from toolbench.core.calls import PythonFormat
from toolbench.core.executor import execute
from toolbench.core.score import Scorer, flatten_state
from toolbench.core.templating import TemplateSet, load_yaml, packaged_templates_root
from toolbench.foundation.records import Call, Program, Task
from toolbench.pipelines.results import score_text
from toolbench.tools.weather import PLACES, POSTCODES, Weather
from toolbench.tools.weather import simulator as sim

PY = PythonFormat(Weather.format_context())


def run(text: str):
    return execute(PY.parse(text), ["weather"])


def requests(text: str) -> list[dict]:
    result = run(text)
    assert result.ok, result.errors
    return result.state["weather"]["requests"]


def call(text: str):
    result = run(text)
    assert result.ok, result.errors
    return result.results[-1]


# ------------------------------------------------------------------------------ schema
def test_functions_and_schemas():
    assert list(Weather.specs) == [
        "current_weather",
        "forecast",
        "air_pollution",
        "geocode",
        "reverse_geocode",
    ]
    props = Weather.specs["forecast"].parameters["properties"]
    assert props["lat"] == {
        "type": "number",
        "minimum": -90,
        "maximum": 90,
        "description": "Latitude in degrees, -90 to 90 (with lon).",
        "default": None,
    }
    assert props["cnt"]["default"] == 40 and (props["cnt"]["minimum"], props["cnt"]["maximum"]) == (1, 40)
    assert (
        props["units"]["enum"] == ["standard", "metric", "imperial"]
        and props["units"]["default"] == "standard"
    )
    assert len(props["lang"]["enum"]) == 10 and props["lang"]["default"] == "en"
    assert props["mode"]["enum"] == ["json", "xml"] and props["country"]["default"] == "US"
    assert "required" not in Weather.specs["current_weather"].parameters  # the rule decides, not the schema
    assert Weather.specs["air_pollution"].parameters["required"] == ["lat", "lon"]
    assert Weather.specs["geocode"].parameters["properties"]["limit"]["default"] == 5


# ------------------------------------------------------------------------------- rules
@pytest.mark.parametrize(
    ("text", "error_type", "fragment"),
    [
        (
            "API.current_weather()",
            "weather:location",
            "exactly one location: city, zip_code, or lat with lon; got none",
        ),
        ('API.current_weather("Paris", lat=1, lon=2)', "weather:location", "got city and lat/lon"),
        ('API.forecast(city="Paris", zip_code="10001")', "weather:location", "got city and zip_code"),
        ("API.current_weather(lat=48.85)", "weather:location", "lat and lon must be given together"),
        ("API.forecast(lon=2.35, cnt=3)", "weather:location", "lat and lon must be given together"),
        ('API.current_weather("Paris", country="FR")', "weather:location", 'give a city as "Name, FR"'),
        (
            'API.current_weather(lat=1, lon=2, country="fr")',
            "weather:location",
            "country goes with zip_code only",
        ),
        ('API.current_weather(city="  ")', "weather:location", "city must not be empty"),
        ('API.geocode(" , ")', "weather:location", "city must not be empty"),
        ('API.current_weather(zip_code=" ", country="GB")', "weather:location", "zip_code must not be empty"),
        (
            'API.current_weather(zip_code="SW1A 1AA")',
            "weather:zip_code",
            "a US zip code has 5 digits, got 'SW1A 1AA'",
        ),
        (
            'API.forecast(zip_code="9410")',
            "weather:zip_code",
            "pass country for a postal code outside the US",
        ),
        ("API.current_weather(lat=91, lon=0)", "schema:maximum", "91 is greater than the maximum of 90"),
        ("API.air_pollution(lat=0, lon=-180.5)", "schema:minimum", "-180.5 is less than the minimum of -180"),
        ('API.forecast("Paris", cnt=41)', "schema:maximum", "41 is greater than the maximum of 40"),
        ('API.geocode("Paris", limit=0)', "schema:minimum", "0 is less than the minimum of 1"),
        ('API.current_weather("Paris", units="celsius")', "schema:enum", "'celsius' is not one of"),
        ('API.current_weather("Paris", lang="english")', "schema:enum", "'english' is not one of"),
        ('API.forecast("Paris", mode="html")', "schema:enum", "'html' is not one of"),
        ('API.current_weather(zip_code="10001", country="USA")', "schema:pattern", "does not match"),
        ("API.current_weather(zip_code=94103)", "schema:type", "94103 is not of type 'string'"),
        ("API.current_weather(lat=None, lon=None)", "schema:type", "None is not of type 'number'"),
        ("API.air_pollution(lat=1)", "schema:required", "'lon' is a required property"),
        ('API.current_weather(town="Paris")', "schema:additionalProperties", "'town' was unexpected"),
    ],
)
def test_rules_give_namespaced_error_types(text, error_type, fragment):
    prog = PY.parse('API.geocode("Oslo")\n' + text)  # the failing call is the second one
    result = execute(prog, ["weather"])
    assert [e.error_type for e in result.errors] == [error_type]
    assert fragment in result.errors[0].message
    assert result.errors[0].call_index == 1
    # a refused call is not logged: only the first request is in the state
    assert result.state["weather"]["requests"] == [{"function": "geocode", "city": "oslo", "limit": 5}]


# ------------------------------------------------------------------- state and defaults
def test_requests_are_normalised_with_every_default_filled():
    assert requests(
        'API.current_weather(city="  new   york ,us ")\n'
        'API.forecast(zip_code=" sw1a   1aa", country="gb", cnt=3, units="metric", lang="fr", mode="xml")\n'
        "API.air_pollution(lat=48.8566, lon=2.3522)\n"
        'API.geocode("Paris")\n'
        "API.reverse_geocode(lat=-33.8688, lon=151.2093, limit=2)\n"
        "API.current_weather(lat=10, lon=-20.004)"
    ) == sorted(
        [
            {
                "function": "current_weather",
                "city": "new york, us",
                "units": "standard",
                "lang": "en",
                "mode": "json",
            },
            {
                "function": "forecast",
                "zip_code": "SW1A 1AA",
                "country": "GB",
                "cnt": 3,
                "units": "metric",
                "lang": "fr",
                "mode": "xml",
            },
            {"function": "air_pollution", "lat": 48.86, "lon": 2.35},
            {"function": "geocode", "city": "paris", "limit": 5},
            {"function": "reverse_geocode", "lat": -33.87, "lon": 151.21, "limit": 2},
            {
                "function": "current_weather",
                "lat": 10,
                "lon": -20.0,
                "units": "standard",
                "lang": "en",
                "mode": "json",
            },
        ],
        key=repr,
    )
    assert requests('API.forecast(zip_code="10001")') == [
        {
            "function": "forecast",
            "zip_code": "10001",
            "country": "US",
            "cnt": 40,
            "units": "standard",
            "lang": "en",
            "mode": "json",
        }
    ]


def test_explicit_defaults_and_call_order_do_not_change_the_state():
    plain = run('API.forecast("Rome")\nAPI.current_weather(zip_code="10001")\nAPI.geocode("Oslo")')
    explicit = run(
        'API.geocode(city="Oslo", limit=5)\n'
        'API.current_weather(zip_code="10001", country="US", units="standard", lang="en", mode="json")\n'
        'API.forecast(city="rome", cnt=40, units="standard", lang="en", mode="json")'
    )
    assert plain.ok and explicit.ok
    assert plain.state == explicit.state  # canonical order: equal even as plain dicts
    assert flatten_state(plain.state) == flatten_state(explicit.state)


def test_setup_seeds_the_request_log_without_sharing_it():
    setup = {"requests": [{"function": "geocode", "city": "oslo", "limit": 5}]}
    result = execute(PY.parse('API.geocode("Rome")'), ["weather"], {"weather": setup})
    assert len(result.state["weather"]["requests"]) == 2
    assert setup == {"requests": [{"function": "geocode", "city": "oslo", "limit": 5}]}
    assert Weather().state() == {"requests": []}


# ---------------------------------------------------------------------------- results
def test_results_are_deterministic_and_pinned():
    first = call('API.current_weather("Paris", units="metric")')
    assert first == call('API.current_weather(city=" paris ", units="metric")')
    # pinned: synthetic results must not change between runs or machines
    assert first == {
        "name": "Paris",
        "country": "FR",
        "coord": {"lat": 48.86, "lon": 2.35},
        "weather": {"main": "Mist", "description": "mist"},
        "temp": 12.64,
        "feels_like": 10.54,
        "humidity": 33,
        "wind_speed": 8.4,
        "units": "metric",
    }


def test_the_same_place_has_the_same_weather_however_it_is_named():
    by_city = call('API.current_weather("Paris", units="metric", lang="fr")')
    by_coords = call('API.current_weather(lat=48.86, lon=2.35, units="metric", lang="fr")')
    by_zip = call('API.current_weather(zip_code="75001", country="FR", units="metric", lang="fr")')
    assert by_city["temp"] == by_coords["temp"] == by_zip["temp"]
    assert by_city["weather"]["description"] == "brume"
    assert by_coords["name"] == by_zip["name"] == "Paris"


def test_units_convert_the_same_reading():
    kelvin = call('API.current_weather("Tokyo")')["temp"]
    celsius = call('API.current_weather("Tokyo", units="metric")')["temp"]
    fahrenheit = call('API.current_weather("Tokyo", units="imperial")')
    assert kelvin == pytest.approx(celsius + 273.15, abs=0.011)
    assert fahrenheit["temp"] == pytest.approx(celsius * 1.8 + 32, abs=0.02)
    metric_wind = call('API.current_weather("Tokyo", units="metric")')["wind_speed"]
    assert fahrenheit["wind_speed"] == pytest.approx(metric_wind * 2.237, abs=0.01)


def test_forecast_has_cnt_steps_three_hours_apart():
    full = call('API.forecast("Sydney", units="metric")')
    assert full["cnt"] == len(full["list"]) == 40 and full["city"]["country"] == "AU"
    assert [s["dt_txt"] for s in full["list"][:3]] == [
        "2024-06-01 15:00:00",
        "2024-06-01 18:00:00",
        "2024-06-01 21:00:00",
    ]
    assert full["list"][-1]["dt_txt"] == "2024-06-06 12:00:00"
    assert call('API.forecast("Sydney", cnt=3, units="metric")')["list"] == full["list"][:3]
    xml = call('API.forecast("Sydney", cnt=2, mode="xml", lang="de")')
    assert xml.startswith("<weatherdata><location><name>Sydney</name>") and xml.count("<time ") == 2


def test_current_weather_as_xml():
    xml = call('API.current_weather(zip_code="10001", units="imperial", mode="xml")')
    assert xml.startswith('<current><city name="New York" country="US">')
    assert 'unit="fahrenheit"' in xml and 'unit="mph"' in xml


def test_air_pollution_index_and_components():
    for lat, lon in ((28.61, 77.21), (-33.87, 151.21), (64.15, -21.94)):
        result = call(f"API.air_pollution(lat={lat}, lon={lon})")
        assert 1 <= result["aqi"] <= 5 and result["coord"] == {"lat": lat, "lon": lon}
        assert set(result["components"]) == {"co", "no2", "o3", "so2", "pm2_5", "pm10"}


def test_geocode_matches_names_and_qualifiers():
    springfields = call('API.geocode("Springfield", limit=3)')
    assert [p["state"] for p in springfields] == ["IL", "MA", "MO"]
    assert call('API.geocode("paris, tx")') == [
        {"name": "Paris", "country": "US", "state": "TX", "lat": 33.66, "lon": -95.56}
    ]
    assert [p["country"] for p in call('API.geocode("Paris")')] == ["FR", "US", "US"]
    assert call('API.geocode("Atlantis")') == []


def test_reverse_geocode_is_nearest_first():
    near = call("API.reverse_geocode(lat=48.86, lon=2.35, limit=3)")
    assert near[0]["name"] == "Paris" and near[0]["distance_km"] == 0.0
    assert len(near) == 3 and near[1]["distance_km"] <= near[2]["distance_km"]
    across_the_date_line = call("API.reverse_geocode(lat=-18.0, lon=-179.9, limit=1)")
    assert across_the_date_line[0]["name"] == "Suva"


def test_grid_search_equals_a_scan_of_every_place():
    def scan(lat, lon, k):
        scale = math.cos(math.radians(lat))
        scored = []
        for index, place in enumerate(PLACES):
            dlon = abs(lon - place["lon"])
            dlon = 360 - dlon if dlon > 180 else dlon
            scored.append(((lat - place["lat"]) ** 2 + (dlon * scale) ** 2, index, place))
        scored.sort()
        return [(round(111.2 * math.sqrt(d), 1), place) for d, _, place in scored[:k]]

    rng = random.Random(7)
    for _ in range(400):
        lat, lon, k = rng.uniform(-90, 90), rng.uniform(-180, 180), rng.randint(1, 5)
        assert sim._nearest(lat, lon, k) == scan(lat, lon, k), (lat, lon, k)


def test_final_reply_summarises_every_result():
    prog = PY.parse(
        'API.current_weather("Paris", units="metric")\n'
        'API.forecast("Rome", cnt=2, units="imperial")\n'
        "API.air_pollution(lat=1.35, lon=103.82)\n"
        'API.geocode("Springfield", limit=2)\n'
        "API.reverse_geocode(lat=48.86, lon=2.35, limit=1)\n"
        'API.current_weather("Oslo", mode="xml")\n'
        'API.geocode("Atlantis")'
    )
    reply = Weather.final_reply(list(prog), execute(prog, ["weather"]).results)
    assert reply.startswith(
        "It is 12.64 °C in Paris, FR (mist, humidity 33%); over the next 2 forecast steps in Rome, IT"
    )
    assert "the air quality index at 1.35, 103.82 is" in reply
    assert "2 places match 'Springfield': Springfield, IL, US (39.8, -89.64); Springfield, MA, US" in reply
    assert "the nearest place to 48.86, 2.35 is Paris, FR (0.0 km away)" in reply
    assert "the current weather for Oslo came back as XML" in reply
    assert reply.endswith("no place matches 'Atlantis'.")
    assert Weather.final_reply([], []) == "Done."


# --------------------------------------------------------------------- data and templates
def test_shipped_tables_cover_the_template_pools():
    root = packaged_templates_root()
    world = load_yaml(root / "pools" / "world_cities.yaml")
    assert len(world) >= 150 and len({c["name"] for c in world}) == len(world)
    places: dict = {}
    for place in PLACES:  # the pool's cities come first; homonyms (Portland, ME) after them
        places.setdefault((place["name"], place["country"]), (place["lat"], place["lon"]))
    for city in world:
        assert set(city) == {"name", "country", "lat", "lon"}
        assert places[(city["name"], city["country"])] == (city["lat"], city["lon"])
        assert (
            round(city["lat"], 2) == city["lat"] and -90 <= city["lat"] <= 90 and -180 <= city["lon"] <= 180
        )
    pools = root / "weather" / "pools"
    for code in load_yaml(pools / "us_zips.yaml"):
        assert (code, "US") in POSTCODES
    for post in load_yaml(pools / "postcodes.yaml"):
        assert (post["code"], post["country"]) in POSTCODES
    for name in load_yaml(pools / "place_names.yaml"):
        assert len(call(f"API.geocode({json.dumps(name)})")) >= 2, name


def test_every_template_renders_programs_that_run_and_agree():
    entries = TemplateSet("weather", Weather.templates_dir()).entries
    splits = [e.entry.split for e in entries]
    assert len(entries) >= 12 and splits.count("test") >= 3
    for entry in entries:
        assert 2 <= len(entry.entry.queries) <= 5, entry.id
        for seed in range(15):
            rendered = entry.render(random.Random(seed))
            states = []
            for action in rendered.actions:
                result = execute(PY.parse(action), ["weather"])
                assert result.ok, (entry.id, rendered.query, action, result.errors)
                states.append(flatten_state(result.state))
            assert all(state == states[0] for state in states), (entry.id, rendered.actions)


# ----------------------------------------------------------------------------- scorer
GOLD = 'API.current_weather(city="Paris", units="metric")\nAPI.current_weather(city="Rome", units="metric")'
TASK = Task(
    id="w1",
    tool="weather",
    category="parallel",
    query="Current weather in Paris and Rome, in Celsius.",
    labels=[PY.parse(GOLD)],
)
PARIS = '{"city": "paris", "function": "current_weather", "lang": "en", "mode": "json", "units": "metric"}'
ROME = PARIS.replace("paris", "rome")


def score(text: str):
    return score_text(TASK, text)


def test_gold_state_items():
    # the whole state is two items, one per request (a dict inside a list is compared whole)
    items = flatten_state(Scorer().gold(TASK)[0].execution.state)
    assert sorted(items.items()) == [(("weather.requests[]", PARIS), 1), (("weather.requests[]", ROME), 1)]


@pytest.mark.parametrize(
    "text",
    [
        GOLD,
        # no order rule: the other order is the same multiset of requests
        'API.current_weather(city="Rome", units="metric")\nAPI.current_weather(city="Paris", units="metric")',
        # explicit defaults and a differently spaced city name
        'API.current_weather(city=" paris ", units="metric", lang="en", mode="json")\n'
        'API.current_weather(city="Rome", country="US", units="metric")',
    ],
)
def test_right_answers_succeed(text):
    result = score(text)
    assert result.success and result.state_f1 == 1.0 and result.error_type is None


def test_ast_match_needs_a_label_order_but_fills_defaults():
    assert score(GOLD.replace('units="metric")', 'units="metric", lang="en")')).ast_match
    assert not score(
        'API.current_weather(city="Rome", units="metric")\nAPI.current_weather(city="Paris", units="metric")'
    ).ast_match


PARIS_CALL = 'API.current_weather(city="Paris", units="metric")'


@pytest.mark.parametrize(
    ("name", "text", "error_type", "f1"),
    [
        # Gold has 2 items. Predicted items and overlaps, by hand:
        # Rome in Fahrenheit: predicted {Paris ok, Rome wrong}: P = 1/2, R = 1/2
        (
            "wrong value",
            GOLD.replace('"Rome", units="metric"', '"Rome", units="imperial"'),
            "state:mismatch",
            0.5,
        ),
        # the Rome call is missing: predicted {Paris}: P = 1/1, R = 1/2 -> 2 * 0.5 / 1.5
        ("missing call", PARIS_CALL, "state:mismatch", 2 / 3),
        # a forecast nobody asked for: predicted 3 items, 2 right: P = 2/3, R = 1 -> 0.8
        ("extra call", GOLD + '\nAPI.forecast(city="Rome", units="metric")', "state:mismatch", 0.8),
        # Paris asked twice: the multiset has Paris x2, only one counts: P = 2/3, R = 1 -> 0.8
        ("repeated call", PARIS_CALL + "\n" + GOLD, "state:mismatch", 0.8),
        # forecast instead of current weather for Rome: P = 1/2, R = 1/2
        (
            "wrong function",
            GOLD.replace('current_weather(city="Rome"', 'forecast(city="Rome"'),
            "state:mismatch",
            0.5,
        ),
        # a city given with a country code is another request: P = 1/2, R = 1/2
        ("other city spelling", GOLD.replace('"Rome"', '"Rome, IT"'), "state:mismatch", 0.5),
        # run stops at the bad call, Paris is logged: predicted {Paris}: P = 1, R = 1/2
        (
            "schema violation",
            GOLD.replace('"Rome", units="metric"', '"Rome", units="celsius"'),
            "schema:enum",
            2 / 3,
        ),
        # a country without a zip code breaks the location rule; Paris already logged: 2/3
        (
            "rule violation",
            GOLD.replace('"Rome", units', '"Rome", country="IT", units'),
            "weather:location",
            2 / 3,
        ),
        # the rule fails on the first call, nothing is logged: P = 0
        ("rule first", 'API.current_weather(units="metric")\n' + GOLD, "weather:location", 0.0),
        ("unknown function", GOLD.replace("current_weather", "get_weather"), "schema:unknown_function", 0.0),
        ("syntax", GOLD[:-1], "parse:syntax", 0.0),
    ],
)
def test_wrong_predictions_get_exact_verdicts(name, text, error_type, f1):
    assert_wrong(score(text), error_type, f1, name)


def test_structured_prediction_with_null_location_is_a_schema_error():
    prediction = Program([Call(name="current_weather", arguments={"city": "Paris", "zip_code": None})])
    result = Scorer().score(TASK, prediction)
    assert result.error_type == "schema:type" and result.state_f1 == 0.0
