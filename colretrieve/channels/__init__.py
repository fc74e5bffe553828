"""Retrieval channels: the independent rankings a search can fuse.

- ``visual``: the ColPali-family page multi-vector (page images), scored by MaxSim.
- ``text``: per-token vectors of the page's text layer from a text encoder, same MaxSim
  engine and stores.
- ``bm25``: lexical BM25 over the same text.

Each channel keeps its own store (with the same document lifecycle), so a channel can be
added to an existing index later, embedding only what it lacks, or dropped to free its space.
"""

from __future__ import annotations

from collections.abc import Iterable

from colretrieve.errors import InvalidInputError

VISUAL = "visual"
TEXT = "text"
BM25 = "bm25"
ALL_CHANNELS = (VISUAL, TEXT, BM25)
TEXT_CHANNELS = (TEXT, BM25)
"""The channels that need only the text layer: no page images, no vision model."""


def parse_channels(value: str | Iterable[str]) -> tuple[str, ...]:
    """``"bm25, text"`` or ``["text", "bm25"]`` -> ``("text", "bm25")`` in canonical order.

    Unknown names and an empty selection raise InvalidInputError.
    """
    names = value.split(",") if isinstance(value, str) else list(value)
    wanted = {name.strip().lower() for name in names if name and name.strip()}
    unknown = sorted(wanted - set(ALL_CHANNELS))
    if unknown:
        raise InvalidInputError(
            f"unknown channel(s) {', '.join(unknown)}; choose from {', '.join(ALL_CHANNELS)}"
        )
    if not wanted:
        raise InvalidInputError(f"choose at least one channel of {', '.join(ALL_CHANNELS)}")
    return tuple(name for name in ALL_CHANNELS if name in wanted)


__all__ = ["ALL_CHANNELS", "BM25", "TEXT", "TEXT_CHANNELS", "VISUAL", "parse_channels"]
