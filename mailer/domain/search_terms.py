"""The words a contact is found by (staff search), and the sort keys of the contact list.

A contact is indexed under every word of its name, outlet, address, beats and tags:
case-folded and without accents (``Clémence`` is found by ``clem``), each chunk whole
(``o'brien``, ``foreign-policy``, the full address) and in its parts (``o``, ``brien``,
``foreign``, ``policy``, ``dana``, ``harborledger``, ``example``). A search word matches
the beginning of an indexed word, so ``ledg`` finds "Harbor Ledger" and ``dana@harb``
finds the address. No I/O here: :mod:`mailer.store.contact_search` stores and queries them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

#: Longest indexed word; longer ones are cut (a search word is cut the same way).
MAX_TERM = 64
_PARTS = re.compile(r"[\W_]+", re.UNICODE)


def fold(text: str) -> str:
    """Case-folded, accents removed, spaces collapsed: how words and sort keys compare."""
    if text.isascii():  # the common case, and the same result: nothing to decompose
        return " ".join(text.lower().split())
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())


def _words(text: str | None) -> Iterable[str]:
    if not text:
        return
    for chunk in fold(text).split(" "):
        if not chunk:
            continue
        yield chunk[:MAX_TERM]
        for part in _PARTS.split(chunk):
            if part and part != chunk:
                yield part[:MAX_TERM]


def contact_terms(
    *,
    email: str | None,
    first_name: str | None,
    last_name: str | None,
    outlet: str | None,
    beats: Iterable[str] = (),
    tags: Iterable[str] = (),
) -> set[str]:
    """Every word the contact is found by (empty for an erased contact)."""
    if not email:
        return set()
    out: set[str] = set()
    for text in (email, first_name, last_name, outlet, *beats, *tags):
        out.update(_words(text))
    return out


def query_words(query: str) -> list[str]:
    """The words of a search box, folded like the index; a chunk with punctuation is kept
    whole (it matches whole indexed chunks: an address, ``o'brien``). At most 8 words."""
    words: list[str] = []
    for chunk in fold(query).split(" "):
        word = chunk.strip()[:MAX_TERM]
        if word and word not in words and _PARTS.sub("", word):
            words.append(word)
    return words[:8]


def prefix_upper(word: str) -> str:
    """The smallest string greater than every string starting with ``word`` (the exclusive
    upper bound of a prefix range scan): the last character bumped by one code point."""
    last = ord(word[-1])
    bumped = last + 1 if last + 1 < 0xD800 or last + 1 > 0xDFFF else 0xE000
    return word[:-1] + chr(min(bumped, 0x10FFFF))


def name_key(first_name: str | None, last_name: str | None) -> str:
    """Sort key of a contact's name: last name, then first name, folded."""
    return fold(f"{last_name or ''} {first_name or ''}")[:200]


def outlet_key(outlet: str | None) -> str:
    """Sort key of a contact's outlet, folded."""
    return fold(outlet or "")[:200]
