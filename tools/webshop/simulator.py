"""webshop: a simulated online store after WebShop (Yao et al. 2022), played as an episode.

The catalog (`catalog.json`, made by `make_catalog.py`) holds 1,200 synthetic products in five
categories (fashion, beauty, grocery, electronics, home), each with a type ("men's running shoe"),
a title, features (attributes), options (size, color, flavor, ...) and a price. The agent sees one
page at a time as text: the search page, a results page (10 products: id, title, price), or a
product page (price, features, options and what is selected), and acts with one call per step.

Pages and rules (error types `webshop:<rule>`):
- `search(query)` works on every page and shows page 1 of the results (BM25 over titles and
  features, at most 50 products).
- `click(item)` opens a product listed on the current results page, by id or exact title;
  `not_on_results` elsewhere, `not_found` for an item not on this page.
- `next_page()` on a results page (`not_on_results`), not past the last one (`no_more_results`).
- `back()` returns to the previous page (`no_history` on the first page).
- `select_option(name, value)` on a product page (`no_product` elsewhere); the product must have
  that option (`no_such_option`) and offer that value (`invalid_option`).
- `buy()` on a product page (`no_product`) once every option is chosen (`options_missing`);
  it ends the episode, and any later action is `done`.

Reward (the task's hidden goal is the setup: `{"goal": {category, product_type, attributes,
options, price_max}}`), WebShop's formula for the bought product Y against the goal U:

    reward = r_type * (|U_att ∩ Y_att| + |U_opt ∩ Y_opt| + [Y_price <= U_price]) / (|U_att| + |U_opt| + 1)

- U_att ∩ Y_att: goal attributes among the product's features; U_opt ∩ Y_opt: goal options whose
  selected value equals the goal's; the price term is 1 when the price is within the budget. A goal
  without a budget drops the price term from both sides.
- r_type = 1 when the product's type is the goal's, 0.5 when only the category matches, 0.1
  otherwise (WebShop's type factor, from text similarity there, from the catalog's types here).
- Nothing bought: 0. Success is reward 1.

State: `{"page", "item", "selected", "purchased"}`; `purchased` is `{"id", "options", "price"}`
after `buy`. Matching of ids, titles, option names and values ignores case and extra spaces.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from toolbench.core.episode import Environment
from toolbench.core.simulator import function
from toolbench.foundation.errors import ToolError
from toolbench.foundation.records import Call
from toolbench.tools.webshop.search import SearchIndex

PAGE_SIZE = 10
THANKS = "Thank you for your order: "


def _load_products() -> list[dict[str, Any]]:
    path = Path(__file__).with_name("catalog.json")
    try:
        return json.loads(path.read_text(encoding="utf-8"))["products"]
    except FileNotFoundError:  # an install that left the data file out: rebuild it (same content)
        from toolbench.tools.webshop.make_catalog import build_products

        return build_products()


PRODUCTS: list[dict[str, Any]] = _load_products()
BY_ID: dict[str, dict[str, Any]] = {p["id"]: p for p in PRODUCTS}
INDEX = SearchIndex(PRODUCTS)
TITLE_KEYS: dict[str, str] = {p["id"]: " ".join(p["title"].split()).lower() for p in PRODUCTS}


_NORMS: dict[str, str] = {}  # text -> normalised (ids, option names and values recur in every episode)


def _norm(text: str) -> str:
    """Case and spacing ignored; remembered for a str (a subclass may hash or compare
    otherwise, another type fails as it did)."""
    if type(text) is not str:
        return " ".join(text.split()).lower()
    found = _NORMS.get(text)
    if found is None:
        found = " ".join(text.split()).lower()
        if len(_NORMS) >= 1 << 14:
            _NORMS.clear()
        _NORMS[text] = found
    return found


# What the pages show of a product never changes: each product's option lookups and the text of
# its page (but for the selection) and of its results line are made once, on first use.
_OPTION_KEYS: dict[str, dict[str, str]] = {}  # product id -> {normalised option name: name}
_OPTION_VALUES: dict[tuple[str, str], dict[str, str]] = {}  # (id, option) -> {normalised value: value}
_PAGE_TEXT: dict[str, str] = {}  # product id -> its page's text up to "Selected: "
_RESULT_LINE: dict[str, str] = {}  # product id -> its line on a results page


_NORMALISED: dict[str, tuple[str, str, frozenset[str]]] = {}


def _normalised(pid: str) -> tuple[str, str, frozenset[str]]:
    """A product's type, category and features as the reward compares them."""
    found = _NORMALISED.get(pid)
    if found is None:
        product = BY_ID[pid]
        found = _NORMALISED[pid] = (
            _norm(product["type"]),
            _norm(product["category"]),
            frozenset(_norm(a) for a in product["attributes"]),
        )
    return found


