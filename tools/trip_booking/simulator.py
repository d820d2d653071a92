"""trip_booking: a booking-site search for travel tickets and hotels, after ToolBench's booking API.

Rules, as the original API enforced them:
- `select_booking_type()` is the first call (once), `search_trips()` the last (`trip_booking:order`);
- trip settings need a booking that includes a trip, hotel settings one that includes a hotel
  (`trip_booking:booking_type`); travellers (adults, children) go with either;
- the return date is after the departure, the checkout after the checkin (`trip_booking:dates`);
- a minimum price is not above its maximum (`trip_booking:range`);
- `search_trips()` needs origin, destination and departure date for a trip, hotel location,
  checkin and checkout for a hotel (`trip_booking:missing`);
- a date must be a real ISO date "YYYY-MM-DD" and a place must not be blank (`trip_booking:value`).

The state compared by the scorer is the booking type, the criteria (locations casefolded, dates
ISO, defaults filled for the parts the booking includes) and whether `search_trips()` ran.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from toolbench.core.calls import ValueConstructor
from toolbench.core.simulator import Simulator, function, stable_hash
from toolbench.foundation.errors import ToolError
from toolbench.foundation.records import Call
from toolbench.tools.trip_booking.values import DATE, LOC, parse_iso

BookingType = Literal["trip", "hotel", "trip_and_hotel"]
Transportation = Literal["flight", "train", "bus", "cruise", "any"]
RoomType = Literal["single", "double", "twin", "queen", "king", "suite", "any"]
TRANSPORTATIONS: tuple[str, ...] = Transportation.__args__  # type: ignore[attr-defined]
ROOM_TYPES: tuple[str, ...] = RoomType.__args__  # type: ignore[attr-defined]

Location = Annotated[str, Field(min_length=1, json_schema_extra={"format": "location"})]
DateValue = Annotated[str, Field(json_schema_extra={"format": "date"})]
Price = Annotated[float, Field(ge=0)]

TRIP, HOTEL = "trip", "hotel"
_PARTS: dict[str, frozenset[str]] = {
    "trip": frozenset({TRIP}),
    "hotel": frozenset({HOTEL}),
    "trip_and_hotel": frozenset({TRIP, HOTEL}),
}
_TRAVELLERS = {"num_adults": 1, "num_children": 0}
_TRIP_DEFAULTS = {"transportation": "any"}
_HOTEL_DEFAULTS = {"num_rooms": 1, "room_type": "any"}
# Defaults filled into the state, per booking type (built once: state() copies one small dict).
_DEFAULTS: dict[str | None, dict[str, Any]] = {
    None: _TRAVELLERS,
    "trip": {**_TRAVELLERS, **_TRIP_DEFAULTS},
    "hotel": {**_TRAVELLERS, **_HOTEL_DEFAULTS},
    "trip_and_hotel": {**_TRAVELLERS, **_TRIP_DEFAULTS, **_HOTEL_DEFAULTS},
}
_REQUIRED = {
    TRIP: (
        ("origin", "set_origin"),
        ("destination", "set_destination"),
        ("departure_date", "set_departure_date"),
    ),
    HOTEL: (
        ("hotel_location", "set_hotel_location"),
        ("checkin_date", "set_checkin_date"),
        ("checkout_date", "set_checkout_date"),
    ),
}
# (earlier key, later key) pairs that must be strictly ordered in time.
_DATE_PAIRS = {
    "departure_date": ("departure_date", "return_date"),
    "return_date": ("departure_date", "return_date"),
    "checkin_date": ("checkin_date", "checkout_date"),
    "checkout_date": ("checkin_date", "checkout_date"),
}
_CARRIERS = {
    "flight": ("SkyLine", "AeroJet", "BlueWing", "Northstar Air"),
    "train": ("RailConnect", "EuroExpress", "Coastal Rail"),
    "bus": ("RoadRunner", "CityLink Coaches", "Greyway"),
    "cruise": ("Ocean Star", "Harbor Lines", "Sea Breeze Cruises"),
}
_MODES = ("flight", "train", "bus")
_HOTEL_NAMES = ("Grand", "Plaza", "Harbor View", "Central", "Riverside", "Park", "Royal", "Garden")
_HOTEL_KINDS = ("Hotel", "Inn", "Suites", "Resort")


# a price bound's key -> the key of the other bound of that price
_OTHER_BOUND = {
    f"{side}_{kind}_price": f"{other}_{kind}_price"
    for kind in ("ticket", "room")
    for side, other in (("min", "max"), ("max", "min"))
}
_BOUND_KEYS = {kind: (f"min_{kind}_price", f"max_{kind}_price") for kind in ("ticket", "room")}


def _price_span(criteria: dict[str, Any], kind: str, floor: int, width: int) -> tuple[int, int]:
    """Whole-dollar prices inside the criteria's bounds: (lowest, number of possible prices)."""
    low_key, high_key = _BOUND_KEYS[kind]
    high = criteria.get(high_key)
    low = math.ceil(criteria.get(low_key, floor if high is None else min(floor, high)))
    high = low + width if high is None else max(math.floor(high), low)
    return low, high - low + 1


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,}"


