"""Links and conversions shared by the routes."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from colretrieve.contracts import DocumentInfo, SearchFilter
from server.wire import DocumentOut, Filters


def page_image_url(collection: str, doc_id: str, page: int) -> str:
    return f"/v1/pages/{quote(doc_id)}/{page}/image?collection={quote(collection)}"


def search_filter(filters: Filters | None) -> SearchFilter | None:
    if filters is None or not (filters.doc_ids or filters.path_prefix or filters.tags):
        return None
    return SearchFilter(
        doc_ids=frozenset(filters.doc_ids) if filters.doc_ids else None,
        path_prefix=filters.path_prefix or None,
        tags=frozenset(filters.tags),
    )


def document_out(doc: DocumentInfo, channels: Iterable[str] = ()) -> DocumentOut:
    return DocumentOut(
        doc_id=doc.doc_id,
        title=doc.title,
        path=doc.path,
        size_bytes=doc.size_bytes,
        total_pages=doc.total_pages,
        stored_pages=doc.stored_pages,
        complete=doc.complete,
        tags=list(doc.tags),
        added_at=doc.added_at,
        channels=list(channels),
    )