def _option_keys(pid: str) -> dict[str, str]:
    keys = _OPTION_KEYS.get(pid)
    if keys is None:
        keys = _OPTION_KEYS[pid] = {_norm(k): k for k in BY_ID[pid]["options"]}
    return keys


def _option_values(pid: str, key: str) -> dict[str, str]:
    values = _OPTION_VALUES.get((pid, key))
    if values is None:
        values = _OPTION_VALUES[(pid, key)] = {_norm(v): v for v in BY_ID[pid]["options"][key]}
    return values


class Goal(BaseModel):
    """What the shopper asked for; hidden from the agent, used only for the reward."""

    model_config = ConfigDict(extra="forbid")

    category: str
    product_type: str
    attributes: list[str] = Field(default_factory=list)
    options: dict[str, str] = Field(default_factory=dict)
    price_max: float | None = None


class Setup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    goal: Goal | None = None


# A goal as the reward compares it: product type, category, attributes and options normalised.
NormalGoal = tuple[str, str, tuple[str, ...], tuple[tuple[str, str], ...]]
_GOALS: dict[bytes, tuple[Goal | None, NormalGoal | None]] = {}


def _goal(setup: dict[str, Any]) -> tuple[Goal | None, NormalGoal | None]:
    """The setup's goal, validated, and normalised; remembered by the setup's JSON (a generator
    replays the same goals many times; a Goal is only read)."""
    try:
        key = orjson.dumps(setup)
    except TypeError:  # not JSON (pydantic says what is wrong with it)
        return _validated(setup)
    found = _GOALS.get(key)
    if found is None:
        if len(_GOALS) >= 1 << 14:
            _GOALS.clear()
        found = _GOALS[key] = _validated(setup)
    return found


def _validated(setup: dict[str, Any]) -> tuple[Goal | None, NormalGoal | None]:
    goal = Setup.model_validate(setup).goal
    if goal is None:
        return None, None
    return goal, (
        _norm(goal.product_type),
        _norm(goal.category),
        tuple(_norm(a) for a in goal.attributes),
        tuple((_norm(k), _norm(v)) for k, v in goal.options.items()),
    )


def _money(price: float) -> str:
    return f"${price:,.2f}"


def _options_text(options: dict[str, str]) -> str:
    return ", ".join(f"{name}={value}" for name, value in options.items()) or "none"


def _result_line(row: dict[str, Any]) -> str:
    """A product's line on a results page (`row`: its id, title and price, as `_results_page`
    lists them, which are the catalog's)."""
    line = _RESULT_LINE.get(row["id"])
    if line is None:
        line = f"[{row['id']}] {row['title']} - {_money(row['price'])}"
        if BY_ID.get(row["id"]) is not None and (row["title"], row["price"]) == (
            BY_ID[row["id"]]["title"],
            BY_ID[row["id"]]["price"],
        ):
            _RESULT_LINE[row["id"]] = line
    return line


def _page_text(page: dict[str, Any]) -> str:
    """A product page's text up to and including "Selected: " (`page`: `_product_page`)."""
    text = _PAGE_TEXT.get(page["id"])
    if text is None:
        options = " | ".join(f"{k}: {', '.join(v)}" for k, v in page["options"].items()) or "none"
        text = "\n".join(
            [
                f"[{page['id']}] {page['title']}",
                f"Price: {_money(page['price'])}",
                f"Category: {page['category']} > {page['type']}",
                f"Features: {', '.join(page['features'])}",
                f"Options: {options}",
                "Selected: ",
            ]
        )
        product = BY_ID.get(page["id"])
        if product is not None and _product_view(product) == {
            k: v for k, v in page.items() if k != "selected"
        }:
            _PAGE_TEXT[page["id"]] = text
    return text


def _product_view(product: dict[str, Any]) -> dict[str, Any]:
    """What a product page shows of the catalog entry, but for the selection."""
    return {
        "id": product["id"],
        "title": product["title"],
        "price": product["price"],
        "category": product["category"],
        "type": product["type"],
        "features": list(product["attributes"]),
        "options": {k: list(v) for k, v in product["options"].items()},
    }


