"""weather: an OpenWeather-like API (current weather, 5-day/3-hour forecast, air pollution,
direct and reverse geocoding), simulated offline.

Rule (`weather:location`): a weather call names its place in exactly one way: `city`, or
`zip_code` (with `country`, default US), or `lat` together with `lon`; `country` goes with a
zip code only. Rule (`weather:zip_code`): a US zip code has five digits (ZIP+4 allowed).
Everything else (enums, ranges, types) is in the JSON schema.

The state compared by the scorer is the log of requests, each a dict with the function, the
normalised place (city casefolded, spaces collapsed, one space after each comma; zip code
upper-cased; coordinates rounded to 2 decimals) and every option with its default filled in.
The log is a list, which the scorer compares as a multiset of whole requests: parallel calls
("Paris and Rome") match in any order, and an omitted default equals an explicit one.

Results are synthetic but deterministic: the weather of a place is a function of the coordinates
of the named place within 60 km (else of its own, to 0.1 degree), so "Paris", zip 75001 in FR and
(48.86, 2.35) agree; numbers come from `stable_hash` arithmetic. Places come from `places.jsonl`
(the shared pool `world_cities` plus homonyms) and `postcodes.jsonl` beside this module, read once
at import (`.jsonl` because that is what the package data globs ship for tools).
"""

from __future__ import annotations

import json
import math
import re
from html import escape
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema

from toolbench.core.simulator import Simulator, canonical_order, function, stable_hash
from toolbench.foundation.errors import ToolError
from toolbench.foundation.records import Call

# ---------------------------------------------------------------------------------- types
Units = Literal["standard", "metric", "imperial"]
Lang = Literal["en", "de", "es", "fr", "it", "ja", "nl", "pt", "ru", "zh_cn"]
Mode = Literal["json", "xml"]
LANGS: tuple[str, ...] = Lang.__args__  # type: ignore[attr-defined]
UNITS: tuple[str, ...] = Units.__args__  # type: ignore[attr-defined]

# Optional location arguments: omitted means "not this way". The schema is a plain string/number
# with its range, like every other optional argument (an explicit null is `schema:type`); pydantic's
# `anyOf [..., null]` would hide the range from readers such as `toolbench tools show`, and
# `"type": [..., "null"]` lists crash that command.
OptionalText = Annotated[str | None, WithJsonSchema({"type": "string"})]
OptionalLat = Annotated[float | None, WithJsonSchema({"type": "number", "minimum": -90, "maximum": 90})]
OptionalLon = Annotated[float | None, WithJsonSchema({"type": "number", "minimum": -180, "maximum": 180})]
Lat = Annotated[float, Field(ge=-90, le=90)]
Lon = Annotated[float, Field(ge=-180, le=180)]
Country = Annotated[str, Field(pattern=r"^[A-Za-z]{2}$")]
Count = Annotated[int, Field(ge=1, le=40)]
Limit = Annotated[int, Field(ge=1, le=5)]

_US_ZIP = re.compile(r"\d{5}(-\d{4})?")

# --------------------------------------------------------------------------------- places
_HERE = Path(__file__).resolve().parent


def _load(name: str) -> list[dict[str, Any]]:
    with (_HERE / name).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


PLACES: tuple[dict[str, Any], ...] = tuple(_load("places.jsonl"))
POSTCODES: dict[tuple[str, str], dict[str, Any]] = {
    (p["zip_code"], p["country"]): p for p in _load("postcodes.jsonl")
}
_BY_NAME: dict[str, list[dict[str, Any]]] = {}
for _place in PLACES:
    _BY_NAME.setdefault(_place["name"].casefold(), []).append(_place)
