"""Function-set coverage and query diversity of the generated training data, per tool.

    python benchmarks/coverage.py [--n 20000] [--tool all] [--before REV]

Coverage. A sample's *function set* is the set of function names in its gold program (labels[0];
how often a function is called, and in which order, does not count). A tool's *valid function
sets* are the sets its rules allow, written out below (`SPACES`) from each simulator's rules:
one or more variants, each a set of required functions plus any subset of optional ones, minus
subsets that break a `requires` rule (a function that needs another in the same program) or an
`excludes` pair. Coverage = |valid sets among the generated samples' sets| / |valid sets|, over
`--n` train-split samples (seed 0). A set no rule allows counts as "outside" (none should).

Diversity: distinct-n = distinct n-grams / all n-grams over the samples' requests (lower-cased
word tokens; n = 1, 2, 3).

`--before REV` measures the templates of git revision REV as well (read with `git archive`; the
repository is not touched), rendered by this tree's engine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe_machine  # noqa: E402

from toolbench.core.registry import resolve_tools  # noqa: E402
from toolbench.core.templating import distinct_n, valid_function_sets  # noqa: E402
from toolbench.pipelines.generate import GenerateConfig, generate  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

_HS_FILTERS = [
    "select_home_type", "set_num_beds", "set_num_baths", "set_min_price", "set_max_price",
    "set_min_square_feet", "set_max_square_feet", "set_num_garages", "set_num_swimming_pools",
    "set_num_balconies", "set_floor_number", "set_max_commute_time",
]  # fmt: skip
_TRIP = ["set_origin", "set_destination", "set_departure_date"]
_TRIP_OPTIONAL = [
    "set_return_date", "select_transportation", "set_min_ticket_price", "set_max_ticket_price",
]  # fmt: skip
_HOTEL = ["set_hotel_location", "set_checkin_date", "set_checkout_date"]
_HOTEL_OPTIONAL = ["set_num_rooms", "select_room_type", "set_min_room_price", "set_max_room_price"]
_TRAVELLERS = ["set_num_adults", "set_num_children"]
_CORE_TB = ["select_booking_type", "search_trips"]


def _any_subset(functions: list[str]) -> dict:
    """Every non-empty subset: a tool whose functions stand alone (no order or pairing rule)."""
    return {"variants": [{"required": [], "optional": functions}], "non_empty": True}


# Per tool: variants of (required, optional, requires, excludes). Written from the header of each
# simulator (tools/<tool>/simulator.py); the comment says what each rule is.
SPACES: dict[str, dict] = {
    # location, buy/rent and search() always; any subset of the 12 filters: 2^12 = 4,096
    "home_search": {
        "variants": [{"required": ["set_location", "set_buy_or_rent", "search"], "optional": _HS_FILTERS}]
    },
    # booking type and search always; a trip needs origin, destination, departure; a hotel its
    # location, checkin, checkout; settings only of the parts booked; travellers with either:
    # 2^6 (trip) + 2^6 (hotel) + 2^10 (trip and hotel) = 1,152
    "trip_booking": {
        "variants": [
            {"required": _CORE_TB + _TRIP, "optional": _TRIP_OPTIONAL + _TRAVELLERS},
            {"required": _CORE_TB + _HOTEL, "optional": _HOTEL_OPTIONAL + _TRAVELLERS},
            {
                "required": _CORE_TB + _TRIP + _HOTEL,
                "optional": _TRIP_OPTIONAL + _HOTEL_OPTIONAL + _TRAVELLERS,
            },
        ]
    },
    # five independent endpoints; any non-empty subset (a request may ask several): 31
    "weather": _any_subset(["current_weather", "forecast", "air_pollution", "geocode", "reverse_geocode"]),
    # ten endpoints, no order rule; any non-empty subset: 1,023
    "cat_api": _any_subset(
        [
            "search_images",
            "get_image",
            "vote",
            "list_votes",
            "delete_vote",
            "add_favourite",
            "list_favourites",
            "delete_favourite",
            "search_breeds",
            "list_breeds",
        ]  # fmt: skip
    ),
    # nine sheet operations, each on its own: any non-empty subset: 511
    "spreadsheet": _any_subset(
        [
            "append_row",
            "delete_columns",
            "delete_rows",
            "get_values",
            "insert_row",
            "set_format",
            "sort",
            "update",
            "update_cell",
        ]  # fmt: skip
    ),
    # five scene functions; any non-empty subset: 31
    "tabletop": _any_subset(["get_obj_names", "get_obj_pos", "put_first_on_second", "say", "stack_objects"]),
    # an object is reached (walk_to or find) before it is used; put needs something grabbed:
    # subsets of the 9 actions with walk_to, and the ones with find but no walk_to
    "virtual_home": {
        "variants": [
            {
                "required": ["walk_to"],
                "optional": ["find", "grab", "put", "open", "close", "switch_on", "switch_off", "sit"],
                "requires": {"put": ["grab"]},
            },
            {
                "required": ["find"],
                "optional": ["grab", "put", "open", "close", "switch_on", "switch_off", "sit"],
                "requires": {"put": ["grab"]},
            },
        ]
    },
    # an episode: search, click and buy always; options, next page and back as the page needs: 8
    "webshop": {
        "variants": [
            {"required": ["search", "click", "buy"], "optional": ["select_option", "next_page", "back"]}
        ]
    },
}


def valid_sets(tool: str) -> set[frozenset[str]]:
    space = SPACES[tool]
    found: set[frozenset[str]] = set()
    for variant in space["variants"]:
        found |= valid_function_sets(
            variant["required"], variant["optional"], variant.get("requires"), variant.get("excludes", ())
        )
    if space.get("non_empty"):
        found.discard(frozenset())
    return found


def measure(lines: list[bytes], tool: str) -> dict[str, float]:
    """Coverage and distinct-n of one tool's generated samples (JSONL lines)."""
    sets, queries = set(), []
    for line in lines:
        sample = orjson.loads(line)
        queries.append(sample["query"])
        sets.add(frozenset(call["name"] for call in sample["labels"][0]))
    valid = valid_sets(tool)
    return {
        "valid": len(valid),
        "produced": len(sets & valid),
        "outside": len(sets - valid),
        "coverage": len(sets & valid) / len(valid),
        **{f"distinct_{n}": distinct_n(queries, n) for n in (1, 2, 3)},
    }