class _Views(dict):  # type: ignore[type-arg]
    """Product id -> `_product_view`, made on first use and shared, as cat_api shares its results:
    a page returns references to it, never changed (a product page is shown several times per
    episode, and the generator plays thousands)."""

    def __missing__(self, pid: str) -> dict[str, Any]:
        view = self[pid] = _product_view(BY_ID[pid])
        return view


class _Rows(dict):  # type: ignore[type-arg]
    """Product id -> its row on a results page ({id, title, price}), made on first use, shared."""

    def __missing__(self, pid: str) -> dict[str, Any]:
        row = self[pid] = {"id": pid, "title": BY_ID[pid]["title"], "price": BY_ID[pid]["price"]}
        return row


_VIEWS, _ROWS = _Views(), _Rows()


class WebShop(Environment):
    name = "webshop"
    description = (
        "An online store browsed one action at a time: search, open a product from the results, "
        "choose its options (size, color, ...), and buy it."
    )
    max_steps = 15

    def reset(self, setup: dict[str, Any] | None = None) -> None:
        self.goal, self._wanted = _goal(setup or {})
        self.page = "search"
        self.query = ""
        self.results: tuple[str, ...] = ()
        self.page_no = 0
        self.item: str | None = None
        self.selected: dict[str, str] = {}
        self.purchased: dict[str, Any] | None = None
        self.history: list[tuple[str, str, tuple[str, ...], int, str | None]] = []

    def state(self) -> dict[str, Any]:
        return {
            "page": self.page,
            "item": self.item,
            "selected": dict(self.selected),
            "purchased": dict(self.purchased) if self.purchased is not None else None,
        }

    # ----------------------------------------------------------------- rules
    def _open(self) -> None:
        if self.page == "done":
            raise ToolError("webshop:done", "the purchase is made; the episode is over")

    def _push(self) -> None:
        self.history.append((self.page, self.query, self.results, self.page_no, self.item))

    def _on_results(self, action: str) -> None:
        if self.page != "results":
            raise ToolError(
                "webshop:not_on_results", f"{action} needs a results page; this is the {self.page} page"
            )

    def _product(self) -> dict[str, Any]:
        if self.page != "item" or self.item is None:
            raise ToolError("webshop:no_product", f"open a product first; this is the {self.page} page")
        return BY_ID[self.item]

    def _shown(self) -> tuple[str, ...]:
        start = self.page_no * PAGE_SIZE
        return self.results[start : start + PAGE_SIZE]

    def _pages(self) -> int:
        return max(1, -(-len(self.results) // PAGE_SIZE))

    # ------------------------------------------------------------- functions
    @function
    def search(self, query: Annotated[str, Field(min_length=1)]) -> dict[str, Any]:
        """Search the store; shows the first page of results (10 products: id, title, price).

        Args:
            query: Words to search for, e.g. "men's running shoe breathable".
        """
        self._open()
        self._push()
        self.page, self.query, self.results, self.page_no, self.item = (
            "results",
            query,
            INDEX.search(query),
            0,
            None,
        )
        self.selected = {}
        return self._results_page()

    @function
    def click(self, item: str) -> dict[str, Any]:
        """Open a product listed on the current results page.

        Args:
            item: The product's id (e.g. "B0K7QZ3XWM") or its exact title, as listed.
        """
        self._open()
        self._on_results("click")
        wanted = _norm(item)
        for pid in self._shown():
            if wanted in (pid.lower(), TITLE_KEYS[pid]):
                self._push()
                self.page, self.item, self.selected = "item", pid, {}
                return self._product_page()
        raise ToolError("webshop:not_found", f"{item!r} is not on this results page; click an id listed here")

    @function
    def select_option(self, name: str, value: str) -> dict[str, Any]:
        """Choose one of the open product's options, e.g. its size or color.

        Args:
            name: The option, as the product page names it, e.g. "size" or "color".
            value: One of the values the product page lists for it, e.g. "10" or "blue".
        """
        self._open()
        product = self._product()
        key = _option_keys(product["id"]).get(_norm(name))
        if key is None:
            have = ", ".join(product["options"]) or "none"
            raise ToolError(
                "webshop:no_such_option", f"this product has no option {name!r}; its options: {have}"
            )
        values = _option_values(product["id"], key)
        wanted = _norm(value)
        if wanted not in values:
            raise ToolError(
                "webshop:invalid_option",
                f"{key} {value!r} is not offered; choose one of: {', '.join(product['options'][key])}",
            )
        self.selected[key] = values[wanted]
        return self._product_page()

    @function
    def back(self) -> dict[str, Any]:
        """Go back to the previous page (from a product to its results page, or to earlier results)."""
        self._open()
        if not self.history:
            raise ToolError("webshop:no_history", "there is no previous page")
        self.page, self.query, self.results, self.page_no, self.item = self.history.pop()
        self.selected = {}
        return self._product_page() if self.page == "item" else self._results_page()

    @function
    def next_page(self) -> dict[str, Any]:
        """Show the next page of the current search results."""
        self._open()
        self._on_results("next_page")
        if self.page_no + 1 >= self._pages():
            raise ToolError("webshop:no_more_results", f"page {self.page_no + 1} is the last page of results")
        self._push()
        self.page_no += 1
        return self._results_page()

    @function
    def buy(self) -> dict[str, Any]:
        """Buy the open product with the options chosen; this ends the shopping episode."""
        self._open()
        product = self._product()
        missing = [name for name in product["options"] if name not in self.selected]
        if missing:
            raise ToolError("webshop:options_missing", f"choose the {' and '.join(missing)} before buying")
        self.purchased = {"id": product["id"], "options": dict(self.selected), "price": product["price"]}
        self.page = "done"
        return {**self.purchased, "title": product["title"]}

    # ---------------------------------------------------------- what is shown
    def _results_page(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "page": self.page_no + 1,
            "pages": self._pages(),
            "total": len(self.results),
            "results": [_ROWS[pid] for pid in self._shown()],
        }

    def _product_page(self) -> dict[str, Any]:
        return {**_VIEWS[self.item or ""], "selected": dict(self.selected)}

    def observe(self, call: Call, result: Any) -> str:
        """The page as text: what WebShop shows its agent after each action."""
        if self.page == "done":
            return (
                f"{THANKS}[{result['id']}] {result['title']} "
                f"({_options_text(result['options'])}) for {_money(result['price'])}."
            )
        if self.page == "results":
            if not result["total"]:
                return f'No products match "{result["query"]}". Try another search.'
            lines = [
                f'Results for "{result["query"]}" (page {result["page"]} of {result["pages"]}, '
                f"{result['total']} products):"
            ]
            lines += [_result_line(r) for r in result["results"]]
            return "\n".join(lines)
        if self.page == "item":
            return _page_text(result) + _options_text(result["selected"])
        return "WebShop search page: search(query) to find products."

    # ----------------------------------------------------------------- reward
    def _reward_parts(self) -> tuple[float, int, int]:
        """(r_type, matched, total) of the reward formula in the module docstring."""
        goal, bought, wanted = self.goal, self.purchased, self._wanted
        assert goal is not None and bought is not None and wanted is not None
        wanted_type, wanted_category, wanted_attributes, wanted_options = wanted
        kind, category, features = _normalised(bought["id"])
        if kind == wanted_type:
            r_type = 1.0
        elif category == wanted_category:
            r_type = 0.5
        else:
            r_type = 0.1
        chosen = {_norm(k): _norm(v) for k, v in bought["options"].items()}
        matched = sum(a in features for a in wanted_attributes)
        matched += sum(chosen.get(k) == v for k, v in wanted_options)
        total = len(goal.attributes) + len(goal.options)
        if goal.price_max is not None:
            matched += bought["price"] <= goal.price_max
            total += 1
        return r_type, matched, total

    def is_done(self) -> bool:
        return self.page == "done"

    def reward(self) -> float:
        if self.goal is None or self.purchased is None:
            return 0.0
        r_type, matched, total = self._reward_parts()
        return r_type * matched / total if total else r_type

    def reward_note(self) -> str:
        if self.purchased is None:
            return "nothing was bought"
        if self.goal is None:
            return "the task sets no goal"
        r_type, matched, total = self._reward_parts()
        return f"bought {self.purchased['id']}: type factor {r_type:g}, {matched} of {total} goal terms met"

    @classmethod
    def final_reply(cls, calls: list[Call], results: list[Any]) -> str:
        """After `buy`: what was bought. `results` are buy's return values, or, for episode
        samples, the observations (the last one is the order confirmation)."""
        last = results[-1] if calls and calls[-1].name == "buy" and results else None
        if isinstance(last, dict) and "title" in last:
            return f"I bought the {last['title']} ({_options_text(last['options'])}) for {_money(last['price'])}."
        if isinstance(last, str) and last.startswith(THANKS):
            return "I bought " + last[len(THANKS) :]
        return "Done."
