"""What both Qdrant stores share: the connection, the documents collection and its
lifecycle, payload filters, and the translation of client errors.

The multi-vector store (qdrant.py) and the bm25 store (qdrant_lexical.py) each keep pages in
a collection of their own and document records in ``<collection>__documents`` (see
qdrant_schema.py). A store subclasses :class:`QdrantCatalog`, names its pages collection,
creates it in ``_create_pages`` when it can, and adds its own writes and searches.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from colretrieve.contracts import DocumentInfo, DocumentRecord, SearchFilter, SearchHit
from colretrieve.errors import (
    ColretrieveError,
    DocumentNotFoundError,
    IndexLockedError,
    IndexNotFoundError,
    InvalidInputError,
    StoreUnavailableError,
)
from colretrieve.settings import Settings
from colretrieve.store import qdrant_schema as layout
from colretrieve.store.base import Closing, check_document, check_replaces

SCROLL_PAGE = 1_000
INSTALL_HINT = 'the Qdrant store needs qdrant-client: pip install "colretrieve[qdrant]"'


HIT_PAYLOAD = ["doc_id", "page", "path", "title"]


def fetch_limit(k: int) -> int:
    """How many points to ask for so that ties at the k-th score can be ordered."""
    return k + max(16, k // 4)


def qdrant_models() -> Any:
    try:
        from qdrant_client import models
    except ImportError:
        raise ColretrieveError(INSTALL_HINT) from None
    return models


def connect(
    *,
    url: str | None,
    path: str | Path | None,
    collection: str,
    api_key: str | None = None,
    verify_tls: bool = True,
    prefer_grpc: bool = False,
    timeout: int = 60,
    create: bool = False,
    read_only: bool = False,
) -> tuple[Any, str, Path | None]:
    """A client for the server at ``url`` or local mode at ``path`` (``":memory:"``), the
    location string errors name, and the local-mode folder (None otherwise)."""
    if create and read_only:
        raise InvalidInputError("a read-only open cannot create an index")
    if (url is None) == (path is None):
        raise InvalidInputError("give exactly one of a Qdrant url or a local-mode path")
    try:
        from qdrant_client import QdrantClient
    except ImportError:
        raise ColretrieveError(INSTALL_HINT) from None
    local_path = None
    if url is not None:
        location = f"{url.rstrip('/')}/{collection}"
        extra = {} if verify_tls else {"verify": False}
        with translated(location):
            client = QdrantClient(
                url=url,
                api_key=api_key,
                prefer_grpc=prefer_grpc,
                timeout=timeout,
                check_compatibility=False,
                **extra,
            )
    elif str(path) == ":memory:":
        location = f"qdrant local :memory:/{collection}"
        client = QdrantClient(location=":memory:")
    else:
        local_path = Path(path)
        location = f"qdrant local {local_path}/{collection}"
        if not create and not local_path.exists():
            raise IndexNotFoundError(location, CREATE_HINT)
        try:
            client = QdrantClient(path=str(local_path))
        except RuntimeError as error:
            if "already accessed" in str(error):
                raise IndexLockedError(local_path) from None
            raise StoreUnavailableError(location, str(error)) from None
    return client, location, local_path


def settings_connection(settings: Settings) -> dict[str, Any]:
    """The ``open`` keyword arguments that select the Qdrant of ``settings``."""
    key = settings.qdrant_api_key
    return {
        "url": settings.qdrant_url,
        "path": None if settings.qdrant_url else (settings.qdrant_path or settings.index),
        "api_key": key.get_secret_value() if key else None,
        "verify_tls": settings.qdrant_verify_tls,
        "prefer_grpc": settings.qdrant_prefer_grpc,
        "timeout": settings.qdrant_timeout,
    }


def beside_location(catalog: QdrantCatalog, collection: str, create: bool) -> str:
    """The location of ``collection`` next to ``catalog``'s (refusing a read-only create)."""
    if create and catalog.read_only:
        raise InvalidInputError("a read-only open cannot create an index")
    return catalog.location.rsplit("/", 1)[0] + "/" + collection


