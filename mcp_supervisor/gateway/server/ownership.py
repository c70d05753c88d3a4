"""Who owns an exposed name, URI or URI template when several backends list it: first come, first served.

The rule (docs/security.md, "What backends may say"): every (backend, item) pair gets a rank when this gateway
first sees it, and among the backends listing an item the lowest rank owns it. What the founding backends (those
of the first mcp_server.json the gateway sees) list when they first link ranks in mcp_server.json order, however
fast each backend starts; pairs seen later (a later list_changed, a backend added by a reload) rank by arrival.
So a backend that comes later, or changes its list later, never takes what another listed first, whatever the
keys' alphabetical order. A pair is forgotten when its backend stops listing the item while linked, or leaves
the configuration; a backend that is down keeps what it owns (its URIs and names answer "unavailable", they do
not fall to someone else). Ranks live in memory only: after a gateway restart, the running backends are
founding ones and rank in config order again.

Two more rules need no ranks: a name that starts with another backend's default prefix (`<key><SEP>`) is that
backend's namespace and never another's, and a URI that a backend lists is never served through another's
template (catalog.py routes exact URIs first).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Rank = tuple[int, int]  # (0, position in mcp_server.json): a founding backend's first list; else (1, arrival)


class Claims:
    """The ranks of every (backend, item) pair seen, per kind ("tool", "prompt", "resource", "template")."""

    def __init__(self) -> None:
        self._arrivals = itertools.count()
        self._ranks: dict[str, dict[str, dict[str, Rank]]] = {}
        # Per kind, the founding backends whose first list was ranked already (what they add later is new).
        self._settled: dict[str, set[str]] = {}

    def resolve(
        self,
        kind: str,
        listed: Mapping[str, Iterable[str]],
        linked: Collection[str],
        configured: Sequence[str],
        founding: Collection[str] | None = None,
    ) -> dict[str, str]:
        """Item → owning backend, for every item of `kind` some configured backend holds (linked or down).

        `listed`: what each linked backend lists now; `configured`: every backend key, in mcp_server.json order;
        `founding`: the backends of the first mcp_server.json this gateway saw (None: not known yet, so every
        backend's list counts as its first).
        """
        order = {key: index for index, key in enumerate(configured)}
        now_listing = {key: set(names) for key, names in listed.items()}
        linked_keys = set(linked)
        ranks = self._ranks.setdefault(kind, {})
        for item in list(ranks):
            holders = ranks[item]
            for key in list(holders):
                if key not in order or (key in linked_keys and item not in now_listing.get(key, ())):
                    del holders[key]
            if not holders:
                del ranks[item]
        settled = self._settled.setdefault(kind, set())
        for key in sorted(now_listing, key=lambda k: (order.get(k, len(order)), k)):
            first_list = founding is None or (key in founding and key not in settled)
            for item in now_listing[key]:
                holders = ranks.setdefault(item, {})
                if key not in holders:
                    holders[key] = (0, order.get(key, len(order))) if first_list else (1, next(self._arrivals))
            if founding is not None and key in founding:
                settled.add(key)
        return {item: min(holders, key=lambda k: (holders[k], k)) for item, holders in ranks.items()}

    def rank(self, kind: str, item: str, key: str) -> Rank:
        return self._ranks.get(kind, {}).get(item, {}).get(key, (2, 0))


@dataclass
class Arbiter:
    """What one catalog rebuild knows of the backends: their ranks, order, prefixes and display names."""

    claims: Claims
    configured: Sequence[str]  # every backend key, mcp_server.json order
    linked: Collection[str]
    separator: str = "--"
    # Keys of backends whose names carry the default `<key><SEP>` prefix (their namespace is reserved).
    default_prefixed: Collection[str] = ()
    display_names: Mapping[str, str] = field(default_factory=dict)
    founding: Collection[str] | None = None  # the backends of the first mcp_server.json seen (None: unknown)

    @classmethod
    def fresh(cls, keys: Iterable[str], separator: str = "--") -> Arbiter:
        """A throwaway arbiter: no history, backends ranked by key (pure aggregation, unit tests)."""
        ordered = sorted(keys)
        return cls(Claims(), ordered, ordered, separator)

    def resolve(self, kind: str, candidates: Iterable[tuple[str, str]]) -> dict[str, str]:
        """(item, backend) pairs listed now → item → owner."""
        listed: dict[str, list[str]] = {key: [] for key in self.linked}
        for item, key in candidates:
            listed.setdefault(key, []).append(item)
        return self.claims.resolve(kind, listed, self.linked, self.configured, self.founding)

    def namespace_owner(self, name: str, key: str) -> str | None:
        """The other backend whose default prefix `name` carries (a name it alone may expose), if any."""
        for other in self.default_prefixed:
            if other != key and name.startswith(f"{other}{self.separator}"):
                return other
        return None

    def attribute(self, exposed: dict[str, Any], key: str, original: str) -> None:
        """Give an exposed tool or prompt a title that says whose it is, `<display name>: <its title, else its
        own name>`, so that no backend can pass for another in what a client shows. None is needed (and none is
        kept) where the backend set no title, its server has no display name of its own, and the name begins
        with `<key><SEP>`, which no other backend may use: what a client shows (title, else name) says whose it
        is either way, and the list does not carry a title per tool that repeats the name (+20 % bytes for 1000
        tools)."""
        given = exposed.get("title")
        shown = self.display_names.get(key) or key
        if not (isinstance(given, str) and given):
            if shown == key and str(exposed.get("name")).startswith(f"{key}{self.separator}"):
                exposed.pop("title", None)
                return
            given = original
        exposed["title"] = f"{shown}: {given}"


def template_sample(template: str) -> str:
    """One URI `template` expands to (each expression with the value "x"), to test overlaps with."""

    def expand(match: re.Match[str]) -> str:
        operator = match.group(1)[:1]
        return {"?": "?x=x", "&": "&x=x", "/": "/x", ".": ".x", ";": ";x=x", "#": "#x"}.get(operator, "x")

    return re.sub(r"\{([^}]*)\}", expand, template)


def templates_overlap(a: str, pattern_a: re.Pattern[str], b: str, pattern_b: re.Pattern[str]) -> bool:
    """Whether some URI matches both templates (tested on one expansion of each: a cheap, partial test)."""
    return pattern_b.fullmatch(template_sample(a)) is not None or pattern_a.fullmatch(template_sample(b)) is not None
