"""Builds the seeded catalog of the simulated Cat API: `tools/cat_api/catalog.json`, plus the value
pools the templates draw from (`templates/cat_api/pools/*.yaml`).

The breeds are real (ids, names and facts after TheCatAPI's breed list); the images are synthetic,
drawn from a fixed seed. Running the script again writes the same bytes:

    python tools/cat_api/make_catalog.py
"""

from __future__ import annotations

import json
import random
import sys
from datetime import datetime, timedelta
from pathlib import Path

SEED = 20240311
N_IMAGES = 400
_EPOCH = datetime(2018, 1, 1)
CATEGORIES = ("hats", "space", "sunglasses", "boxes", "ties", "sinks", "clothes")
_ID_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no l/I/1/O/0 look-alikes

# id, name, origin, temperament, life span (years), weight (lb)
BREEDS: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("abys", "Abyssinian", "Egypt", "Active, Energetic, Independent, Intelligent, Gentle", "14 - 15", "7 - 10"),
    ("aege", "Aegean", "Greece", "Affectionate, Social, Intelligent, Playful, Active", "9 - 12", "7 - 10"),
    ("abob", "American Bobtail", "United States", "Intelligent, Interactive, Lively, Playful, Sensitive", "11 - 15", "7 - 16"),
    ("acur", "American Curl", "United States", "Affectionate, Curious, Intelligent, Interactive, Lively, Playful, Social", "12 - 16", "5 - 10"),
    ("asho", "American Shorthair", "United States", "Active, Curious, Easy Going, Playful, Calm", "15 - 17", "8 - 15"),
    ("awir", "American Wirehair", "United States", "Affectionate, Curious, Gentle, Intelligent, Interactive, Lively, Loyal, Playful", "14 - 18", "8 - 15"),
    ("amau", "Arabian Mau", "United Arab Emirates", "Affectionate, Agile, Curious, Independent, Playful, Loyal", "12 - 14", "8 - 16"),
    ("amis", "Australian Mist", "Australia", "Lively, Social, Fun-loving, Relaxed, Affectionate", "12 - 16", "7 - 15"),
    ("bali", "Balinese", "United States", "Affectionate, Intelligent, Playful", "10 - 15", "4 - 10"),
    ("bamb", "Bambino", "United States", "Affectionate, Lively, Friendly, Intelligent", "12 - 14", "4 - 9"),
    ("beng", "Bengal", "United States", "Alert, Agile, Energetic, Demanding, Intelligent", "12 - 15", "6 - 12"),
    ("birm", "Birman", "France", "Affectionate, Active, Gentle, Social", "14 - 15", "6 - 15"),
    ("bomb", "Bombay", "United States", "Affectionate, Dependent, Gentle, Intelligent, Playful", "12 - 16", "6 - 11"),
    ("bslo", "British Longhair", "United Kingdom", "Affectionate, Easy Going, Independent, Intelligent, Loyal, Social", "12 - 14", "8 - 18"),
    ("bsho", "British Shorthair", "United Kingdom", "Affectionate, Easy Going, Gentle, Loyal, Patient, Calm", "12 - 17", "12 - 20"),
    ("bure", "Burmese", "Burma", "Curious, Intelligent, Gentle, Social, Interactive, Playful, Lively", "15 - 16", "6 - 12"),
    ("buri", "Burmilla", "United Kingdom", "Easy Going, Friendly, Intelligent, Lively, Playful, Social", "10 - 15", "6 - 13"),
    ("cspa", "California Spangled", "United States", "Affectionate, Curious, Intelligent, Loyal, Social", "10 - 14", "10 - 15"),
    ("ctif", "Chantilly-Tiffany", "United States", "Affectionate, Demanding, Interactive, Loyal", "14 - 16", "7 - 12"),
    ("char", "Chartreux", "France", "Affectionate, Loyal, Intelligent, Social, Lively, Playful", "12 - 15", "6 - 15"),
    ("chau", "Chausie", "Egypt", "Affectionate, Intelligent, Playful, Social", "12 - 14", "7 - 15"),
    ("chee", "Cheetoh", "United States", "Affectionate, Gentle, Intelligent, Social", "12 - 14", "8 - 15"),
    ("csho", "Colorpoint Shorthair", "United States", "Affectionate, Intelligent, Playful, Social", "12 - 16", "4 - 10"),
    ("crex", "Cornish Rex", "United Kingdom", "Affectionate, Intelligent, Active, Curious, Playful", "11 - 14", "5 - 9"),
    ("cymr", "Cymric", "Canada", "Gentle, Loyal, Intelligent, Playful", "8 - 14", "8 - 13"),
    ("cypr", "Cyprus", "Cyprus", "Affectionate, Social", "12 - 15", "8 - 16"),
    ("drex", "Devon Rex", "United Kingdom", "Highly interactive, Mischievous, Loyal, Social, Playful", "10 - 15", "5 - 10"),
    ("dons", "Donskoy", "Russia", "Playful, Affectionate, Loyal, Social", "12 - 15", "10 - 12"),
    ("lihu", "Dragon Li", "China", "Intelligent, Friendly, Gentle, Loving, Loyal", "12 - 15", "9 - 12"),
    ("emau", "Egyptian Mau", "Egypt", "Agile, Dependent, Gentle, Intelligent, Lively, Loyal, Playful", "18 - 20", "6 - 14"),
    ("ebur", "European Burmese", "Burma", "Sweet, Affectionate, Loyal", "15 - 18", "7 - 14"),
    ("esho", "Exotic Shorthair", "United States", "Affectionate, Sweet, Loyal, Quiet, Peaceful", "12 - 15", "7 - 14"),
    ("hbro", "Havana Brown", "United Kingdom", "Affectionate, Curious, Demanding, Friendly, Intelligent, Playful", "10 - 15", "6 - 10"),
    ("hima", "Himalayan", "United States", "Dependent, Gentle, Intelligent, Quiet, Social", "9 - 15", "7 - 14"),
    ("jbob", "Japanese Bobtail", "Japan", "Active, Agile, Clever, Easy Going, Intelligent, Lively, Loyal, Playful, Social", "13 - 16", "5 - 10"),
    ("java", "Javanese", "United States", "Active, Devoted, Intelligent, Playful", "10 - 12", "5 - 10"),
    ("khao", "Khao Manee", "Thailand", "Calm, Relaxed, Talkative, Playful, Warm", "10 - 12", "8 - 12"),
    ("kora", "Korat", "Thailand", "Active, Loyal, Highly intelligent, Expressive, Trainable", "10 - 15", "7 - 11"),
    ("kuri", "Kurilian", "Russia", "Independent, Highly intelligent, Clever, Inquisitive, Sociable, Playful, Trainable", "15 - 20", "8 - 15"),
    ("lape", "LaPerm", "Thailand", "Affectionate, Friendly, Gentle, Intelligent, Playful, Quiet", "10 - 15", "6 - 10"),
    ("mcoo", "Maine Coon", "United States", "Adaptable, Intelligent, Loving, Gentle, Independent", "12 - 15", "12 - 18"),
    ("mala", "Malayan", "United Kingdom", "Affectionate, Interactive, Playful, Social", "12 - 18", "8 - 12"),
    ("manx", "Manx", "Isle of Man", "Easy Going, Intelligent, Loyal, Playful, Social", "12 - 14", "7 - 13"),
    ("munc", "Munchkin", "United States", "Agile, Easy Going, Intelligent, Playful", "10 - 15", "5 - 9"),
    ("nebe", "Nebelung", "United States", "Gentle, Quiet, Shy, Playful", "11 - 16", "7 - 11"),
    ("norw", "Norwegian Forest Cat", "Norway", "Sweet, Active, Intelligent, Social, Playful, Lively, Curious", "12 - 16", "8 - 16"),
    ("ocic", "Ocicat", "United States", "Active, Agile, Curious, Demanding, Friendly, Gentle, Lively, Playful, Social", "12 - 14", "7 - 15"),
    ("orie", "Oriental", "United States", "Energetic, Affectionate, Intelligent, Social, Playful, Curious", "12 - 14", "5 - 10"),
    ("pers", "Persian", "Iran (Persia)", "Affectionate, Loyal, Sedate, Quiet", "14 - 15", "9 - 14"),
    ("pixi", "Pixie-bob", "United States", "Affectionate, Social, Intelligent, Loyal", "13 - 16", "8 - 17"),
    ("raga", "Ragamuffin", "United States", "Affectionate, Friendly, Gentle, Calm", "12 - 16", "8 - 20"),
    ("ragd", "Ragdoll", "United States", "Affectionate, Friendly, Gentle, Quiet, Easygoing", "12 - 17", "12 - 20"),
    ("rblu", "Russian Blue", "Russia", "Active, Dependent, Easy Going, Gentle, Intelligent, Loyal, Playful, Quiet", "10 - 16", "5 - 11"),
    ("sava", "Savannah", "United States", "Curious, Social, Intelligent, Loyal, Outgoing, Adventurous, Affectionate", "17 - 20", "8 - 25"),
    ("sfol", "Scottish Fold", "United Kingdom", "Affectionate, Intelligent, Loyal, Playful, Social, Sweet, Loving", "11 - 14", "5 - 11"),
    ("srex", "Selkirk Rex", "United States", "Active, Affectionate, Dependent, Gentle, Patient, Playful, Quiet, Social", "14 - 15", "6 - 16"),
    ("siam", "Siamese", "Thailand", "Active, Agile, Clever, Sociable, Loving, Energetic", "12 - 15", "8 - 15"),
    ("sibe", "Siberian", "Russia", "Curious, Intelligent, Loyal, Sweet, Agile, Playful, Affectionate", "12 - 15", "8 - 16"),
    ("sing", "Singapura", "Singapore", "Affectionate, Curious, Easy Going, Intelligent, Interactive, Lively, Loyal", "12 - 15", "5 - 8"),
    ("snow", "Snowshoe", "United States", "Affectionate, Social, Intelligent, Sweet-tempered", "14 - 19", "7 - 12"),
    ("soma", "Somali", "Somalia", "Mischievous, Tenacious, Intelligent, Affectionate, Gentle, Interactive, Loyal", "12 - 16", "6 - 12"),
    ("sphy", "Sphynx", "Canada", "Loyal, Inquisitive, Friendly, Quiet, Gentle", "12 - 14", "6 - 12"),
    ("tonk", "Tonkinese", "Canada", "Curious, Intelligent, Social, Lively, Outgoing, Playful, Affectionate", "14 - 16", "6 - 12"),
    ("toyg", "Toyger", "United States", "Playful, Social, Intelligent", "12 - 15", "7 - 15"),
    ("tang", "Turkish Angora", "Turkey", "Affectionate, Agile, Clever, Gentle, Intelligent, Playful, Social", "15 - 18", "5 - 10"),
    ("tvan", "Turkish Van", "Turkey", "Agile, Intelligent, Loyal, Playful, Energetic", "12 - 17", "7 - 20"),
    ("ycho", "York Chocolate", "United States", "Playful, Social, Intelligent, Curious, Friendly", "13 - 15", "12 - 18"),
)  # fmt: skip


