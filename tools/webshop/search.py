"""The store's search engine: Okapi BM25 over each product's title, features, type and category.

Deterministic and dependency-free: scores are sums in a fixed order and ties keep catalog order,
so the same query gives the same pages on every machine (the templates' gold trajectories rely on
a product's rank). Results are memoised per normalised query: generation repeats queries often.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

_TOKEN = re.compile(r"[a-z0-9]+")
K1, B = 1.5, 0.75
MAX_RESULTS = 50  # five pages of ten, as WebShop's search engine returns


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def product_text(product: dict[str, Any]) -> str:
    """What search sees of a product (its options are not indexed: a size is chosen, not searched)."""
    return " ".join([product["title"], *product["attributes"], product["type"], product["category"]])


class SearchIndex:
    def __init__(self, products: Sequence[dict[str, Any]]):
        self.ids = [p["id"] for p in products]
        self.postings: dict[str, list[tuple[int, float]]] = {}
        counts = [Counter(tokens(product_text(p))) for p in products]
        lengths = [sum(c.values()) for c in counts]
        average = sum(lengths) / max(1, len(lengths))
        for doc, (count, length) in enumerate(zip(counts, lengths, strict=True)):
            norm = K1 * (1 - B + B * length / average)
            for term, tf in count.items():
                self.postings.setdefault(term, []).append((doc, tf * (K1 + 1) / (tf + norm)))
        n = len(products)
        self.idf = {
            term: math.log(1 + (n - len(posting) + 0.5) / (len(posting) + 0.5))
            for term, posting in self.postings.items()
        }
        self.search = lru_cache(maxsize=8192)(self._search)

    def _search(self, query: str) -> tuple[str, ...]:
        """Product ids, best first (ties in catalog order); at most MAX_RESULTS."""
        scores: dict[int, float] = {}
        for term in dict.fromkeys(tokens(query)):  # a repeated word counts once
            weight = self.idf.get(term)
            if weight is None:
                continue
            for doc, part in self.postings[term]:
                scores[doc] = scores.get(doc, 0.0) + weight * part
        # rounded so that float summation noise never reorders equal scores; ties keep catalog order
        ranked = heapq.nsmallest(MAX_RESULTS, scores, key=lambda doc: (-round(scores[doc], 9), doc))
        return tuple(self.ids[doc] for doc in ranked)