class QdrantCatalog(Closing):
    """Document records and their lifecycle on ``<collection>__documents``; pages live in
    ``collection``, which the subclass creates and writes."""

    def __init__(
        self,
        client: Any,
        collection: str,
        location: str,
        local_path: Path | None,
        read_only: bool,
        shards: int = 1,
        replication_factor: int = 1,
    ) -> None:
        self._client = client
        self.collection = collection
        self.documents_collection = collection + layout.DOCS_SUFFIX
        self.location = location
        self._local_path = local_path
        self._read_only = read_only
        self._shards = shards
        self._replication_factor = replication_factor
        self._models = qdrant_models()

    def _open_or_create(self, create: bool) -> None:
        """Check that the index exists, or with ``create`` make its collections; closes
        the client when this fails."""
        try:
            with self._calls():
                exists = self._client.collection_exists(self.documents_collection)
                if not exists and not create:
                    raise IndexNotFoundError(self.location, CREATE_HINT)
                if not exists:
                    self._client.create_collection(
                        self.documents_collection,
                        vectors_config={},
                        shard_number=self._shards,
                        replication_factor=self._replication_factor,
                    )
                    self._index_payload(self.documents_collection, ("doc_id", "path", "dirs"))
                if create and not self._has_pages():
                    self._create_pages()
                self._check_pages()
        except BaseException:
            self.close()
            raise

    def _create_pages(self) -> None:
        """Hook: create the pages collection at open time (the vector store waits for a
        model and creates it at bind time)."""

    def _check_pages(self) -> None:
        """Hook: check the pages collection of an opened index (client errors translated)."""

    @property
    def is_local(self) -> bool:
        return "qdrant local" in self.location

    def _index_payload(self, collection: str, keywords: Sequence[str]) -> None:
        if self.is_local:
            return  # local mode ignores payload indexes (and warns about them)
        m = self._models
        for name in keywords:
            self._client.create_payload_index(collection, name, m.PayloadSchemaType.KEYWORD)
        self._client.create_payload_index(collection, "complete", m.PayloadSchemaType.BOOL)

    def _has_pages(self) -> bool:
        return bool(self._client.collection_exists(self.collection))

    @contextlib.contextmanager
    def _calls(self) -> Iterator[None]:
        with translated(self.location):
            yield

    def _writer(self) -> None:
        if self._read_only:
            raise InvalidInputError("this store was opened read-only")

    @property
    def read_only(self) -> bool:
        return self._read_only

    def drop(self) -> None:
        """Delete both collections of this index: every page and document."""
        self._writer()
        with self._calls():
            self._client.delete_collection(self.collection)
            self._client.delete_collection(self.documents_collection)

    _owns_client = True
    """False for a store opened ``beside`` another: the client is that store's to close."""

    def close(self) -> None:
        if not self._owns_client:
            return
        with contextlib.suppress(Exception):
            self._client.close()

    def _beside(self, catalog: QdrantCatalog, create: bool) -> None:
        """Finish opening this store on ``catalog``'s client (one connection, the only way
        in local mode, where a folder admits a single client)."""
        self._owns_client = False
        self._open_or_create(create)

    # -- documents collection ------------------------------------------------------------

    def _record(self, doc_id: str) -> dict[str, Any] | None:
        with self._calls():
            found = self._client.retrieve(
                self.documents_collection, [layout.doc_point_id(doc_id)], with_payload=True
            )
        return found[0].payload if found else None

    def _scroll_documents(self, conditions: list[Any] | None = None) -> list[dict[str, Any]]:
        m = self._models
        query_filter = m.Filter(must=conditions) if conditions else None
        payloads: list[dict[str, Any]] = []
        offset = None
        with self._calls():
            while True:
                points, offset = self._client.scroll(
                    self.documents_collection,
                    scroll_filter=query_filter,
                    limit=SCROLL_PAGE,
                    offset=offset,
                    with_payload=True,
                    with_vectors=False,
                )
                payloads.extend(point.payload for point in points)
                if offset is None:
                    return payloads

    def _set_record(self, doc_id: str, **fields: Any) -> None:
        with self._calls():
            self._client.set_payload(
                self.documents_collection, fields, points=[layout.doc_point_id(doc_id)], wait=True
            )

    def _doc_filter(self, doc_ids: Sequence[str]) -> Any:
        m = self._models
        return m.FilterSelector(filter=m.Filter(must=[layout.match_any(m, "doc_id", doc_ids)]))

    # -- document lifecycle --------------------------------------------------------------

    def begin_document(self, doc: DocumentRecord) -> int:
        """Register ``doc`` as incomplete; if it exists, change nothing and return its
        stored page count, so ingest resumes at the next page."""
        self._writer()
        check_document(doc)
        record = self._record(doc.doc_id)
        if record is not None:
            return int(record["stored_pages"])
        m = self._models
        point = m.PointStruct(
            id=layout.doc_point_id(doc.doc_id),
            vector={},
            payload=layout.document_payload(doc, time.time()),
        )
        with self._calls():
            self._client.upsert(self.documents_collection, [point], wait=True)
        return 0

    def finish_document(self, doc_id: str, replaces: Sequence[str] = ()) -> None:
        """Mark ``doc_id``'s pages searchable and the document complete, then delete
        ``replaces`` (three steps, not one transaction: see the module docstring)."""
        self._writer()
        replaces = check_replaces(doc_id, replaces)
        record = self._record(doc_id)
        if record is None:
            raise DocumentNotFoundError(doc_id)
        stored, total = int(record["stored_pages"]), int(record["total_pages"])
        if stored != total:
            raise InvalidInputError(
                f"document {doc_id} has {stored} of its {total} pages stored; "
                "add the rest before finishing it"
            )
        for old in replaces:
            if self._record(old) is None:
                raise DocumentNotFoundError(old)
        if total and self._has_pages():
            with self._calls():
                self._client.set_payload(
                    self.collection,
                    {"complete": True},
                    points=self._doc_filter([doc_id]),
                    wait=True,
                )
        self._set_record(doc_id, complete=True)
        if replaces:
            self._delete(replaces)

    def delete_documents(self, doc_ids: Sequence[str]) -> int:
        """Delete documents (every id must exist, else nothing is deleted); return the number
        of pages removed."""
        self._writer()
        doc_ids = list(dict.fromkeys(doc_ids))
        records = [self._record(doc_id) for doc_id in doc_ids]
        for doc_id, record in zip(doc_ids, records, strict=True):
            if record is None:
                raise DocumentNotFoundError(doc_id)
        if doc_ids:
            self._delete(doc_ids)
        return sum(int(record["stored_pages"]) for record in records if record)

    def _delete(self, doc_ids: list[str]) -> None:
        # Pages first: a crash in between leaves a record a re-run deletes, never pages
        # without a record.
        with self._calls():
            if self._has_pages():
                self._client.delete(self.collection, self._doc_filter(doc_ids), wait=True)
            self._client.delete(
                self.documents_collection,
                [layout.doc_point_id(doc_id) for doc_id in doc_ids],
                wait=True,
            )

    def compact(self) -> None:
        """Nothing to do: Qdrant's optimizers vacuum deleted points and merge segments."""
        self._writer()

    # -- reads -------------------------------------------------------------------------

    def get_document(self, doc_id: str) -> DocumentInfo | None:
        record = self._record(doc_id)
        return None if record is None else layout.document_info(record)

    def find_by_path(self, path: str) -> list[DocumentInfo]:
        found = self._scroll_documents([layout.match(self._models, "path", path)])
        return sorted((layout.document_info(p) for p in found), key=lambda d: d.doc_id)

    def documents(self) -> list[DocumentInfo]:
        """Every document, incomplete ones included, sorted by path then id."""
        found = [layout.document_info(p) for p in self._scroll_documents()]
        return sorted(found, key=lambda d: (d.path, d.doc_id))

    def _hits(self, points: Sequence[Any], k: int) -> list[SearchHit]:
        """Search results from scored page points: top ``k``, ties by (doc_id, page).

        Callers over-fetch (see :func:`fetch_limit`) so that pages tied at the k-th score
        are all seen before the tie order is applied."""
        hits = [
            SearchHit(
                doc_id=p.payload["doc_id"],
                path=p.payload["path"],
                page=int(p.payload["page"]),
                score=float(np.float32(p.score)),
                title=p.payload["title"],
            )
            for p in points
        ]
        hits.sort(key=lambda h: (-h.score, h.doc_id, h.page))
        return hits[:k]

    def _page_filter(self, filter: SearchFilter | None) -> Any | None:
        """The Qdrant filter on page payloads for a search of complete documents passing
        ``filter``; None when no page can pass."""
        m = self._models
        if filter is not None and filter.doc_ids is not None and not filter.doc_ids:
            return None
        prefix_ids = None
        if layout.needs_prefix_resolution(filter):
            assert filter is not None and filter.path_prefix is not None
            prefix_ids = self._resolve_prefix(filter.path_prefix)
            if not prefix_ids:
                return None
        return m.Filter(must=layout.page_conditions(m, filter, prefix_ids))

    def _resolve_prefix(self, prefix: str) -> frozenset[str]:
        """Complete documents whose path starts with ``prefix`` (narrowed on ``dirs``)."""
        m = self._models
        folder = prefix[: prefix.rfind("/") + 1]
        conditions = [layout.match(m, "complete", True)]
        if folder:
            conditions.append(layout.match(m, "dirs", folder))
        found = self._scroll_documents(conditions)
        return frozenset(p["doc_id"] for p in found if p["path"].startswith(prefix))


CREATE_HINT = (
    "create it with `colretrieve index PATH --store qdrant ...` or copy one there with "
    "`colretrieve migrate`"
)


@contextlib.contextmanager
def translated(location: str) -> Iterator[None]:
    """Turn qdrant-client's and its transports' exceptions into colretrieve's own."""
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    try:
        yield
    except ColretrieveError:
        raise
    except UnexpectedResponse as error:
        if error.status_code == 404:
            raise IndexNotFoundError(location, CREATE_HINT) from None
        detail = error.content.decode(errors="replace")[:300]
        raise StoreUnavailableError(location, f"HTTP {error.status_code}: {detail}") from None
    except ValueError as error:  # local mode's way of saying "no such collection"
        if "not found" in str(error):
            raise IndexNotFoundError(location, CREATE_HINT) from None
        raise StoreUnavailableError(location, str(error)) from None
    except (ResponseHandlingException, OSError) as error:
        raise StoreUnavailableError(location, repr(error)) from None
    except Exception as error:
        # grpc.RpcError, httpx transport errors: anything else the client lets through.
        if type(error).__module__.split(".")[0] in {"grpc", "httpx", "httpcore", "qdrant_client"}:
            raise StoreUnavailableError(location, repr(error)) from None
        raise