def generated_lines(tool: str, n: int, templates: Path | None) -> list[bytes]:
    config = GenerateConfig(
        tools=[tool], n=n, seed=0, split="train", templates=str(templates) if templates else None
    )
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out.jsonl"
        generate(config, out)
        return out.read_bytes().splitlines()


def templates_at(rev: str, folder: Path) -> Path:
    """The templates folder of git revision `rev`, read with `git archive` into `folder`."""
    archive = folder / "templates.tar"
    with archive.open("wb") as handle:
        subprocess.run(
            ["git", "archive", "--format=tar", rev, "templates"], cwd=REPO, stdout=handle, check=True
        )
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return folder / "templates"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--tool", default="all")
    parser.add_argument("--before", metavar="REV", help="also measure the templates of git revision REV")
    args = parser.parse_args()
    tools = resolve_tools(args.tool)
    print(f"machine: {describe_machine()}")
    print(f"{args.n:,} train samples per tool (seed 0); coverage = valid function sets produced / valid sets")
    with tempfile.TemporaryDirectory() as scratch:
        before = templates_at(args.before, Path(scratch)) if args.before else None
        head = f"{'tool':<14} {'':<7} {'valid sets':>10} {'produced':>9} {'coverage':>9} {'outside':>8}"
        print(head + f" {'distinct-1':>10} {'distinct-2':>10} {'distinct-3':>10}")
        for tool in tools:
            rows = [("before", before)] if before is not None else []
            for label, folder in [*rows, ("now", None)]:
                m = measure(generated_lines(tool, args.n, folder), tool)
                print(
                    f"{tool:<14} {label:<7} {m['valid']:>10,} {m['produced']:>9,} {100 * m['coverage']:>8.1f}% "
                    f"{m['outside']:>8} {m['distinct_1']:>10.4f} {m['distinct_2']:>10.4f} {m['distinct_3']:>10.4f}"
                )


if __name__ == "__main__":
    main()