def _metric(pounds: str) -> str:
    low, high = (int(part) for part in pounds.split(" - "))
    return f"{max(1, round(low * 0.4536))} - {round(high * 0.4536)}"


def build() -> dict:
    """The catalog as plain data: a pure function of SEED."""
    rng = random.Random(SEED)
    breeds = [
        {
            "id": bid,
            "name": name,
            "origin": origin,
            "temperament": temperament,
            "life_span": life_span,
            "weight": {"imperial": pounds, "metric": _metric(pounds)},
        }
        for bid, name, origin, temperament, life_span, pounds in BREEDS
    ]
    seen: set[str] = set()
    images = []
    # the first 3 images of every breed are spread over the catalog so each breed has some
    breed_slots = [b["id"] for b in breeds] * 3
    rng.shuffle(breed_slots)
    positions = sorted(rng.sample(range(N_IMAGES), len(breed_slots)))
    forced = dict(zip(positions, breed_slots, strict=True))
    for k in range(N_IMAGES):
        while True:
            image_id = "".join(rng.choice(_ID_ALPHABET) for _ in range(9))
            if image_id.lower() not in seen:
                seen.add(image_id.lower())
                break
        mime = rng.choices(("jpg", "png", "gif"), weights=(70, 18, 12))[0]
        if k in forced:
            breed_ids = [forced[k]]
        elif rng.random() < 0.15:
            breed_ids = [rng.choice(breeds)["id"]]
        else:
            breed_ids = []
        categories = [rng.choice(CATEGORIES)] if rng.random() < 0.5 else []
        width = rng.randrange(320, 2400, 8)
        height = max(240, round(width * rng.choice((0.5625, 0.667, 0.75, 1.0, 1.333, 1.5))))
        # uploads in catalog order, every three days from 2018-01-01
        uploaded = _EPOCH + timedelta(days=3 * k, hours=rng.randrange(24), minutes=rng.randrange(60))
        images.append(
            {
                "id": image_id,
                "url": f"https://cdn2.thecatapi.com/images/{image_id}.{mime}",
                "width": width,
                "height": height,
                "mime_type": mime,
                "breed_ids": breed_ids,
                "categories": categories,
                "created_at": uploaded.strftime("%Y-%m-%dT%H:%M:00Z"),
            }
        )
    # the account's starting store: a few votes and favourites with known ids
    picks = rng.sample([img["id"] for img in images], 14)
    votes = [
        {"id": 1001 + i, "image_id": image_id, "value": 1 if i % 3 else -1}
        for i, image_id in enumerate(picks[:8])
    ]
    favourites = [{"id": 2001 + i, "image_id": image_id} for i, image_id in enumerate(picks[8:])]
    return {
        "categories": list(CATEGORIES),
        "breeds": breeds,
        "images": images,
        "account": {"votes": votes, "favourites": favourites},
    }


