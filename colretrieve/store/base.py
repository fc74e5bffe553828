"""Backend-independent checks shared by every store, so all backends raise the same errors.

A backend subclasses :class:`StoreBase` and fills one hook, ``_search_checked``, which gets
validated float32 queries and a validated ``k``. Page and query validation, the page
sequence rule and the filter semantics live here once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Self

import numpy as np

from colretrieve.contracts import DocumentRecord, ModelInfo, PageInput, SearchFilter, SearchHit
from colretrieve.errors import InvalidInputError
from colretrieve.maxsim import check_query


def check_k(k: int) -> int:
    """Return ``k`` if it is a positive integer, else raise InvalidInputError."""
    # bool is an int subclass; True as k is a bug in the caller, not a request for one hit.
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InvalidInputError(f"k must be a positive integer; got {k!r}")
    return int(k)


def check_document(doc: DocumentRecord) -> DocumentRecord:
    if not isinstance(doc, DocumentRecord) or not doc.doc_id or doc.total_pages < 0:
        raise InvalidInputError(f"begin_document needs a valid DocumentRecord; got {doc!r}")
    return doc


def check_replaces(doc_id: str, replaces: Sequence[str]) -> list[str]:
    """The distinct documents ``doc_id`` replaces, in order (never itself)."""
    distinct = list(dict.fromkeys(replaces))
    if doc_id in distinct:
        raise InvalidInputError(f"document {doc_id} cannot replace itself")
    return distinct


def check_filter(filter: SearchFilter | None) -> SearchFilter | None:
    if filter is not None and not isinstance(filter, SearchFilter):
        raise InvalidInputError(f"filter must be a SearchFilter; got {type(filter).__name__}")
    return filter


def doc_matches(doc_id: str, path: str, tags: Iterable[str], filter: SearchFilter | None) -> bool:
    """Whether a document's pages take part in a filtered search.

    All given conditions must hold: the id is one of ``doc_ids`` (an empty set matches
    nothing), the path starts with ``path_prefix``, and the document has every filter tag.
    """
    if filter is None:
        return True
    if filter.doc_ids is not None and doc_id not in filter.doc_ids:
        return False
    if filter.path_prefix is not None and not path.startswith(filter.path_prefix):
        return False
    return not filter.tags or frozenset(filter.tags) <= frozenset(tags)


def check_page_vectors(vectors: np.ndarray, dim: int, page: int) -> np.ndarray:
    """Return a page multi-vector as float32 (n_vectors >= 1, dim) or raise."""
    array = np.asarray(vectors)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] != dim:
        raise InvalidInputError(
            f"page {page}: a page multi-vector must have shape (n_vectors >= 1, {dim}); "
            f"got {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise InvalidInputError(f"page {page}: vectors must be floating point; got {array.dtype}")
    array = np.asarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise InvalidInputError(f"page {page}: vectors contain NaN or infinite values")
    return array


def check_page_order(pages: Sequence[object], kind: type, next_page: int, total_pages: int) -> None:
    """Refuse a batch that does not continue a document at ``next_page``.

    Pages are stored in order without gaps or repeats, so a resumed ingest can trust that
    "n pages stored" means pages 1..n. ``kind`` is the page type the store takes
    (PageInput, PageText); each item must be one and carry a ``page`` number.
    """
    for offset, page in enumerate(pages):
        if not isinstance(page, kind):
            raise InvalidInputError(f"pages must be {kind.__name__}; got {type(page).__name__}")
        number = page.page  # type: ignore[attr-defined]
        expected = next_page + offset
        if isinstance(number, bool) or number != expected:
            raise InvalidInputError(
                f"pages must continue the document in order: expected page {expected}, "
                f"got page {number!r}"
            )
        if number > total_pages:
            raise InvalidInputError(f"page {number} is past the document's {total_pages} pages")


def check_pages(
    pages: Sequence[PageInput], next_page: int, total_pages: int, dim: int
) -> list[np.ndarray]:
    """Validate a batch that must continue a document at ``next_page``; return its vectors."""
    check_page_order(pages, PageInput, next_page, total_pages)
    return [check_page_vectors(page.vectors, dim, page.page) for page in pages]


class Closing:
    """Context-manager support for anything with ``close``: ``with Store.open(...) as s:``."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class StoreBase(Closing):
    """Shared search entry points and context-manager support for store backends."""

    @property
    def model(self) -> ModelInfo | None:
        raise NotImplementedError

    def search(
        self, query: np.ndarray, k: int, filter: SearchFilter | None = None
    ) -> list[SearchHit]:
        """Top-k pages of complete documents by exact MaxSim for one (n_tokens, dim) query."""
        return self.search_batch([query], k, filter)[0]

    def search_batch(
        self, queries: Sequence[np.ndarray], k: int, filter: SearchFilter | None = None
    ) -> list[list[SearchHit]]:
        """Top-k hits per query; ties are broken by (doc_id, page), ascending."""
        k = check_k(k)
        filter = check_filter(filter)
        model = self.model
        if model is None:
            # Nothing stored yet, so no dimension to check against; still refuse junk.
            for query in queries:
                array = np.asarray(query)
                if array.ndim != 2 or array.shape[0] == 0:
                    raise InvalidInputError(
                        f"a query multi-vector must have shape (n_tokens >= 1, dim); "
                        f"got {array.shape}"
                    )
            return [[] for _ in queries]
        checked = [check_query(query, model.dim) for query in queries]
        if not checked:
            return []
        return self._search_checked(checked, k, filter)

    def _search_checked(
        self, queries: list[np.ndarray], k: int, filter: SearchFilter | None
    ) -> list[list[SearchHit]]:
        """The backend hook: score validated float32 queries and return top-k per query."""
        raise NotImplementedError
