"""cat_api: a simulated The Cat API (thecatapi.com), after ToolBench's cat-api tool.

A seeded catalog (`catalog.json`, made by `make_catalog.py`: 67 real breeds, 400 synthetic images)
is loaded once at import. The account store holds votes and favourites; `reset(setup)` starts it
from the catalog's default account (votes 1001-1008, favourites 2001-2006) or from
`setup = {"votes": [{"id", "image_id", "value"}], "favourites": [{"id", "image_id"}]}`, where a
record may also be a row, `[id, image_id, value]` / `[id, image_id]` (templates write rows: the
templating core leaves YAML mapping keys inside `setup:` as a str subclass that orjson refuses).

Rules (the real API answers these with 4xx errors): unknown image, breed, vote or favourite ids
are `cat_api:not_found`; favouriting an image twice is `cat_api:duplicate`; a blank breed search
is `cat_api:value`.

State, as the scorer compares it:
- `reads`: the log of read requests, each normalised with every default filled (a multiset: two
  reads in either order match). A store listing (`list_votes`, `list_favourites`) also records how
  many writes to that collection came before it (`after_writes`), because what it shows depends on
  it: "upvote X, then show my votes" is not "show my votes, then upvote X".
- `store_diff`: what the writes changed relative to the initial store: added votes as
  `{"image_id", "value"}` and added favourites as image ids (generated ids left out, so the same
  writes in another order match), deleted vote and favourite ids. Deleting a vote or favourite
  made earlier in the same program cancels its addition.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from math import gcd
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from toolbench.core.simulator import Simulator, canonical_order, function, stable_hash
from toolbench.foundation.errors import ToolError
from toolbench.foundation.records import Call

Category = Literal["hats", "space", "sunglasses", "boxes", "ties", "sinks", "clothes"]
MimeType = Literal["jpg", "png", "gif"]
Size = Literal["thumb", "small", "med", "full"]
Limit = Annotated[int, Field(ge=1, le=100)]
Page = Annotated[int, Field(ge=0)]
RecordId = Annotated[int, Field(ge=1)]

_ALL_MIME = ["gif", "jpg", "png"]
_LONGEST_SIDE = {"thumb": 150, "small": 350, "med": 800, "full": None}


def _load_catalog() -> dict[str, Any]:
    path = Path(__file__).with_name("catalog.json")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:  # an install that left the data file out: rebuild it (same content)
        from toolbench.tools.cat_api.make_catalog import build

        return build()


CATALOG = _load_catalog()
BREEDS: dict[str, dict[str, Any]] = {b["id"]: b for b in CATALOG["breeds"]}
BREED_LIST: list[dict[str, Any]] = CATALOG["breeds"]
IMAGES: dict[str, dict[str, Any]] = {img["id"]: img for img in CATALOG["images"]}
IMAGE_IDS: list[str] = [img["id"] for img in CATALOG["images"]]  # upload order, oldest first
CATEGORIES: tuple[str, ...] = Category.__args__  # type: ignore[attr-defined]
_BREED_NAMES = [(b["name"].casefold(), b) for b in BREED_LIST]


def _sized(image: dict[str, Any], size: str) -> dict[str, Any]:
    width, height = image["width"], image["height"]
    side = _LONGEST_SIDE[size]
    if side is not None and max(width, height) > side:
        scale = side / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    return {
        "id": image["id"],
        "url": image["url"],
        "width": width,
        "height": height,
        "mime_type": image["mime_type"],
        "breeds": [{"id": b, "name": BREEDS[b]["name"]} for b in image["breed_ids"]],
        "categories": list(image["categories"]),
    }


# Results are built once and shared (never mutated): a call returns references, not copies.
_SEARCH_RESULTS: dict[str, dict[str, dict[str, Any]]] = {
    size: {img["id"]: _sized(img, size) for img in CATALOG["images"]} for size in _LONGEST_SIDE
}
_IMAGE_RESULTS: dict[str, dict[str, Any]] = {
    img["id"]: {
        **_sized(img, "full"),
        "breeds": [BREEDS[b] for b in img["breed_ids"]],
        "created_at": img["created_at"],
    }
    for img in CATALOG["images"]
}
_MATCHES: dict[tuple[Any, ...], list[str]] = {}  # filter -> image ids in upload order (memoised)


def _matches(
    breed_id: str | None, category: str | None, has_breeds: bool, mimes: tuple[str, ...]
) -> list[str]:
    key = (breed_id, category, has_breeds, mimes)
    found = _MATCHES.get(key)
    if found is None:
        found = [
            image_id
            for image_id in IMAGE_IDS
            if (breed_id is None or breed_id in IMAGES[image_id]["breed_ids"])
            and (category is None or category in IMAGES[image_id]["categories"])
            and (not has_breeds or IMAGES[image_id]["breed_ids"])
            and IMAGES[image_id]["mime_type"] in mimes
        ]
        _MATCHES[key] = found
    return found


def _default_store() -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
    account = CATALOG["account"]
    return {v["id"]: v for v in account["votes"]}, {f["id"]: f for f in account["favourites"]}


_DEFAULT_VOTES, _DEFAULT_FAVOURITES = _default_store()
_DEFAULT_FAVOURITED = frozenset(f["image_id"] for f in _DEFAULT_FAVOURITES.values())
_FIRST_VOTE_ID, _FIRST_FAVOURITE_ID = 1001, 2001  # ids of a fresh account's first vote / favourite


def _vote_record(row: dict[str, Any] | list[Any]) -> dict[str, Any]:
    """A setup vote, as {"id", "image_id", "value"} or as a row [id, image_id, value]."""
    if isinstance(row, dict):
        return {"id": row["id"], "image_id": row["image_id"], "value": row["value"]}
    vote_id, image_id, value = row
    return {"id": vote_id, "image_id": image_id, "value": value}


def _favourite_record(row: dict[str, Any] | list[Any]) -> dict[str, Any]:
    """A setup favourite, as {"id", "image_id"} or as a row [id, image_id]."""
    if isinstance(row, dict):
        return {"id": row["id"], "image_id": row["image_id"]}
    favourite_id, image_id = row
    return {"id": favourite_id, "image_id": image_id}


def _page(items: list[Any], limit: int, page: int) -> list[Any]:
    return items[page * limit : (page + 1) * limit]


class CatApi(Simulator):
    name = "cat_api"
    description = (
        "The Cat API: search cat images by breed and category, look up breeds, and manage your "
        "votes and favourites."
    )

    def reset(self, setup: dict[str, Any] | None = None) -> None:
        if setup is None:
            # copy-on-write: the shared default store is copied only by the first write
            self.votes, self.favourites = _DEFAULT_VOTES, _DEFAULT_FAVOURITES
            self.favourited: set[str] | frozenset[str] = _DEFAULT_FAVOURITED
            self.owned = False  # whether the store dicts are this instance's own copies
        else:
            self.votes = {v["id"]: v for v in map(_vote_record, setup.get("votes", ()))}
            self.favourites = {f["id"]: f for f in map(_favourite_record, setup.get("favourites", ()))}
            self.favourited = {f["image_id"] for f in self.favourites.values()}
            self.owned = True
        # votes and favourites number their ids separately, each going on from its highest one
        self.next_vote_id = max(self.votes, default=_FIRST_VOTE_ID - 1) + 1
        self.next_favourite_id = max(self.favourites, default=_FIRST_FAVOURITE_ID - 1) + 1
        self.reads: list[dict[str, Any]] = []
        self.added_votes: dict[int, dict[str, Any]] = {}
        self.deleted_votes: list[int] = []
        self.added_favourites: dict[int, str] = {}
        self.deleted_favourites: list[int] = []
        self.vote_writes = self.favourite_writes = 0

    def state(self) -> dict[str, Any]:
        # Lists are multisets to the scorer; sorting them as well makes the same calls in another
        # order give an equal dict, which lets the generator skip flattening to compare labels.
        return self._state(sorted(self.reads, key=repr) if len(self.reads) > 1 else list(self.reads))

    def snapshot(self) -> dict[str, Any]:
        return self._state(canonical_order(self.reads) if len(self.reads) > 1 else self.reads)

    def _state(self, reads: list[dict[str, Any]]) -> dict[str, Any]:
        votes = list(self.added_votes.values())
        if len(votes) > 1:
            votes.sort(key=lambda v: (v["image_id"], v["value"]))
        return {
            "reads": reads,
            "store_diff": {
                "added_votes": votes,
                "deleted_votes": sorted(self.deleted_votes),
                "added_favourites": sorted(self.added_favourites.values()),
                "deleted_favourites": sorted(self.deleted_favourites),
            },
        }

    # --------------------------------------------------------------- helpers
    def _own(self) -> None:
        if not self.owned:
            self.votes, self.favourites = dict(self.votes), dict(self.favourites)
            self.favourited = set(self.favourited)
            self.owned = True

    @staticmethod
    def _image(image_id: str) -> dict[str, Any]:
        image = IMAGES.get(image_id)
        if image is None:
            raise ToolError("cat_api:not_found", f"no image with id {image_id!r}")
        return image

    # ----------------------------------------------------------------- reads
    @function
    def search_images(
        self,
        breed_id: str | None = None,
        category: Category | None = None,
        limit: Annotated[int, Field(ge=1, le=25)] = 1,
        size: Size = "med",
        mime_types: Annotated[list[MimeType], Field(min_length=1)] | None = None,
        order: Literal["RANDOM", "ASC", "DESC"] = "RANDOM",
        has_breeds: bool = False,
    ) -> list[dict[str, Any]]:
        """Search cat images, optionally filtered by breed, category and file type.

        Args:
            breed_id: Breed id, e.g. "beng" for Bengal; omit for any breed.
            category: Only images of this category; omit for any.
            limit: How many images to return, 1 to 25.
            size: Image size: "thumb", "small", "med" (medium) or "full".
            mime_types: File types to include, any of "jpg", "png", "gif"; omit for all three.
            order: "RANDOM", or by upload date: "ASC" (oldest first) or "DESC" (newest first).
            has_breeds: Only images that have breed information.
        """
        if breed_id is not None and breed_id not in BREEDS:
            raise ToolError("cat_api:not_found", f"no breed with id {breed_id!r}")
        mimes = _ALL_MIME if mime_types is None else sorted(set(mime_types))
        has_breeds = has_breeds or breed_id is not None  # a breed filter implies breed information
        self.reads.append(
            {
                "function": "search_images",
                "breed_id": breed_id,
                "category": category,
                "limit": limit,
                "size": size,
                "mime_types": mimes,
                "order": order,
                "has_breeds": has_breeds,
            }
        )
        found = _matches(breed_id, category, has_breeds, tuple(mimes))
        n = len(found)
        k = min(limit, n)
        if order == "ASC":
            chosen = found[:k]
        elif order == "DESC":
            chosen = found[n - k :][::-1]
        elif k:
            # a deterministic "random" pick: start and stride (coprime with n) from a hash
            digest = stable_hash(breed_id, category, has_breeds, mimes, limit)
            step = 1 + (digest >> 12) % max(n - 1, 1)
            while gcd(step, n) != 1:
                step += 1
            start = digest % n
            chosen = [found[(start + i * step) % n] for i in range(k)]
        else:
            chosen = []
        sized = _SEARCH_RESULTS[size]
        return [sized[image_id] for image_id in chosen]

    @function
    def get_image(self, image_id: str) -> dict[str, Any]:
        """Get one image by id, with full details of its breeds.

        Args:
            image_id: The image id, e.g. "9ccXTANkb".
        """
        self._image(image_id)
        self.reads.append({"function": "get_image", "image_id": image_id})
        return _IMAGE_RESULTS[image_id]

    @function
    def list_votes(self, limit: Limit = 10, page: Page = 0) -> list[dict[str, Any]]:
        """List your votes, oldest first, one page at a time.

        Args:
            limit: Votes per page, 1 to 100.
            page: Page number, counting from 0 for the first page.
        """
        self.reads.append(
            {"function": "list_votes", "limit": limit, "page": page, "after_writes": self.vote_writes}
        )
        return _page([self.votes[i] for i in sorted(self.votes)], limit, page)

    @function
    def list_favourites(self, limit: Limit = 10, page: Page = 0) -> list[dict[str, Any]]:
        """List your favourite images, oldest first, one page at a time.

        Args:
            limit: Favourites per page, 1 to 100.
            page: Page number, counting from 0 for the first page.
        """
        self.reads.append(
            {
                "function": "list_favourites",
                "limit": limit,
                "page": page,
                "after_writes": self.favourite_writes,
            }
        )
        return _page([self.favourites[i] for i in sorted(self.favourites)], limit, page)

    @function
    def list_breeds(self, limit: Limit = 10, page: Page = 0) -> list[dict[str, Any]]:
        """List cat breeds in alphabetical order, one page at a time.

        Args:
            limit: Breeds per page, 1 to 100.
            page: Page number, counting from 0 for the first page.
        """
        self.reads.append({"function": "list_breeds", "limit": limit, "page": page})
        return _page(BREED_LIST, limit, page)

    @function
    def search_breeds(self, q: str) -> list[dict[str, Any]]:
        """Find breeds whose name contains the search text (case does not matter).

        Args:
            q: Text to look for in breed names, e.g. "rex" or "Maine Coon".
        """
        needle = " ".join(q.split()).casefold()
        if not needle:
            raise ToolError("cat_api:value", "the breed search text must not be blank")
        self.reads.append({"function": "search_breeds", "q": needle})
        return [breed for name, breed in _BREED_NAMES if needle in name]

    # ---------------------------------------------------------------- writes
    @function
    def vote(self, image_id: str, value: Literal[1, -1]) -> dict[str, Any]:
        """Vote on an image: 1 is an up-vote (like), -1 a down-vote (dislike).

        Args:
            image_id: The image to vote on.
            value: 1 for up, -1 for down.
        """
        self._image(image_id)
        self._own()
        vote_id = self.next_vote_id
        self.next_vote_id += 1
        self.votes[vote_id] = {"id": vote_id, "image_id": image_id, "value": value}
        self.added_votes[vote_id] = {"image_id": image_id, "value": value}
        self.vote_writes += 1
        return {"message": "SUCCESS", "id": vote_id, "image_id": image_id, "value": value}

    @function
    def delete_vote(self, vote_id: RecordId) -> dict[str, Any]:
        """Delete one of your votes by its vote id.

        Args:
            vote_id: The vote's id (not the image id).
        """
        if vote_id not in self.votes:
            raise ToolError("cat_api:not_found", f"no vote with id {vote_id} in your account")
        self._own()
        del self.votes[vote_id]
        if self.added_votes.pop(vote_id, None) is None:
            self.deleted_votes.append(vote_id)
        self.vote_writes += 1
        return {"message": "SUCCESS"}

    @function
    def add_favourite(self, image_id: str) -> dict[str, Any]:
        """Save an image to your favourites. An image can be favourited only once.

        Args:
            image_id: The image to favourite.
        """
        self._image(image_id)
        if image_id in self.favourited:
            raise ToolError("cat_api:duplicate", f"image {image_id!r} is already one of your favourites")
        self._own()
        favourite_id = self.next_favourite_id
        self.next_favourite_id += 1
        self.favourites[favourite_id] = {"id": favourite_id, "image_id": image_id}
        self.favourited.add(image_id)
        self.added_favourites[favourite_id] = image_id
        self.favourite_writes += 1
        return {"message": "SUCCESS", "id": favourite_id}

    @function
    def delete_favourite(self, favourite_id: RecordId) -> dict[str, Any]:
        """Remove an image from your favourites by its favourite id.

        Args:
            favourite_id: The favourite's id (not the image id).
        """
        favourite = self.favourites.get(favourite_id)
        if favourite is None:
            raise ToolError("cat_api:not_found", f"no favourite with id {favourite_id} in your account")
        self._own()
        del self.favourites[favourite_id]
        self.favourited.discard(favourite["image_id"])
        if self.added_favourites.pop(favourite_id, None) is None:
            self.deleted_favourites.append(favourite_id)
        self.favourite_writes += 1
        return {"message": "SUCCESS"}

    # ----------------------------------------------------------------- reply
    @classmethod
    def final_reply(cls, calls: list[Call], results: list[Any]) -> str:
        clauses = [_clause(call, result) for call, result in zip(calls, results, strict=False)]
        if not clauses:
            return "Done."
        text = clauses[0] if len(clauses) == 1 else f"{', '.join(clauses[:-1])} and {clauses[-1]}"
        return f"I {text}."


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _first(items: Iterable[str], n: int = 5) -> str:
    """The first n items, comma-separated, with how many more there are."""
    items = list(items)
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _clause(call: Call, result: Any) -> str:
    name, args = call.name, call.arguments
    if name == "search_images":
        if not result:
            return "found no images matching that search"
        return f"found {_plural(len(result), 'image')}: {_first(img['url'] for img in result)}"
    if name == "get_image":
        breeds = " and ".join(b["name"] for b in result["breeds"]) or "no listed breed"
        return (
            f"looked up image {result['id']}, a {result['width']}x{result['height']} "
            f"{result['mime_type'].upper()} of {breeds}"
        )
    if name == "vote":
        kind = "up-vote" if result["value"] == 1 else "down-vote"
        return f"recorded your {kind} on image {result['image_id']} (vote {result['id']})"
    if name == "delete_vote":
        return f"deleted vote {args.get('vote_id')}"
    if name == "add_favourite":
        return f"saved image {args.get('image_id')} to your favourites (favourite {result['id']})"
    if name == "delete_favourite":
        return f"removed favourite {args.get('favourite_id')}"
    if name in ("list_votes", "list_favourites"):
        what = "vote" if name == "list_votes" else "favourite"
        if not result:
            return f"found no {what}s on that page"
        shown = _first(f"{r['id']} on image {r['image_id']}" for r in result)
        return f"listed {_plural(len(result), what)} ({shown})"
    if name in ("list_breeds", "search_breeds"):
        if not result:
            return "found no breeds matching that search"
        verb = "listed" if name == "list_breeds" else "found"
        return f"{verb} {_plural(len(result), 'breed')}: {_first(b['name'] for b in result)}"
    return f"ran {name}"