# A 10-degree grid over the places, for nearest-place searches (a scan of every place per call
# would dominate the generator's time on coordinate requests).
_CELL = 10
_COLS = 360 // _CELL
_GRID: dict[tuple[int, int], list[tuple[float, float, int, dict[str, Any]]]] = {}
for _index, _place in enumerate(PLACES):
    _key = (int((_place["lat"] + 90) // _CELL), int((_place["lon"] + 180) // _CELL) % _COLS)
    _GRID.setdefault(_key, []).append((_place["lat"], _place["lon"], _index, _place))
_ALL = tuple(entry for cell in _GRID.values() for entry in cell)

# ------------------------------------------------------------------------------ weather
_MAIN = ("Clear", "Clouds", "Clouds", "Rain", "Thunderstorm", "Snow", "Mist")
_RAIN, _SNOW = 3, 5
_DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "en": ("clear sky", "few clouds", "overcast clouds", "light rain", "thunderstorm", "snow", "mist"),
    "de": ("klarer Himmel", "ein paar Wolken", "bedeckt", "leichter Regen", "Gewitter", "Schnee", "Nebel"),
    "es": ("cielo claro", "algo de nubes", "nubes", "lluvia ligera", "tormenta", "nieve", "niebla"),
    "fr": ("ciel dégagé", "peu nuageux", "couvert", "légère pluie", "orage", "neige", "brume"),
    "it": (
        "cielo sereno",
        "poche nuvole",
        "cielo coperto",
        "pioggia leggera",
        "temporale",
        "neve",
        "foschia",
    ),
    "ja": ("晴天", "薄い雲", "厚い雲", "小雨", "雷雨", "雪", "霧"),
    "nl": ("onbewolkt", "licht bewolkt", "zwaar bewolkt", "lichte regen", "onweersbui", "sneeuw", "mist"),
    "pt": ("céu limpo", "algumas nuvens", "nublado", "chuva leve", "trovoada", "neve", "névoa"),
    "ru": ("ясно", "небольшая облачность", "пасмурно", "небольшой дождь", "гроза", "снег", "туман"),
    "zh_cn": ("晴", "少云", "阴", "小雨", "雷阵雨", "雪", "薄雾"),
}
_XML_SYMBOLS = {
    lang: {text: f'<symbol name="{escape(text, quote=True)}"/>' for text in texts}
    for lang, texts in _DESCRIPTIONS.items()
}
_SYMBOL = {"standard": " K", "metric": " °C", "imperial": " °F"}
_XML_UNIT = {"standard": "kelvin", "metric": "celsius", "imperial": "fahrenheit"}
_WIND_UNIT = {"standard": "m/s", "metric": "m/s", "imperial": "mph"}
_AQI = ("good", "fair", "moderate", "poor", "very poor")
# The simulated clock stands still: forecasts start at 2024-06-01 15:00 UTC, every 3 hours.
_STEPS = tuple(f"2024-06-{1 + (15 + 3 * i) // 24:02d} {(15 + 3 * i) % 24:02d}:00:00" for i in range(40))
# Daily swing of temperature (warmest mid-afternoon) and per-step hash salt, for forecast steps.
_DIURNAL = tuple(
    round(5 * math.sin(2 * math.pi * (((15 + 3 * i) % 24) - 9) / 24) - 1.5, 2) for i in range(40)
)
_SALT = tuple((i * 0x9E37) ^ (i // 8) for i in range(40))
_LINEAR = {"standard": (1.0, 273.15), "metric": (1.0, 0.0), "imperial": (1.8, 32.0)}
# The same conversions from tenths of a degree Celsius to hundredths of the unit, in integers.
_HUNDREDTHS = {"standard": (10, 27315), "metric": (10, 0), "imperial": (18, 3200)}
_DIURNAL10 = tuple(round(d * 10) for d in _DIURNAL)
# per forecast step i: (its time, the hash shift i % 17, its salt, its diurnal swing in tenths)
_STEP_ROWS = tuple(zip(_STEPS, (i % 17 for i in range(40)), _SALT, _DIURNAL10, strict=True))


def _convert(celsius: float, units: str) -> float:
    scale, offset = _LINEAR[units]
    return round(celsius * scale + offset, 2)


def _cell(lat: float, lon: float) -> tuple[int, float]:
    """(hash, base temperature in °C) of the 0.1° grid cell of a place: June, warmer nearer the
    equator, colder in the southern winter. Remembered for float coordinates other than 0 (an
    int, or -0.0, is a key equal to another value that hashes otherwise)."""
    if type(lat) is not float or type(lon) is not float or not lat or not lon:
        return _work_out_cell(lat, lon)
    found = _CELLS.get((lat, lon))
    if found is None:
        found = _work_out_cell(lat, lon)
        if len(_CELLS) >= 1 << 14:
            _CELLS.clear()
        _CELLS[(lat, lon)] = found
    return found


def _work_out_cell(lat: float, lon: float) -> tuple[int, float]:
    h = stable_hash(round(lat, 1), round(lon, 1))
    base = 33 - 0.3 * abs(lat) - (0.3 * abs(lat) if lat < 0 else 0) + (h % 121) / 10 - 6
    return h, base


_CELLS: dict[tuple[float, float], tuple[int, float]] = {}
# (kind, name or code, label or country) -> `_find_place` of a named place
_PLACE_MEMO: dict[tuple[str | None, ...], tuple[dict[str, Any], tuple[float, float]]] = {}


_NOW: dict[tuple[int, float, str], tuple[int, int, float, float, float]] = {}


def _now(h: int, celsius: float, units: str) -> tuple[int, int, float, float, float]:
    """The current weather of a grid cell (its hash and base temperature) in `units`: condition,
    humidity, wind speed, temperature, feels-like temperature. Remembered: the same places come
    back in thousands of requests, and `round` is slow."""
    key = (h, celsius, units)
    found = _NOW.get(key)
    if found is None:
        condition = _condition(h, celsius)
        humidity = 25 + (h >> 11) % 71
        wind = ((h >> 16) % 140) / 10
        feels = celsius - wind / 4 if celsius < 18 else celsius + humidity / 40
        if units == "imperial":
            wind = round(wind * 2.237, 2)
        found = (condition, humidity, wind, _convert(celsius, units), _convert(feels, units))
        if len(_NOW) >= 1 << 14:
            _NOW.clear()
        _NOW[key] = found
    return found


def _condition(h: int, celsius: float) -> int:
    index = (h >> 7) % len(_MAIN)
    if index == _RAIN and celsius <= 0:
        return _SNOW
    if index == _SNOW and celsius > 2:
        return _RAIN
    return index


_NORM_CITIES: dict[str, str] = {}


def _norm_city(city: str) -> str:
    """`_normalise_city`, remembered (the same city names recur); only for a str (a subclass may
    hash or compare otherwise, another type fails as it did)."""
    if type(city) is not str:
        return _normalise_city(city)
    found = _NORM_CITIES.get(city)
    if found is None:
        found = _normalise_city(city)
        if len(_NORM_CITIES) >= 1 << 14:
            _NORM_CITIES.clear()
        _NORM_CITIES[city] = found
    return found


def _normalise_city(city: str) -> str:
    parts = (" ".join(part.split()) for part in city.casefold().split(","))
    return ", ".join(part for part in parts if part)


def _label(city: str) -> str:
    return " ".join(city.split(",")[0].split())


def _match(city: str) -> list[dict[str, Any]]:
    """Places named like `city` ("Name[, state][, country]"): every qualifier must be the place's
    country or state code."""
    parts = [part.strip().upper() for part in city.split(",")]
    candidates = _BY_NAME.get(" ".join(parts[0].split()).casefold(), [])
    qualifiers = [q for q in parts[1:] if q]
    if not qualifiers:
        return candidates
    return [p for p in candidates if all(q in (p["country"], p.get("state")) for q in qualifiers)]


# the (row, column) steps of each ring of cells around a point, in `_nearest`'s order
_RINGS = tuple(
    tuple(
        (drow, dcol)
        for drow in range(-ring, ring + 1)
        for dcol in (range(-ring, ring + 1) if abs(drow) == ring else (-ring, ring))
    )
    for ring in range(4)
)


def _nearest(lat: float, lon: float, k: int) -> list[tuple[float, dict[str, Any]]]:
    """The k places closest to a point, closest first, as (approximate distance in km, place).

    Searches rings of grid cells outwards (three at most) until no unseen cell can hold a closer
    place; a point far from every place (or near a pole) falls back to scanning them all."""
    scale = math.cos(math.radians(lat))
    row0, col0 = int((lat + 90) // _CELL), int((lon + 180) // _CELL)
    found: list[tuple[float, int, dict[str, Any]]] = []
    grid = _GRID
    for ring, cells in enumerate(_RINGS):
        # the cells of this ring, once each (a ring is at most 7 < 36 columns wide: no wrap
        # brings a column back), in the order the rows and columns are walked
        for drow, dcol in cells:
            cell = grid.get((row0 + drow, (col0 + dcol) % _COLS))
            if cell is not None:
                for plat, plon, index, place in cell:
                    dlon = abs(lon - plon)
                    if dlon > 180:
                        dlon = 360 - dlon
                    found.append(((lat - plat) ** 2 + (dlon * scale) ** 2, index, place))
        if len(found) >= k:
            found.sort()  # (distance, index) pairs are unique, so places are never compared
            if found[k - 1][0] <= (ring * _CELL * scale) ** 2:
                return [(round(111.2 * math.sqrt(d), 1), place) for d, _, place in found[:k]]
    everything = []
    for plat, plon, index, place in _ALL:
        dlon = abs(lon - plon)
        if dlon > 180:
            dlon = 360 - dlon
        everything.append(((lat - plat) ** 2 + (dlon * scale) ** 2, index, place))
    everything.sort()
    return [(round(111.2 * math.sqrt(d), 1), place) for d, _, place in everything[:k]]


def _named_near(lat: float, lon: float, km: float = 60) -> dict[str, Any] | None:
    """The closest place within `km` of a point, or None: only the 3x3 grid cells around the
    point can hold one (10 degrees is more than 60 km of longitude below 80 degrees latitude)."""
    if abs(lat) >= 80:
        return None
    scale = math.cos(math.radians(lat))
    row0, col0 = int((lat + 90) // _CELL), int((lon + 180) // _CELL)
    best, nearest = (km / 111.2) ** 2, None
    for row in (row0 - 1, row0, row0 + 1):
        for col in (col0 - 1, col0, col0 + 1):
            for plat, plon, _, place in _GRID.get((row, col % _COLS), ()):
                dlon = abs(lon - plon)
                if dlon > 180:
                    dlon = 360 - dlon
                d = (lat - plat) ** 2 + (dlon * scale) ** 2
                if d <= best:
                    best, nearest = d, place
    return nearest


def _public(place: dict[str, Any]) -> dict[str, Any]:
    return {k: place[k] for k in ("name", "country", "state", "lat", "lon") if k in place}


class Weather(Simulator):
    name = "weather"
    description = (
        "OpenWeather-style weather data: current conditions, 5-day forecast in 3-hour steps, "
        "air pollution, and geocoding of place names and coordinates."
    )

    def reset(self, setup: dict[str, Any] | None = None) -> None:
        self.requests: list[dict[str, Any]] = list((setup or {}).get("requests", []))

    def state(self) -> dict[str, Any]:
        # The scorer reads the log as a multiset; a canonical order also makes the states of
        # two call orders equal as plain dicts (the generator's fast path for alternatives).
        requests = self.requests if len(self.requests) < 2 else sorted(self.requests, key=repr)
        return {"requests": list(requests)}

    def snapshot(self) -> dict[str, Any]:
        requests = self.requests if len(self.requests) < 2 else canonical_order(self.requests)
        return {"requests": requests}

    # ----------------------------------------------------------------- rules
    @staticmethod
    def _location(
        city: str | None,
        zip_code: str | None,
        country: str,
        lat: float | None,
        lon: float | None,
    ) -> dict[str, Any]:
        """The normalised place of a weather call, after checking it is given in exactly one way."""
        ways = (city is not None) + (zip_code is not None) + (lat is not None or lon is not None)
        if ways != 1:
            given = [
                name
                for name, value in (
                    ("city", city),
                    ("zip_code", zip_code),
                    ("lat/lon", lat if lat is not None else lon),
                )
                if value is not None
            ]
            raise ToolError(
                "weather:location",
                "give exactly one location: city, zip_code, or lat with lon; got "
                + (" and ".join(given) or "none"),
            )
        if (lat is None) != (lon is None):
            raise ToolError("weather:location", "lat and lon must be given together")
        country = country.upper()
        if zip_code is None and country != "US":
            raise ToolError(
                "weather:location",
                f'country goes with zip_code only; give a city as "Name, {country}" instead',
            )
        if city is not None:
            normalised = _norm_city(city)
            if not normalised:
                raise ToolError("weather:location", "city must not be empty")
            return {"city": normalised}
        if zip_code is not None:
            code = " ".join(zip_code.split()).upper()
            if not code:
                raise ToolError("weather:location", "zip_code must not be empty")
            if country == "US" and not _US_ZIP.fullmatch(code):
                raise ToolError(
                    "weather:zip_code",
                    f"a US zip code has 5 digits, got {code!r}; "
                    "pass country for a postal code outside the US",
                )
            return {"zip_code": code, "country": country}
        return {"lat": round(lat, 2), "lon": round(lon, 2)}  # type: ignore[arg-type]

    @staticmethod
    def _place(location: dict[str, Any], city: str | None) -> tuple[dict[str, Any], tuple[float, float]]:
        """`_find_place`, remembered for named places (a city, or a zip code: the same ones
        recur in thousands of requests; coordinates are left to `_find_place`). The place is
        only read."""
        if "lat" in location:
            return Weather._find_place(location, city)
        if "city" in location:
            key: tuple[str | None, ...] = ("city", location["city"], city)
        else:
            key = ("zip", location["zip_code"], location["country"])
        found = _PLACE_MEMO.get(key)
        if found is None:
            found = Weather._find_place(location, city)
            if len(_PLACE_MEMO) >= 1 << 14:
                _PLACE_MEMO.clear()
            _PLACE_MEMO[key] = found
        return found

    @staticmethod
    def _find_place(location: dict[str, Any], city: str | None) -> tuple[dict[str, Any], tuple[float, float]]:
        """Where the weather is (a known place, or a stable made-up one for unknown names), and
        the anchor its weather is computed from: the named place within 60 km when there is one,
        so "Paris", zip 75001 in FR and (48.86, 2.35) all report the same weather."""
        if "city" in location:
            found = _match(location["city"])
            if found:
                return found[0], (found[0]["lat"], found[0]["lon"])
            h = stable_hash(location["city"])
            lat, lon = round((h % 14000) / 100 - 60, 2), round(((h >> 12) % 36000) / 100 - 180, 2)
            return {"name": _label(city or ""), "country": "", "lat": lat, "lon": lon}, (lat, lon)
        if "zip_code" in location:
            place = POSTCODES.get((location["zip_code"], location["country"]))
            if place is None:
                h = stable_hash(location["zip_code"], location["country"])
                place = {
                    "name": location["zip_code"],
                    "country": location["country"],
                    "lat": round((h % 14000) / 100 - 60, 2),
                    "lon": round(((h >> 12) % 36000) / 100 - 180, 2),
                }
            near = _named_near(place["lat"], place["lon"])
            anchor = near or place
            return place, (anchor["lat"], anchor["lon"])
        lat, lon = location["lat"], location["lon"]
        near = _named_near(lat, lon)
        if near is None:
            return {"name": "", "country": "", "lat": lat, "lon": lon}, (lat, lon)
        return {"name": near["name"], "country": near["country"], "lat": lat, "lon": lon}, (
            near["lat"],
            near["lon"],
        )

    # ------------------------------------------------------------- functions
    @function
    def current_weather(
        self,
        city: OptionalText = None,
        zip_code: OptionalText = None,
        country: Country = "US",
        lat: OptionalLat = None,
        lon: OptionalLon = None,
        units: Units = "standard",
        lang: Lang = "en",
        mode: Mode = "json",
    ) -> dict[str, Any] | str:
        """Get the current weather at one place. Give the place in exactly one way: city, or zip_code (with country outside the US), or lat together with lon.

        Args:
            city: City name, optionally with a state and/or country code, e.g. "Paris" or "Paris, FR".
            zip_code: Zip or postal code, e.g. "94103" or "SW1A 1AA".
            country: Two-letter ISO country code of zip_code (US by default); only with zip_code.
            lat: Latitude in degrees, -90 to 90 (with lon).
            lon: Longitude in degrees, -180 to 180 (with lat).
            units: standard (Kelvin, m/s), metric (Celsius, m/s) or imperial (Fahrenheit, mph).
            lang: Language of the description: en English, de German, es Spanish, fr French, it Italian, ja Japanese, nl Dutch, pt Portuguese, ru Russian, zh_cn Simplified Chinese.
            mode: Response format: json or xml.
        """
        location = self._location(city, zip_code, country, lat, lon)
        self.requests.append(
            {"function": "current_weather", **location, "units": units, "lang": lang, "mode": mode}
        )
        place, anchor = self._place(location, city)
        condition, humidity, wind, temp, feels = _now(*_cell(*anchor), units)
        description = _DESCRIPTIONS[lang][condition]
        if mode == "xml":
            return (
                f"<current><city name={_attr(place['name'])} country={_attr(place['country'])}>"
                f'<coord lat="{place["lat"]}" lon="{place["lon"]}"/></city>'
                f'<temperature value="{temp}" unit="{_XML_UNIT[units]}"/>'
                f'<humidity value="{humidity}" unit="%"/>'
                f'<wind speed="{wind}" unit="{_WIND_UNIT[units]}"/>'
                f"<weather value={_attr(description)}/></current>"
            )
        return {
            "name": place["name"],
            "country": place["country"],
            "coord": {"lat": place["lat"], "lon": place["lon"]},
            "weather": {"main": _MAIN[condition], "description": description},
            "temp": temp,
            "feels_like": feels,
            "humidity": humidity,
            "wind_speed": wind,
            "units": units,
        }

    @function
    def forecast(
        self,
        city: OptionalText = None,
        zip_code: OptionalText = None,
        country: Country = "US",
        lat: OptionalLat = None,
        lon: OptionalLon = None,
        cnt: Count = 40,
        units: Units = "standard",
        lang: Lang = "en",
        mode: Mode = "json",
    ) -> dict[str, Any] | str:
        """Get the 5-day forecast in 3-hour steps (up to 40 steps) for one place. Give the place in exactly one way: city, or zip_code (with country outside the US), or lat together with lon.

        Args:
            city: City name, optionally with a state and/or country code, e.g. "Paris" or "Paris, FR".
            zip_code: Zip or postal code, e.g. "94103" or "SW1A 1AA".
            country: Two-letter ISO country code of zip_code (US by default); only with zip_code.
            lat: Latitude in degrees, -90 to 90 (with lon).
            lon: Longitude in degrees, -180 to 180 (with lat).
            cnt: Number of 3-hour steps to return, 1 to 40 (40 = the full 5 days).
            units: standard (Kelvin, m/s), metric (Celsius, m/s) or imperial (Fahrenheit, mph).
            lang: Language of the descriptions: en English, de German, es Spanish, fr French, it Italian, ja Japanese, nl Dutch, pt Portuguese, ru Russian, zh_cn Simplified Chinese.
            mode: Response format: json or xml.
        """
        location = self._location(city, zip_code, country, lat, lon)
        self.requests.append(
            {"function": "forecast", **location, "cnt": cnt, "units": units, "lang": lang, "mode": mode}
        )
        place, anchor = self._place(location, city)
        h, base = _cell(*anchor)
        descriptions = _DESCRIPTIONS[lang]
        # The hot loop of the tool: integer arithmetic in tenths of a degree, one division per
        # temperature (an int divided by 100 prints as the short decimal, so no round() calls).
        factor, offset = _HUNDREDTHS[units]
        base10 = round(base * 10)
        steps = []
        for stamp, shift, salt, diurnal in _STEP_ROWS[:cnt]:
            bits = (h >> shift) ^ salt
            tenths = base10 + diurnal + bits % 31
            condition = (bits >> 7) % 7
            if condition == _RAIN and tenths <= 0:
                condition = _SNOW
            elif condition == _SNOW and tenths > 20:
                condition = _RAIN
            steps.append(
                {
                    "dt_txt": stamp,
                    "temp": (tenths * factor + offset) / 100,
                    "humidity": 30 + (bits >> 5) % 66,
                    "description": descriptions[condition],
                }
            )
        if mode == "xml":
            unit, symbols = _XML_UNIT[units], _XML_SYMBOLS[lang]
            times = "".join(
                f'<time from="{step["dt_txt"]}"><temperature value="{step["temp"]}" unit="{unit}"/>'
                f'<humidity value="{step["humidity"]}" unit="%"/>{symbols[step["description"]]}</time>'
                for step in steps
            )
            return (
                f"<weatherdata><location><name>{escape(place['name'])}</name>"
                f"<country>{escape(place['country'])}</country></location>"
                f"<forecast>{times}</forecast></weatherdata>"
            )
        return {
            "city": {
                "name": place["name"],
                "country": place["country"],
                "coord": {"lat": place["lat"], "lon": place["lon"]},
            },
            "cnt": cnt,
            "units": units,
            "list": steps,
        }

    @function
    def air_pollution(self, lat: Lat, lon: Lon) -> dict[str, Any]:
        """Get the current air pollution at a point: air quality index (1 good to 5 very poor) and pollutant concentrations in μg/m³.

        Args:
            lat: Latitude in degrees, -90 to 90.
            lon: Longitude in degrees, -180 to 180.
        """
        lat, lon = round(lat, 2), round(lon, 2)
        self.requests.append({"function": "air_pollution", "lat": lat, "lon": lon})
        h = stable_hash("air", round(lat, 1), round(lon, 1))
        aqi = 1 + h % 5
        spread = (h >> 4) % 100 / 100
        return {
            "coord": {"lat": lat, "lon": lon},
            "aqi": aqi,
            "components": {
                "co": round(180 + 110 * aqi * (1 + spread), 2),
                "no2": round(4 + 18 * aqi * spread + aqi, 2),
                "o3": round(30 + 25 * aqi * (1 - spread / 2), 2),
                "so2": round(0.5 + 6 * aqi * spread, 2),
                "pm2_5": round(2 + 12 * (aqi - 1) + 8 * spread, 2),
                "pm10": round(4 + 20 * (aqi - 1) + 10 * spread, 2),
            },
        }

    @function
    def geocode(self, city: str, limit: Limit = 5) -> list[dict[str, Any]]:
        """Find places by name and get their coordinates (direct geocoding).

        Args:
            city: Place name, optionally with a state and/or country code, e.g. "London" or "London, GB".
            limit: Maximum number of places to return, 1 to 5.
        """
        normalised = _norm_city(city)
        if not normalised:
            raise ToolError("weather:location", "city must not be empty")
        self.requests.append({"function": "geocode", "city": normalised, "limit": limit})
        return [_public(place) for place in _match(city)[:limit]]

    @function
    def reverse_geocode(self, lat: Lat, lon: Lon, limit: Limit = 5) -> list[dict[str, Any]]:
        """Find the named places nearest to a point (reverse geocoding), closest first.

        Args:
            lat: Latitude in degrees, -90 to 90.
            lon: Longitude in degrees, -180 to 180.
            limit: Maximum number of places to return, 1 to 5.
        """
        lat, lon = round(lat, 2), round(lon, 2)
        self.requests.append({"function": "reverse_geocode", "lat": lat, "lon": lon, "limit": limit})
        return [{**_public(place), "distance_km": km} for km, place in _nearest(lat, lon, limit)]

    # ------------------------------------------------------------------ reply
    @classmethod
    def final_reply(cls, calls: list[Call], results: list[Any]) -> str:
        parts = [_describe(call, result) for call, result in zip(calls, results, strict=False)]
        parts = [part for part in parts if part]
        if not parts:
            return "Done."
        text = "; ".join(parts)
        return text[0].upper() + text[1:] + "."


_XML_NAME = re.compile(r'(?:city name|<name)[=>]"?([^"<]*)')


def _attr(value: str) -> str:
    return '"' + escape(value, quote=True) + '"'


def _place_name(place: dict[str, Any]) -> str:
    """ "Paris, FR" or "Springfield, IL, US"."""
    return ", ".join(place[k] for k in ("name", "state", "country") if place.get(k))


def _where(place: dict[str, Any]) -> str:
    """ "in Paris, FR", or "at 0.0, -140.0" for a place with no name."""
    if not place.get("name"):
        return f"at {place['coord']['lat']}, {place['coord']['lon']}"
    return "in " + _place_name(place)


def _describe(call: Call, result: Any) -> str:
    name, args = call.name, call.arguments
    if isinstance(result, str):  # mode="xml"
        found = _XML_NAME.search(result)
        where = found.group(1) if found and found.group(1) else "the requested place"
        what = "current weather" if name == "current_weather" else "forecast"
        return f"the {what} for {where} came back as XML"
    units = args.get("units") or "standard"
    if name == "current_weather":
        weather = result["weather"]["description"]
        return f"it is {result['temp']}{_SYMBOL[units]} {_where(result)} ({weather}, humidity {result['humidity']}%)"
    if name == "forecast":
        temps = [step["temp"] for step in result["list"]]
        steps = result["cnt"]
        return (
            f"over the next {steps} forecast step{'s' if steps != 1 else ''} {_where(result['city'])} "
            f"it ranges from {min(temps)}{_SYMBOL[units]} to {max(temps)}{_SYMBOL[units]}"
        )
    if name == "air_pollution":
        aqi = result["aqi"]
        return f"the air quality index at {result['coord']['lat']}, {result['coord']['lon']} is {aqi} ({_AQI[aqi - 1]})"
    if name == "geocode":
        if not result:
            return f"no place matches {args.get('city')!r}"
        places = "; ".join(f"{_place_name(p)} ({p['lat']}, {p['lon']})" for p in result)
        return f"{len(result)} place{'s' if len(result) != 1 else ''} match{'' if len(result) != 1 else 'es'} {args.get('city')!r}: {places}"
    if name == "reverse_geocode":
        if not result:
            return "no named place is near there"
        first = result[0]
        return f"the nearest place to {args.get('lat')}, {args.get('lon')} is {_place_name(first)} ({first['distance_km']} km away)"
    return ""
