"""The Qdrant layout of a colretrieve index: collections, point ids, payloads and filters.

Two collections per index:

``COLLECTION`` (pages)
    One point per stored page, id ``uuid5(doc_id/page)`` so a retried upsert overwrites
    instead of doubling. Named vectors: ``full``, the page multi-vector (MAX_SIM, DOT, HNSW
    off with ``m=0``: it is only read to rerank), and ``pooled``, means of ``pool_size``
    consecutive page vectors (MAX_SIM, DOT, HNSW on, optionally quantized): the first stage.
    Payload: ``doc_id``, ``page``, ``path``, ``dirs`` (every folder prefix of the path, each
    ending in ``/``), ``title``, ``tags``, ``complete``, ``n_vectors``, ``text``, ``width``,
    ``height``. Keyword/bool payload indexes on the filter fields. The collection metadata
    holds the bound model and the layout version; the collection is created at bind time,
    when the vector size is known.

``COLLECTION__documents``
    One vectorless point per document, id ``uuid5(doc_id)``: the document record plus
    ``stored_pages``, ``stored_vectors`` and ``complete``.

qdrant-client is imported lazily by the store, so this module only needs it when called.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from colretrieve.contracts import DocumentInfo, DocumentRecord, SearchFilter

if TYPE_CHECKING:
    from qdrant_client import models

FULL = "full"
POOLED = "pooled"
DOCS_SUFFIX = "__documents"
LAYOUT_VERSION = 1
META_MODEL = "colretrieve_model"
META_LAYOUT = "colretrieve_layout"
META_POOL = "colretrieve_pool_size"
_NAMESPACE = uuid.UUID("6f1c3f0e-2a57-4c1e-9d0b-8a4f3c6b2e71")
KEYWORD_FIELDS = ("doc_id", "dirs", "tags")


def page_point_id(doc_id: str, page: int) -> str:
    """Deterministic point id of a page: the same (document, page) always maps here."""
    return str(uuid.uuid5(_NAMESPACE, f"{doc_id}/{page}"))


def doc_point_id(doc_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, doc_id))


def pooled(vectors: np.ndarray, size: int) -> np.ndarray:
    """Means of ``size`` consecutive rows (the last group may be shorter).

    Page vectors come in row-major patch order, so a group is a run of neighbouring patches.
    """
    starts = np.arange(0, len(vectors), size)
    sums = np.add.reduceat(vectors.astype(np.float32), starts, axis=0)
    counts = np.diff(np.append(starts, len(vectors))).astype(np.float32)
    return sums / counts[:, None]


def dirs_of(path: str) -> list[str]:
    """Every folder prefix of ``path`` that ends in ``/``: ``a/b/c.pdf`` -> a/, a/b/."""
    return [path[: i + 1] for i, char in enumerate(path) if char == "/"]


def pages_vectors_config(
    models: Any, dim: int, quantization: str, full_on_disk: bool
) -> dict[str, models.VectorParams]:
    max_sim = models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM)
    first_stage_quantization = {
        "none": None,
        "scalar": models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=True)
        ),
        "binary": models.BinaryQuantization(
            binary=models.BinaryQuantizationConfig(always_ram=True)
        ),
    }[quantization]
    return {
        FULL: models.VectorParams(
            size=dim,
            distance=models.Distance.DOT,
            multivector_config=max_sim,
            # float32 (the default), not FLOAT16: the server would score in half precision
            # and drift ~1e-3 from the exact reference; on disk the size matters less.
            hnsw_config=models.HnswConfigDiff(m=0),  # rerank only: no graph to build
            on_disk=full_on_disk,
        ),
        POOLED: models.VectorParams(
            size=dim,
            distance=models.Distance.DOT,
            multivector_config=max_sim,
            quantization_config=first_stage_quantization,
        ),
    }


def page_fields(record: DocumentInfo, page: int) -> dict[str, Any]:
    """The payload every page point carries, in any colretrieve collection: what hits show
    and what filters (and ``finish_document``) select on."""
    return {
        "doc_id": record.doc_id,
        "page": page,
        "path": record.path,
        "dirs": dirs_of(record.path),
        "title": record.title,
        "tags": list(record.tags),
        "complete": False,
    }


def page_payload(record: DocumentInfo, page: int, n_vectors: int, text: str, w: int, h: int):
    return {
        **page_fields(record, page),
        "n_vectors": n_vectors,
        "text": text,
        "width": w,
        "height": h,
    }


def document_payload(doc: DocumentRecord, added_at: float) -> dict[str, Any]:
    return {
        "doc_id": doc.doc_id,
        "path": doc.path,
        "dirs": dirs_of(doc.path),
        "title": doc.title,
        "size_bytes": doc.size_bytes,
        "total_pages": doc.total_pages,
        "tags": sorted(set(doc.tags)),
        "complete": False,
        "stored_pages": 0,
        "stored_vectors": 0,
        "added_at": added_at,
    }


def document_info(payload: dict[str, Any]) -> DocumentInfo:
    return DocumentInfo(
        doc_id=payload["doc_id"],
        path=payload["path"],
        title=payload["title"],
        size_bytes=int(payload["size_bytes"]),
        total_pages=int(payload["total_pages"]),
        stored_pages=int(payload["stored_pages"]),
        complete=bool(payload["complete"]),
        tags=tuple(payload["tags"]),
        added_at=float(payload["added_at"]),
    )


def match(models: Any, key: str, value: Any) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def match_any(models: Any, key: str, values: Iterable[str]) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchAny(any=sorted(values)))


def page_conditions(
    models: Any, filter: SearchFilter | None, prefix_doc_ids: frozenset[str] | None
) -> list[models.FieldCondition]:
    """Conditions on page payloads for a search: complete documents that pass ``filter``.

    ``prefix_doc_ids`` are the documents a non-folder ``path_prefix`` resolved to (the
    caller resolves it against the documents collection; a prefix ending in ``/`` is
    matched natively on ``dirs``).
    """
    conditions = [match(models, "complete", True)]
    if filter is None:
        return conditions
    if filter.doc_ids is not None:
        conditions.append(match_any(models, "doc_id", filter.doc_ids))
    if filter.path_prefix is not None:
        if prefix_doc_ids is None:
            conditions.append(match(models, "dirs", filter.path_prefix))
        else:
            conditions.append(match_any(models, "doc_id", prefix_doc_ids))
    conditions.extend(match(models, "tags", tag) for tag in sorted(filter.tags))
    return conditions


def needs_prefix_resolution(filter: SearchFilter | None) -> bool:
    prefix = None if filter is None else filter.path_prefix
    return prefix is not None and not prefix.endswith("/")
