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
from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import compress, repeat
from operator import add, ge, neg, sub
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
        # each term's postings as two tuples for `_search`: the documents, and what the term adds
        # to each one's score (weight * part, the same product a query computes)
        self.columns = {
            term: (tuple(doc for doc, _ in posting), tuple(self.idf[term] * part for _, part in posting))
            for term, posting in self.postings.items()
        }
        self.search = lru_cache(maxsize=8192)(self._search)

    def _search(self, query: str) -> tuple[str, ...]:
        """Product ids, best first (ties in catalog order); at most MAX_RESULTS.

        A document's score is the sum over the query's terms, in their order, of weight * part:
        each term's postings are added to every score at once (`update` over iterators, each
        document once per term), the same additions in the same order as one at a time (the
        first term's, 0.0 + x, is x itself: every x is positive)."""
        scores: dict[int, float] = {}
        get = scores.get
        for term in dict.fromkeys(tokens(query)):  # a repeated word counts once
            column = self.columns.get(term)
            if column is None:
                continue
            docs, adds = column
            if scores:
                scores.update(zip(docs, map(add, map(get, docs, repeat(0.0)), adds), strict=True))
            else:
                scores.update(zip(docs, adds, strict=True))
        # rounded to 9 decimals so that float summation noise never reorders equal scores; ties
        # keep catalog order
        return tuple(self.ids[doc] for doc in _ranked(scores))


def _ranked(scores: dict[int, float]) -> list[int]:
    """The first MAX_RESULTS documents by (-round(score, 9), document). Rounding is slow, and
    needed only where two different scores lie within 2e-9 of each other (rounding may make them
    equal): the contenders are ranked by raw score, and by rounded score only if such a pair is
    among them. (Equal raw scores round alike, and scores 2e-9 apart or more round apart, in
    the same order.)"""
    docs = _contenders(scores)
    pairs = sorted(zip(map(neg, map(scores.__getitem__, docs)), docs, strict=True))
    negatives = [negative for negative, _ in pairs]
    gaps = filter(None, map(sub, negatives[1:], negatives[:-1]))  # between different scores
    level = -negatives[-1] if negatives else 0.0
    if min(gaps, default=1.0) < 2e-9 + abs(level) * 1e-12:
        keys = zip(map(neg, map(round, map(scores.__getitem__, docs), repeat(9))), docs, strict=True)
        return [doc for _, doc in heapq.nsmallest(MAX_RESULTS, keys)]
    return [doc for _, doc in pairs[:MAX_RESULTS]]


def _contenders(scores: dict[int, float]) -> Iterable[int]:
    """The documents that can rank among the first MAX_RESULTS: those scoring within 2e-9 of the
    MAX_RESULTS-th best raw score, or above. (Rounding to 9 decimals cannot bring a score lower
    than that level with the ones above it, so the others are left out.)"""
    if len(scores) <= MAX_RESULTS:
        return scores
    level = sorted(scores.values(), reverse=True)[MAX_RESULTS - 1]  # in C, unlike nlargest
    cut = level - 2e-9 - abs(level) * 1e-12
    return list(compress(scores, map(ge, scores.values(), repeat(cut))))
