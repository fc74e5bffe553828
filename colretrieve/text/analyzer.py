"""Words -> index terms for the bm25 channel, one definition for every backend.

The embedded store hands these terms to SQLite FTS5 and the Qdrant store turns them into
sparse vectors, so both rank by the same vocabulary. Lowercased Unicode words, English stop
words dropped, Snowball (Porter 2) stems; digits are kept whole because part numbers, years
and amounts are exactly what lexical search is for.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import snowballstemmer

ANALYZER = "words-stop-snowball-en/2"
"""Names this analyzer's behaviour; bm25 stores record it and refuse another, since terms
from a different analyzer would silently miss. Change it whenever ``terms`` changes."""
WORD = re.compile(r"\w+", re.UNICODE)
MAX_TERM_CHARS = 64

# A short list on purpose: only words with no retrieval value in questions or pages.
STOP_WORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    ]
)

_stemmer = snowballstemmer.stemmer("english")

# pypdfium2 marks a word hyphenated across a line break with U+FFFE ("com\ufffeplement");
# dropping it (and soft hyphens) gives the word back whole.
_JOINERS = str.maketrans({"\ufffe": None, "\u00ad": None})


def clean_text(text: str) -> str:
    """Page text with PDF hyphenation marks removed, so split words read whole."""
    return text.translate(_JOINERS)


@lru_cache(maxsize=65_536)
def _stem(word: str) -> str:
    return word if word.isdigit() else _stemmer.stemWord(word)


def terms(text: str) -> list[str]:
    """The index terms of ``text``, in order, repeats kept (BM25 counts them)."""
    normalised = unicodedata.normalize("NFKC", clean_text(text)).casefold()
    return [
        _stem(word)
        for word in WORD.findall(normalised)
        if word not in STOP_WORDS and len(word) <= MAX_TERM_CHARS and word != "_"
    ]