def _label(value: str) -> str:
    return " ".join(value.split())


class TripBooking(Simulator):
    name = "trip_booking"
    description = (
        "Search travel tickets (flight, train, bus, cruise) and hotels, booking-site style: choose "
        "what to book, set the criteria one call at a time, then search."
    )
    constructors: ClassVar[dict[str, ValueConstructor]] = {"Loc": LOC, "Date": DATE}

    def reset(self, setup: dict[str, Any] | None = None) -> None:
        setup = setup or {}
        self.booking_type: str | None = setup.get("booking_type")
        if self.booking_type is not None and self.booking_type not in _PARTS:
            raise ValueError(
                f"setup: booking_type must be one of {', '.join(_PARTS)}, got {self.booking_type!r}"
            )
        self.parts: frozenset[str] = _PARTS[self.booking_type] if self.booking_type else frozenset()
        self.criteria: dict[str, Any] = dict(setup.get("criteria") or {})
        self.labels: dict[str, str] = {}
        self.searched = False

    def state(self) -> dict[str, Any]:
        criteria = dict(_DEFAULTS[self.booking_type])
        criteria.update(self.criteria)
        return {"booking_type": self.booking_type, "criteria": criteria, "searched": self.searched}

    # ----------------------------------------------------------------- rules
    def _check(self, function_name: str, part: str | None = None) -> None:
        if self.searched:
            raise ToolError(
                "trip_booking:order", f"search_trips() must be the last call; {function_name}() came after it"
            )
        if self.booking_type is None:
            raise ToolError(
                "trip_booking:order",
                f"select_booking_type() must be the first call, before {function_name}()",
            )
        if part is not None and part not in self.parts:
            raise ToolError(
                "trip_booking:booking_type",
                f"{function_name}() is a {part} setting, but the booking type is {self.booking_type!r}; "
                f"it needs {'trip' if part == TRIP else 'hotel'} or trip_and_hotel",
            )

    def _set_location(self, function_name: str, part: str, key: str, value: str) -> None:
        self._check(function_name, part)
        label = _label(value)
        if not label:
            raise ToolError("trip_booking:value", f"{key.replace('_', ' ')} must not be blank")
        self.labels[key] = label
        self.criteria[key] = label.casefold()

    def _set_date(self, function_name: str, part: str, key: str, value: str) -> None:
        self._check(function_name, part)
        if parse_iso(value) is None:
            raise ToolError(
                "trip_booking:value",
                f"{key.replace('_', ' ')} must be a real date written YYYY-MM-DD "
                f"(Date(month, day, year) in python calls), got {value!r}",
            )
        first, second = _DATE_PAIRS[key]
        earlier = value if key == first else self.criteria.get(first)
        later = value if key == second else self.criteria.get(second)
        if earlier is not None and later is not None and later <= earlier:  # ISO strings sort as dates
            raise ToolError(
                "trip_booking:dates",
                f"{second.replace('_', ' ')} {later} must be after {first.replace('_', ' ')} {earlier}",
            )
        self.criteria[key] = value

    def _set_bound(self, function_name: str, part: str, key: str, value: float) -> None:
        self._check(function_name, part)
        lower = key.startswith("min_")
        other = self.criteria.get(_OTHER_BOUND[key])
        if other is not None and (value > other if lower else value < other):
            low, high = (value, other) if lower else (other, value)
            raise ToolError(
                "trip_booking:range",
                f"{key[4:].replace('_', ' ')}: minimum {_number(low)} is above maximum {_number(high)}",
            )
        self.criteria[key] = value

    def _set(self, function_name: str, part: str | None, key: str, value: Any) -> None:
        self._check(function_name, part)
        self.criteria[key] = value

    # ------------------------------------------------------------- functions
    @function
    def select_booking_type(self, value: BookingType) -> None:
        """Choose what to book: travel tickets, a hotel, or both. Must be the first call.

        Args:
            value: "trip" (tickets only), "hotel" (a hotel only) or "trip_and_hotel" (both).
        """
        if self.searched or self.booking_type is not None:
            raise ToolError(
                "trip_booking:order", "select_booking_type() must be the first call, and only one"
            )
        self.booking_type = value
        self.parts = _PARTS[value]

    @function
    def select_transportation(self, value: Transportation) -> None:
        """Choose how to travel (a trip setting); "any" (the default) searches every mode.

        Args:
            value: "flight", "train", "bus", "cruise" or "any".
        """
        self._set("select_transportation", TRIP, "transportation", value)

    @function
    def set_origin(self, value: Location) -> None:
        """Set where the trip starts (a trip setting).

        Args:
            value: The departure city, e.g. Loc("Paris") in python calls, "Paris" in JSON.
        """
        self._set_location("set_origin", TRIP, "origin", value)

    @function
    def set_destination(self, value: Location) -> None:
        """Set where the trip goes (a trip setting).

        Args:
            value: The arrival city, e.g. Loc("Rome") in python calls, "Rome" in JSON.
        """
        self._set_location("set_destination", TRIP, "destination", value)

    @function
    def set_hotel_location(self, value: Location) -> None:
        """Set the city to find a hotel in (a hotel setting).

        Args:
            value: The hotel's city, e.g. Loc("Rome") in python calls, "Rome" in JSON.
        """
        self._set_location("set_hotel_location", HOTEL, "hotel_location", value)

    @function
    def set_departure_date(self, value: DateValue) -> None:
        """Set the day the trip leaves (a trip setting).

        Args:
            value: The date, e.g. Date(4, 12, 2025) (month, day, year) in python calls, "2025-04-12" in JSON.
        """
        self._set_date("set_departure_date", TRIP, "departure_date", value)

    @function
    def set_return_date(self, value: DateValue) -> None:
        """Set the day of the journey back, for a round trip (a trip setting); after the departure.

        Args:
            value: The date, e.g. Date(4, 19, 2025) (month, day, year) in python calls, "2025-04-19" in JSON.
        """
        self._set_date("set_return_date", TRIP, "return_date", value)

    @function
    def set_checkin_date(self, value: DateValue) -> None:
        """Set the hotel check-in day (a hotel setting).

        Args:
            value: The date, e.g. Date(4, 12, 2025) (month, day, year) in python calls, "2025-04-12" in JSON.
        """
        self._set_date("set_checkin_date", HOTEL, "checkin_date", value)

    @function
    def set_checkout_date(self, value: DateValue) -> None:
        """Set the hotel check-out day (a hotel setting); after the check-in.

        Args:
            value: The date, e.g. Date(4, 15, 2025) (month, day, year) in python calls, "2025-04-15" in JSON.
        """
        self._set_date("set_checkout_date", HOTEL, "checkout_date", value)

    @function
    def set_num_adults(self, value: Annotated[int, Field(ge=1, le=20)]) -> None:
        """Set how many adults travel or stay (default 1).

        Args:
            value: Number of adults.
        """
        self._set("set_num_adults", None, "num_adults", value)

    @function
    def set_num_children(self, value: Annotated[int, Field(ge=0, le=20)]) -> None:
        """Set how many children travel or stay (default 0).

        Args:
            value: Number of children.
        """
        self._set("set_num_children", None, "num_children", value)

    @function
    def set_num_rooms(self, value: Annotated[int, Field(ge=1, le=10)]) -> None:
        """Set how many hotel rooms to book (a hotel setting, default 1).

        Args:
            value: Number of rooms.
        """
        self._set("set_num_rooms", HOTEL, "num_rooms", value)

    @function
    def set_min_ticket_price(self, value: Price) -> None:
        """Set the lowest ticket price per person in dollars (a trip setting).

        Args:
            value: Minimum ticket price in US dollars.
        """
        self._set_bound("set_min_ticket_price", TRIP, "min_ticket_price", value)

    @function
    def set_max_ticket_price(self, value: Price) -> None:
        """Set the highest ticket price per person in dollars (a trip setting).

        Args:
            value: Maximum ticket price in US dollars.
        """
        self._set_bound("set_max_ticket_price", TRIP, "max_ticket_price", value)

    @function
    def set_min_room_price(self, value: Price) -> None:
        """Set the lowest hotel room price per night in dollars (a hotel setting).

        Args:
            value: Minimum nightly room price in US dollars.
        """
        self._set_bound("set_min_room_price", HOTEL, "min_room_price", value)

    @function
    def set_max_room_price(self, value: Price) -> None:
        """Set the highest hotel room price per night in dollars (a hotel setting).

        Args:
            value: Maximum nightly room price in US dollars.
        """
        self._set_bound("set_max_room_price", HOTEL, "max_room_price", value)

    @function
    def select_room_type(self, value: RoomType) -> None:
        """Choose the kind of hotel room (a hotel setting); "any" (the default) shows every kind.

        Args:
            value: "single", "double", "twin", "queen", "king", "suite" or "any".
        """
        self._set("select_room_type", HOTEL, "room_type", value)

    @function
    def search_trips(self) -> dict[str, Any]:
        """Search tickets and/or hotels with the criteria set so far. Must be the last call."""
        self._check("search_trips")
        missing = [
            setter + "()"
            for part in (TRIP, HOTEL)
            if part in self.parts
            for key, setter in _REQUIRED[part]
            if key not in self.criteria
        ]
        if missing:
            raise ToolError(
                "trip_booking:missing",
                f"a {self.booking_type} search needs {', '.join(missing)} before search_trips()",
            )
        self.searched = True
        return self._results()

    @classmethod
    def final_reply(cls, calls: list[Call], results: list[Any]) -> str:
        found = results[-1] if results and isinstance(results[-1], dict) else None
        if not found:
            return "Done."
        parts = []
        if "trips" in found:
            best = min(found["trips"], key=lambda t: t["price"])
            parts.append(
                f"{found['trip_matches']} trip options from {found['from']} to {found['to']} (cheapest: "
                f"{best['carrier']} {best['transportation']} leaving {best['departs']} at ${best['price']:,} per person)"
            )
        if "hotels" in found:
            best = min(found["hotels"], key=lambda h: h["price_per_night"])
            parts.append(
                f"{found['hotel_matches']} hotels in {found['hotel_city']} (best value: {best['name']} at "
                f"${best['price_per_night']:,} a night, rated {best['rating']})"
            )
        return f"I found {' and '.join(parts)}."

    # ------------------------------------------------------------- results
    def _results(self) -> dict[str, Any]:
        """Deterministic synthetic results: the same criteria always give the same options.

        Numbers come from a hash of the criteria with defaults filled (an explicit default gives
        the same results as an omitted one), not from an RNG object: this runs for every sample
        the generator makes, so it has to be cheap."""
        criteria = dict(_DEFAULTS[self.booking_type])
        criteria.update(self.criteria)
        if float in set(map(type, criteria.values())):  # 2.0 hashes as 2 (prices come as either)
            items = sorted(
                (k, int(v) if type(v) is float and v.is_integer() else v) for k, v in criteria.items()
            )
        else:  # the keys differ, so the pairs sort by key alone, as above
            items = sorted(criteria.items())
        digest = stable_hash(self.booking_type, items)
        found: dict[str, Any] = {}
        if TRIP in self.parts:
            mode = criteria["transportation"]
            low, span = _price_span(criteria, "ticket", 40, 900)
            departure = criteria["departure_date"]
            trips = []
            for k in range(3):
                h = (digest * (2 * k + 3) + 0x9E3779B9 * (k + 1)) & 0xFFFFFFFF
                kind = mode if mode != "any" else _MODES[h % 3]
                carriers = _CARRIERS[kind]
                trips.append(
                    {
                        "carrier": carriers[(h >> 3) % len(carriers)],
                        "transportation": kind,
                        "departs": f"{departure} {6 + (h >> 5) % 16:02d}:{15 * ((h >> 9) % 4):02d}",
                        "price": low + (h >> 11) % span,
                    }
                )
            found["from"] = self.labels.get("origin", criteria["origin"])
            found["to"] = self.labels.get("destination", criteria["destination"])
            found["trip_matches"] = 3 + digest % 40
            found["trips"] = trips
        if HOTEL in self.parts:
            city = self.labels.get("hotel_location", criteria["hotel_location"])
            low, span = _price_span(criteria, "room", 60, 400)
            hotels = []
            for k in range(2):
                h = (digest * (2 * k + 7) + 0x7F4A7C15 * (k + 1)) & 0xFFFFFFFF
                hotels.append(
                    {
                        "name": f"{_HOTEL_NAMES[h % 8]} {_HOTEL_KINDS[(h >> 4) % 4]} {city}",
                        "price_per_night": low + (h >> 7) % span,
                        "rating": (30 + (h >> 13) % 21) / 10,
                    }
                )
            found["hotel_city"] = city
            found["hotel_matches"] = 2 + (digest >> 8) % 30
            found["hotels"] = hotels
        return found
