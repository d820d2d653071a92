"""Builds the seeded catalog of the simulated web shop, `tools/webshop/catalog.json`, and the goal
pools the templates draw from (`templates/webshop/pools/goals.yaml`, `browse_goals.yaml`).

Every product is synthetic: 30 product types in five categories, 40 products each, with a brand,
a title, 3 features (attributes), options (size, colour, flavour, ...) and a price. A goal is one
product's type, 2 of its features, one value per option and a budget above its price, plus a
search query verified to show that product on the first results page (`browse_goals`: on the
second page of a search for the bare product type), so every templated task has a gold
trajectory. Running the script again writes the same bytes:

    python tools/webshop/make_catalog.py
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

SEED = 20240607
PER_TYPE = 40
PAGE = 10
_ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

SHOE_M = ["7", "8", "9", "10", "11", "12", "13"]
SHOE_W = ["5", "6", "7", "8", "9", "10", "11"]
CLOTHES = ["x-small", "small", "medium", "large", "x-large", "xx-large"]
COLOURS = ["black", "white", "gray", "navy", "blue", "red", "green", "pink", "beige", "brown"]

# category, product type, options {name: values}, features, price range (dollars)
TYPES: tuple[tuple[str, str, dict[str, list[str]], list[str], tuple[int, int]], ...] = (
    ("fashion", "men's running shoe", {"size": SHOE_M, "color": COLOURS}, ["lightweight", "breathable", "non-slip", "memory foam", "arch support", "waterproof"], (35, 120)),
    ("fashion", "women's running shoe", {"size": SHOE_W, "color": COLOURS}, ["lightweight", "breathable", "non-slip", "memory foam", "arch support", "cushioned"], (35, 120)),
    ("fashion", "men's hiking boot", {"size": SHOE_M, "color": ["brown", "black", "tan", "gray", "olive"]}, ["waterproof", "ankle support", "slip resistant", "insulated", "lightweight", "rubber sole"], (55, 180)),
    ("fashion", "women's sandal", {"size": SHOE_W, "color": ["black", "brown", "tan", "white", "gold", "silver"]}, ["open toe", "arch support", "adjustable strap", "memory foam", "lightweight", "non-slip"], (18, 70)),
    ("fashion", "men's t-shirt", {"size": CLOTHES[1:], "color": COLOURS}, ["cotton", "crew neck", "short sleeve", "moisture wicking", "slim fit", "machine washable"], (9, 35)),
    ("fashion", "women's t-shirt", {"size": CLOTHES[:5], "color": COLOURS}, ["cotton", "v-neck", "relaxed fit", "short sleeve", "machine washable", "soft"], (9, 35)),
    ("fashion", "men's jeans", {"size": ["30", "32", "34", "36", "38", "40"], "color": ["light wash", "medium wash", "dark wash", "black"]}, ["slim fit", "stretch", "straight leg", "relaxed fit", "button fly", "machine washable"], (25, 90)),
    ("fashion", "women's yoga pants", {"size": CLOTHES[:5], "color": ["black", "navy", "gray", "burgundy", "olive"]}, ["high waist", "tummy control", "moisture wicking", "4-way stretch", "side pockets", "squat proof"], (15, 60)),
    ("fashion", "men's rain jacket", {"size": CLOTHES[1:], "color": ["black", "navy", "olive", "red", "yellow"]}, ["waterproof", "hooded", "packable", "windproof", "breathable", "zip pockets"], (30, 150)),
    ("fashion", "women's hoodie", {"size": CLOTHES[:5], "color": ["black", "gray", "pink", "sage", "cream"]}, ["fleece lined", "pullover", "cotton", "kangaroo pocket", "oversized", "drawstring"], (18, 65)),
    ("beauty", "shampoo", {"size": ["8 fl oz", "12 fl oz", "16 fl oz", "32 fl oz"]}, ["sulfate free", "paraben free", "argan oil", "for dry hair", "color safe", "volumizing"], (6, 40)),
    ("beauty", "conditioner", {"size": ["8 fl oz", "12 fl oz", "16 fl oz", "32 fl oz"]}, ["sulfate free", "silicone free", "coconut oil", "for curly hair", "color safe", "moisturizing"], (6, 40)),
    ("beauty", "face moisturizer", {"size": ["1.7 oz", "2.5 oz", "3.4 oz"]}, ["spf 30", "fragrance free", "hyaluronic acid", "oil free", "for sensitive skin", "non-comedogenic"], (10, 65)),
    ("beauty", "lipstick", {"color": ["red", "nude", "pink", "berry", "coral", "plum"]}, ["long lasting", "matte", "cruelty free", "moisturizing", "vegan", "smudge proof"], (5, 38)),
    ("beauty", "nail polish", {"color": ["red", "nude", "pink", "black", "lilac", "teal"]}, ["quick dry", "chip resistant", "gel effect", "non-toxic", "vegan", "glossy"], (4, 20)),
    ("grocery", "ground coffee", {"flavor": ["original", "french vanilla", "hazelnut", "mocha"], "size": ["12 oz", "24 oz", "2 lb"]}, ["organic", "medium roast", "dark roast", "fair trade", "low acid", "single origin"], (8, 35)),
    ("grocery", "green tea", {"flavor": ["plain", "jasmine", "mint", "lemon"], "size": ["20 count", "50 count", "100 count"]}, ["organic", "decaf", "unsweetened", "loose leaf", "non gmo", "gluten free"], (4, 25)),
    ("grocery", "protein bar", {"flavor": ["chocolate", "peanut butter", "cookie dough", "vanilla"], "size": ["12 pack", "24 pack"]}, ["gluten free", "low sugar", "high protein", "keto", "non gmo", "plant based"], (15, 45)),
    ("grocery", "trail mix", {"size": ["6 pack", "12 pack", "24 pack"]}, ["gluten free", "non gmo", "no added sugar", "kosher", "resealable", "individually wrapped"], (8, 30)),
    ("grocery", "hot sauce", {"flavor": ["original", "habanero", "chipotle", "garlic", "ghost pepper"]}, ["gluten free", "no sugar added", "vegan", "small batch", "extra hot", "keto"], (4, 18)),
    ("electronics", "wireless earbuds", {"color": ["black", "white", "blue", "rose gold"]}, ["noise cancelling", "water resistant", "long battery life", "bluetooth 5.3", "wireless charging case", "built-in microphone"], (19, 180)),
    ("electronics", "phone case", {"model": ["iphone 14", "iphone 15", "galaxy s23", "pixel 8"], "color": ["black", "clear", "blue", "pink", "green"]}, ["shockproof", "slim", "magsafe compatible", "kickstand", "raised edges", "anti-yellowing"], (8, 40)),
    ("electronics", "usb c charger", {"wattage": ["20w", "30w", "65w", "100w"], "color": ["white", "black"]}, ["fast charging", "foldable plug", "gan", "2 port", "compact", "travel ready"], (12, 70)),
    ("electronics", "bluetooth speaker", {"color": ["black", "blue", "red", "gray", "teal"]}, ["waterproof", "portable", "long battery life", "bass boost", "shockproof", "built-in microphone"], (20, 160)),
    ("electronics", "laptop stand", {"color": ["silver", "black", "space gray"]}, ["adjustable", "aluminum", "foldable", "ergonomic", "portable", "ventilated"], (15, 60)),
    ("home", "bath towel", {"size": ["hand towel", "bath towel", "bath sheet"], "color": ["white", "gray", "navy", "beige", "sage"]}, ["cotton", "quick dry", "absorbent", "soft", "machine washable", "hotel quality"], (8, 45)),
    ("home", "bed pillow", {"size": ["standard", "queen", "king"]}, ["memory foam", "cooling", "hypoallergenic", "down alternative", "machine washable", "adjustable loft"], (15, 80)),
    ("home", "window curtain", {"size": ["52 x 63 inch", "52 x 84 inch", "52 x 95 inch"], "color": ["white", "gray", "navy", "beige", "black"]}, ["blackout", "thermal insulated", "grommet top", "noise reducing", "light filtering", "machine washable"], (12, 60)),
    ("home", "desk lamp", {"color": ["black", "white", "silver"]}, ["led", "dimmable", "usb charging port", "eye caring", "touch control", "adjustable arm"], (14, 70)),
    ("home", "throw blanket", {"size": ["50 x 60 inch", "60 x 80 inch"], "color": ["gray", "cream", "navy", "sage", "rust"]}, ["fleece", "soft", "lightweight", "machine washable", "sherpa", "reversible"], (12, 55)),
)  # fmt: skip

BRANDS: dict[str, tuple[str, ...]] = {
    "fashion": ("Stridex", "Northpeak", "Velora", "Kindred", "Alder & Co", "Trailborn", "Moda Lane", "Corewell"),
    "beauty": ("Lumiere", "Verdana", "Pure Petal", "Glowlab", "Sable", "Aurelle"),
    "grocery": ("Hearthstone", "Green Acre", "Sunward", "Maple Row", "Tidewater", "Bramble"),
    "electronics": ("Voltix", "Sonique", "Arcwave", "Kinetik", "Nimbus", "Pixelon"),
    "home": ("Haven", "Linen Loft", "Oakridge", "Cozynest", "Brightside", "Willow & Pine"),
}  # fmt: skip


def _title(brand: str, features: list[str], product_type: str) -> str:
    words = " ".join(word[:1].upper() + word[1:] for word in f"{' '.join(features)} {product_type}".split())
    return f"{brand} {words}"


def build_products() -> list[dict]:
    """The products as plain data: a pure function of SEED."""
    rng = random.Random(SEED)
    products, seen = [], set()
    for category, product_type, options, features, (low, high) in TYPES:
        for _ in range(PER_TYPE):
            while True:
                pid = "B0" + "".join(rng.choice(_ID_ALPHABET) for _ in range(8))
                if pid not in seen:
                    seen.add(pid)
                    break
            brand = rng.choice(BRANDS[category])
            chosen = rng.sample(features, 3)
            offered = {}
            for name, values in options.items():
                k = rng.randint(min(2, len(values)), len(values))
                keep = set(rng.sample(values, k))
                offered[name] = [v for v in values if v in keep]  # the type's order
            price = round(rng.uniform(low, high)) - 0.01
            products.append(
                {
                    "id": pid,
                    "category": category,
                    "type": product_type,
                    "title": _title(brand, chosen[:2], product_type),
                    "brand": brand,
                    "attributes": chosen,
                    "options": offered,
                    "price": round(max(price, 1.99), 2),
                }
            )
    return products


def _rank(index, query: str, pid: str) -> int | None:
    results = index.search(query)
    return results.index(pid) if pid in results else None


def build_goals(products: list[dict]) -> tuple[list[dict], list[dict]]:
    """(goals, browse goals): one goal per product whose verified query shows it on page 1, and
    one per product that a search for its bare type shows on page 2."""
    from toolbench.tools.webshop.search import SearchIndex

    index = SearchIndex(products)
    rng = random.Random(SEED + 1)
    goals, browse = [], []
    for product in products:
        wanted = rng.sample(product["attributes"], 2)
        options = {name: rng.choice(values) for name, values in product["options"].items()}
        budget = int(math.ceil(product["price"] / 10) * 10)
        goal = {
            "id": product["id"],
            "title": product["title"],
            "brand": product["brand"],
            "category": product["category"],
            "type": product["type"],
            "attributes": wanted,
            "options": options,
            "budget": budget,
        }
        for query in (
            f"{wanted[0]} {wanted[1]} {product['type']}",
            f"{product['brand']} {wanted[0]} {product['type']}",
            product["title"],
        ):
            rank = _rank(index, query, product["id"])
            if rank is not None and rank < PAGE:
                goals.append({**goal, "query": query})
                break
        rank = _rank(index, product["type"], product["id"])
        if rank is not None and PAGE <= rank < 2 * PAGE:
            browse.append({**goal, "query": product["type"]})
    return goals, browse


def dump_records(records: list[dict], head: str, tail: str, indent: str) -> str:
    """One record per line: diffable, and the same bytes on every run."""
    body = ",\n".join(indent + json.dumps(r, ensure_ascii=False) for r in records)
    return f"{head}\n{body}\n{tail}\n"


def dump_pool(records: list[dict], what: str) -> str:
    lines = [f"# {what}: written by tools/webshop/make_catalog.py, do not edit by hand."]
    lines += [f"- {json.dumps(r, ensure_ascii=False)}" for r in records]
    return "\n".join(lines) + "\n"


def main() -> None:
    here = Path(__file__).resolve().parent
    products = build_products()
    (here / "catalog.json").write_text(dump_records(products, '{"products": [', "]}", " "), encoding="utf-8")
    goals, browse = build_goals(products)
    pools = here.parent.parent / "templates" / "webshop" / "pools"
    pools.mkdir(parents=True, exist_ok=True)
    (pools / "goals.yaml").write_text(
        dump_pool(goals, "goals whose query shows the product on the first results page"), encoding="utf-8"
    )
    (pools / "browse_goals.yaml").write_text(
        dump_pool(browse, "goals whose product is on the second page of a search for its type"),
        encoding="utf-8",
    )
    print(f"wrote {len(products)} products, {len(goals)} goals, {len(browse)} browse goals", file=sys.stderr)


if __name__ == "__main__":
    main()
