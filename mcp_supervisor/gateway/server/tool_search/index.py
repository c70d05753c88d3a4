"""A BM25 index over tool definitions: names, titles, descriptions, parameter names and their descriptions.

Written here rather than taken from a library: the whole ranking is the ~60 lines below, with per-field
weights and a candidate filter (the client's view) that rank_bm25 and bm25s do not offer; bm25s would also bring
numpy and scipy into the gateway for 2 000 documents that score in well under a millisecond per query term.

A tool's weighted bag of terms: its name counts NAME_WEIGHT times, its title TITLE_WEIGHT times, its description
and parameter names once, parameter descriptions half. BM25 (k1 = 1.2, b = 0.75) over those bags; the idf is
the BM25+ variant that stays positive for terms in more than half the tools.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from mcp_supervisor.gateway.server.tool_search.text import terms

K1 = 1.2
B = 0.75
NAME_WEIGHT = 3.0
TITLE_WEIGHT = 2.0
PARAMETER_DESCRIPTION_WEIGHT = 0.5
# Texts up to this long keep their terms between index builds: a catalog change usually touches one backend, so
# a rebuild re-reads the other backends' texts from the cache. Longer ones are rare, and not worth holding.
CACHED_TEXT_CHARS = 4096


@lru_cache(maxsize=16384)
def _cached_terms(text: str) -> tuple[str, ...]:
    return tuple(terms(text))


def text_terms(text: str) -> Sequence[str]:
    return _cached_terms(text) if len(text) <= CACHED_TEXT_CHARS else terms(text)


def _parameters(schema: object) -> Iterable[tuple[str, str]]:
    """(name, description) of each top-level property of an input schema."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return
    for name, spec in properties.items():
        description = spec.get("description") if isinstance(spec, dict) else None
        yield str(name), description if isinstance(description, str) else ""


def weighted_terms(tool: Mapping[str, Any]) -> dict[str, float]:
    """The bag of terms of one tool definition, each with its weighted count."""
    bag: dict[str, float] = defaultdict(float)

    def add(text: object, weight: float) -> None:
        if isinstance(text, str):
            for term in text_terms(text):
                bag[term] += weight

    add(tool.get("name"), NAME_WEIGHT)
    add(tool.get("title"), TITLE_WEIGHT)
    annotations = tool.get("annotations")
    if isinstance(annotations, dict):
        add(annotations.get("title"), TITLE_WEIGHT)
    add(tool.get("description"), 1.0)
    for name, description in _parameters(tool.get("inputSchema")):
        add(name, 1.0)
        add(description, PARAMETER_DESCRIPTION_WEIGHT)
    return bag


class SearchIndex:
    """Built once per catalog (immutable after), searched by any number of requests at once."""

    def __init__(self, tools: Sequence[Mapping[str, Any]]) -> None:
        self.tools = tools
        self._by_name = {str(tool.get("name")): i for i, tool in enumerate(tools)}
        self._postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
        lengths: list[float] = []
        for doc, tool in enumerate(tools):
            bag = weighted_terms(tool)
            lengths.append(sum(bag.values()))
            for term, count in bag.items():
                self._postings[term].append((doc, count))
        average = (sum(lengths) / len(lengths)) if lengths else 1.0
        # Each document's length normalisation, precomputed: k1 * (1 - b + b * |d| / avgdl).
        self._norms = [K1 * (1 - B + B * length / (average or 1.0)) for length in lengths]
        total = len(tools)
        self._idf = {
            term: math.log(1 + (total - len(postings) + 0.5) / (len(postings) + 0.5))
            for term, postings in self._postings.items()
        }

    def search(self, query: str, limit: int, visible: Callable[[Mapping[str, Any]], bool]) -> list[Mapping[str, Any]]:
        """The `limit` best tools for `query` among those `visible` accepts, best first; a tool named exactly
        as the query comes first. Tools that share no term with the query are not returned."""
        scores: dict[int, float] = defaultdict(float)
        for term in set(terms(query)):
            idf = self._idf.get(term)
            if idf is None:
                continue
            for doc, count in self._postings[term]:
                scores[doc] += idf * count * (K1 + 1) / (count + self._norms[doc])
        exact = self._by_name.get(query.strip())
        if exact is not None:
            scores[exact] = math.inf
        ranked = sorted(scores, key=lambda doc: (-scores[doc], doc))
        found: list[Mapping[str, Any]] = []
        for doc in ranked:
            if len(found) == limit:
                break
            if visible(self.tools[doc]):
                found.append(self.tools[doc])
        return found
