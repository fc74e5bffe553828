"""What both bm25 stores share: page-text and query checks, the analysis, the search entry.

A lexical backend subclasses :class:`LexicalStoreBase` and fills one hook,
``_search_terms``, which gets each query's analysed terms (distinct, in order; an empty
list means no term survived analysis and must give ``[]``), a checked ``k`` and filter.
"""

from __future__ import annotations

from collections.abc import Sequence

from colretrieve.contracts import PageText, SearchFilter, SearchHit
from colretrieve.errors import InvalidInputError
from colretrieve.store.base import Closing, check_filter, check_k, check_page_order
from colretrieve.text.analyzer import terms

MAX_PAGE_CHARS = 200_000
"""Characters of a page's text that are indexed; the rest is ignored. A dense printed page
holds ~5K; past this cap a "page" is a text dump, and analysing it would stall the writer."""
MAX_QUERY_CHARS = 10_000
MAX_QUERY_TERMS = 256
"""Distinct terms of a query that are searched (the first ones); more only slows BM25."""


def page_terms(pages: Sequence[PageText], next_page: int, total_pages: int) -> list[list[str]]:
    """Check a batch that must continue a document at ``next_page``; return each page's
    index terms (repeats kept: BM25 counts them). Empty text is fine: the page is stored and
    never matches. NUL and other control characters separate words like spaces."""
    check_page_order(pages, PageText, next_page, total_pages)
    analysed = []
    for page in pages:
        if not isinstance(page.text, str):
            raise InvalidInputError(
                f"page {page.page}: text must be a str; got {type(page.text).__name__}"
            )
        analysed.append(terms(page.text[:MAX_PAGE_CHARS]))
    return analysed


def query_terms(query: str) -> list[str]:
    """The distinct index terms of a query, in order of first appearance (capped)."""
    if not isinstance(query, str):
        raise InvalidInputError(f"a text query must be a str; got {type(query).__name__}")
    return list(dict.fromkeys(terms(query[:MAX_QUERY_CHARS])))[:MAX_QUERY_TERMS]


def ranked(hits: list[SearchHit], k: int) -> list[SearchHit]:
    """Top ``k`` by score, ties by (doc_id, page) ascending, like every store."""
    return sorted(hits, key=lambda h: (-h.score, h.doc_id, h.page))[:k]


class LexicalStoreBase(Closing):
    """Shared search entry points of the LexicalStore backends."""

    def search_text(
        self, query: str, k: int, filter: SearchFilter | None = None
    ) -> list[SearchHit]:
        """Top-k pages of complete documents by BM25 (higher is better); ``[]`` when no
        page shares a term with the query. Any query terms match (OR), none is required."""
        return self.search_text_batch([query], k, filter)[0]

    def search_text_batch(
        self, queries: Sequence[str], k: int, filter: SearchFilter | None = None
    ) -> list[list[SearchHit]]:
        """Top-k hits per query; ties are broken by (doc_id, page), ascending."""
        k = check_k(k)
        filter = check_filter(filter)
        if isinstance(queries, str):
            raise InvalidInputError("search_text_batch takes a list of queries, not one str")
        analysed = [query_terms(query) for query in queries]
        if filter is not None and filter.doc_ids is not None and not filter.doc_ids:
            return [[] for _ in analysed]
        if not any(analysed):
            return [[] for _ in analysed]
        return self._search_terms(analysed, k, filter)

    def _search_terms(
        self, queries: list[list[str]], k: int, filter: SearchFilter | None
    ) -> list[list[SearchHit]]:
        """The backend hook: BM25 top-k per analysed query ([] for an empty one)."""
        raise NotImplementedError
