"""Words of a tool definition or a query, as the ranking compares them: lower case, split at camelCase, `_`,
`-`, `.` and every other non-alphanumeric character, common English words dropped, and a light suffix stemmer
so that "listing", "lists" and "listed" meet "list". No model, no dictionary: the same rules on both sides.
"""

from __future__ import annotations

import re
from functools import lru_cache

_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_WORDS = re.compile(r"[a-z0-9]+")
# fmt: off
STOP_WORDS = frozenset((
    "a", "an", "and", "any", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "get", "give", "has",
    "have", "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "our", "please", "show",
    "so", "some", "that", "the", "their", "them", "then", "there", "these", "this", "those", "to", "tell", "us",
    "use", "using", "want", "was", "we", "what", "when", "where", "which", "who", "will", "with", "would", "you",
    "your",
))
# fmt: on
# A handful of everyday words and the one the tools use for it; both sides are mapped (a query's "folder"
# meets a description's "directory"). Generic on purpose: no entry names a particular server's tool.
SYNONYMS = {
    "folder": "directory",
    "dir": "directory",
    "delete": "remove",
    "erase": "remove",
    "rename": "move",
    "lookup": "search",
    "find": "search",
    "sum": "add",
    "plus": "add",
    "picture": "image",
    "photo": "image",
    "clock": "time",
    "timezone": "zone",
}
_SUFFIXES = (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("s", ""))


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Strip one common inflection from a word of more than four letters ("ss", "us", "is" endings stay), then
    a doubled final consonant and a final "e", so that "create", "created" and "creating" all give "creat"."""
    word = SYNONYMS.get(word, word)
    if len(word) <= 4 or word.endswith(("ss", "us", "is")):
        return word
    for suffix, replacement in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: len(word) - len(suffix)] + replacement
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]  # "running" → "runn" → "run"
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]
    return SYNONYMS.get(word, word)


def terms(text: str) -> list[str]:
    """The searchable terms of `text`, in order, repeats kept (they count)."""
    spaced = _CAMEL.sub(r"\1 \2", text).lower()
    return [stem(word) for word in _WORDS.findall(spaced) if word not in STOP_WORDS]
