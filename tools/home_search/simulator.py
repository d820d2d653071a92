"""home_search: a Redfin-like home search, after ToolBench's home-search API.

Rules, as the original API enforced them: the location comes first, then buy-or-rent, then any
filters in any order, and `search()` last. Minimums may not exceed maximums.
The state compared by the scorer is the search criteria (plus whether `search()` ran).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from toolbench.core.simulator import Simulator, function, stable_hash
from toolbench.foundation.errors import ToolError
from toolbench.foundation.records import Call

HomeType = Literal["House", "Townhouse", "Condo", "Land", "Multi-family", "Mobile", "Co-op"]
HOME_TYPES: tuple[str, ...] = HomeType.__args__  # type: ignore[attr-defined]
Count = Annotated[int, Field(ge=0, le=20)]
Amount = Annotated[int, Field(ge=0)]
_STREETS = ("Oak", "Maple", "Pine", "Cedar", "Lake", "Hill", "Park", "Elm")


class HomeSearch(Simulator):
    name = "home_search"
    description = (
        "Search homes to buy or rent, Redfin-style: set the criteria one call at a time, then search."
    )

    def reset(self, setup: dict[str, Any] | None = None) -> None:
        self.criteria: dict[str, Any] = dict((setup or {}).get("criteria", {}))
        self.location_label = self.criteria.get("location", "")
        self.searched = False
        self.sort_by: str | None = None

    def state(self) -> dict[str, Any]:
        return {"criteria": dict(self.criteria), "searched": self.searched, "sort_by": self.sort_by}

    # ----------------------------------------------------------------- rules
    def _check_order(self, function_name: str) -> None:
        if self.searched:
            raise ToolError(
                "home_search:order", f"search() must be the last call; {function_name}() came after it"
            )
        if function_name != "set_location" and "location" not in self.criteria:
            raise ToolError(
                "home_search:order", f"set_location() must be the first call, before {function_name}()"
            )
        if function_name not in ("set_location", "set_buy_or_rent") and "buy_or_rent" not in self.criteria:
            raise ToolError(
                "home_search:order",
                f"set_buy_or_rent() must come right after set_location(), before {function_name}()",
            )

    def _set(self, function_name: str, key: str, value: Any) -> None:
        self._check_order(function_name)
        self.criteria[key] = value

    def _set_bound(self, function_name: str, key: str, value: int, lower: bool) -> None:
        self._check_order(function_name)
        other_key = key.replace("min_", "max_") if lower else key.replace("max_", "min_")
        other = self.criteria.get(other_key)
        if other is not None and ((lower and value > other) or (not lower and value < other)):
            low, high = (value, other) if lower else (other, value)
            raise ToolError(
                "home_search:range",
                f"{key.replace('_', ' ')} conflicts: minimum {low} is above maximum {high}",
            )
        self.criteria[key] = value

    # ------------------------------------------------------------- functions
    @function
    def set_location(self, value: str) -> None:
        """Set the city to search in. Must be the first call.

        Args:
            value: City and state, e.g. "Oakland, CA".
        """
        if not value.strip():
            raise ToolError("home_search:value", "location must not be empty")
        self.location_label = " ".join(value.split())
        self._set("set_location", "location", self.location_label.casefold())

    @function
    def set_buy_or_rent(self, value: Literal["buy", "rent"]) -> None:
        """Choose between homes for sale and homes for rent. Must follow set_location.

        Args:
            value: "buy" or "rent".
        """
        self._set("set_buy_or_rent", "buy_or_rent", value)

    @function
    def select_home_type(self, home_types: Annotated[list[HomeType], Field(min_length=1)]) -> None:
        """Restrict the search to some kinds of home.

        Args:
            home_types: One or more of House, Townhouse, Condo, Land, Multi-family, Mobile, Co-op.
        """
        self._set("select_home_type", "home_types", sorted(set(home_types)))

    @function
    def set_num_beds(self, value: Count) -> None:
        """Set the minimum number of bedrooms.

        Args:
            value: Minimum bedrooms.
        """
        self._set("set_num_beds", "num_beds", value)

    @function
    def set_num_baths(self, value: Annotated[float, Field(ge=0, le=20, multiple_of=0.5)]) -> None:
        """Set the minimum number of bathrooms (half baths count 0.5).

        Args:
            value: Minimum bathrooms, e.g. 2 or 2.5.
        """
        self._set("set_num_baths", "num_baths", value)

    @function
    def set_min_price(self, value: Amount) -> None:
        """Set the lowest price in dollars (sale price, or monthly rent when renting).

        Args:
            value: Minimum price in US dollars.
        """
        self._set_bound("set_min_price", "min_price", value, lower=True)

    @function
    def set_max_price(self, value: Amount) -> None:
        """Set the highest price in dollars (sale price, or monthly rent when renting).

        Args:
            value: Maximum price in US dollars.
        """
        self._set_bound("set_max_price", "max_price", value, lower=False)

    @function
    def set_min_square_feet(self, value: Amount) -> None:
        """Set the smallest floor area.

        Args:
            value: Minimum square feet.
        """
        self._set_bound("set_min_square_feet", "min_square_feet", value, lower=True)

    @function
    def set_max_square_feet(self, value: Amount) -> None:
        """Set the largest floor area.

        Args:
            value: Maximum square feet.
        """
        self._set_bound("set_max_square_feet", "max_square_feet", value, lower=False)

    @function
    def set_num_garages(self, value: Count) -> None:
        """Set the minimum number of garage spaces.

        Args:
            value: Minimum garage spaces.
        """
        self._set("set_num_garages", "num_garages", value)

    @function
    def set_num_swimming_pools(self, value: Count) -> None:
        """Set the minimum number of swimming pools.

        Args:
            value: Minimum swimming pools.
        """
        self._set("set_num_swimming_pools", "num_swimming_pools", value)

    @function
    def set_num_balconies(self, value: Count) -> None:
        """Set the minimum number of balconies.

        Args:
            value: Minimum balconies.
        """
        self._set("set_num_balconies", "num_balconies", value)

    @function
    def set_floor_number(self, value: Annotated[int, Field(ge=0, le=200)]) -> None:
        """Set the floor the home is on (0 is the ground floor).

        Args:
            value: Floor number.
        """
        self._set("set_floor_number", "floor_number", value)

    @function
    def set_max_commute_time(self, minutes: Annotated[int, Field(ge=1, le=240)], destination: str) -> None:
        """Set the longest acceptable commute to a place.

        Args:
            minutes: Maximum commute in minutes.
            destination: Where the commute goes, e.g. "Downtown Oakland".
        """
        if not destination.strip():
            raise ToolError("home_search:value", "commute destination must not be empty")
        self._set(
            "set_max_commute_time",
            "commute",
            {"minutes": minutes, "destination": " ".join(destination.split()).casefold()},
        )

    @function
    def search(
        self, sort_by: Literal["recommended", "newest", "price_low", "price_high"] = "recommended"
    ) -> dict[str, Any]:
        """Run the search with the criteria set so far. Must be the last call.

        Args:
            sort_by: Order of the results.
        """
        self._check_order("search")
        self.searched = True
        self.sort_by = sort_by
        return self._listings()

    @classmethod
    def final_reply(cls, calls: list[Call], results: list[Any]) -> str:
        found = results[-1] if results and isinstance(results[-1], dict) else None
        if not found:
            return "Done."
        homes = "; ".join(f"{h['address']} at ${h['price']:,}" for h in found["homes"])
        return f"I found {found['matches']} matching homes. Top results: {homes}."

    def _listings(self) -> dict[str, Any]:
        """Deterministic synthetic results: the same criteria always give the same homes.

        Numbers come from a hash of the criteria (no RNG object: this runs for every sample the
        generator makes, so it has to be cheap)."""
        digest = stable_hash(sorted(self.criteria.items()))
        renting = self.criteria["buy_or_rent"] == "rent"
        low = self.criteria.get("min_price", 1_000 if renting else 150_000)
        high = max(self.criteria.get("max_price", low * 3), low + 1)
        beds = self.criteria.get("num_beds", 1)
        homes = []
        for k in range(2):
            h = (digest * (2 * k + 3) + 0x9E3779B9 * (k + 1)) & 0xFFFFFFFF
            homes.append(
                {
                    "address": f"{10 + h % 9990} {_STREETS[h % len(_STREETS)]} St, {self.location_label}",
                    "price": low + (h >> 8) % (high - low + 1),
                    "beds": beds + (h >> 4) % 2,
                }
            )
        return {"matches": digest % 251, "homes": homes}