def dump_catalog(catalog: dict) -> str:
    """One record per line: diffable, and the same bytes on every run."""
    lines = ["{"]
    lines.append(f' "categories": {json.dumps(catalog["categories"])},')
    for key in ("breeds", "images"):
        lines.append(f' "{key}": [')
        rows = [f"  {json.dumps(row, sort_keys=True)}" for row in catalog[key]]
        lines.append(",\n".join(rows))
        lines.append(" ],")
    lines.append(f' "account": {json.dumps(catalog["account"], sort_keys=True)}')
    lines.append("}")
    return "\n".join(lines) + "\n"


def dump_pools(catalog: dict) -> dict[str, str]:
    """Template pools: breeds as {id, name}; images that are not favourited in the default store
    (so a plain `add_favourite` template never hits the duplicate rule)."""
    favourited = {fav["image_id"] for fav in catalog["account"]["favourites"]}
    header = "# Written by tools/cat_api/make_catalog.py from the catalog; do not edit by hand.\n"
    breeds = "".join(
        f"- {{id: {json.dumps(b['id'])}, name: {json.dumps(b['name'])}}}\n" for b in catalog["breeds"]
    )
    images = "".join(f'- "{img["id"]}"\n' for img in catalog["images"] if img["id"] not in favourited)
    return {"breeds.yaml": header + breeds, "image_ids.yaml": header + images}


def main() -> None:
    here = Path(__file__).resolve().parent
    root = here.parent.parent
    catalog = build()
    (here / "catalog.json").write_text(dump_catalog(catalog), encoding="utf-8")
    pools = root / "templates" / "cat_api" / "pools"
    pools.mkdir(parents=True, exist_ok=True)
    for name, text in dump_pools(catalog).items():
        (pools / name).write_text(text, encoding="utf-8")
    print(f"wrote {here / 'catalog.json'} and {len(dump_pools(catalog))} pools", file=sys.stderr)


if __name__ == "__main__":
    main()
