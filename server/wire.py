"""Request and response shapes of the HTTP API (separate shapes; unknown fields refused)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from colretrieve.search import MAX_K, MAX_QUERY_CHARS
from colretrieve.settings import MAX_ANSWER_PAGES

COLLECTION_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


CollectionField = Field(
    default="default",
    pattern=COLLECTION_PATTERN,
    description="Collection to use; `default` when omitted.",
)
QueryField = Field(
    min_length=1, max_length=MAX_QUERY_CHARS, description="The question or keywords."
)


class Filters(Wire):
    doc_ids: list[str] | None = Field(
        default=None, max_length=1000, description="Only these document ids."
    )
    path_prefix: str | None = Field(
        default=None, max_length=4096, description="Only documents whose path starts with this."
    )
    tags: list[str] = Field(
        default_factory=list, max_length=100, description="Only documents with every tag."
    )


class Timings(Wire):
    encode_ms: float | None = Field(default=None, description="Query encoding.")
    score_ms: float | None = Field(
        default=None, description="The store's whole search (first stage and rerank)."
    )
    first_stage_ms: float | None = Field(
        default=None,
        description="Candidate generation of the fast path; null when the search was exact "
        "MaxSim over every page (or one Qdrant call).",
    )
    rerank_ms: float | None = Field(
        default=None, description="Exact MaxSim rerank of the fast path's candidates; null: idem."
    )
    render_ms: float | None = Field(default=None, description="Rendering pages for the model.")
    generate_ms: float | None = Field(default=None, description="Answer generation.")

    @classmethod
    def of(cls, timings: dict[str, float]) -> Timings:
        return cls(
            **{f"{k}_ms": round(v, 3) for k, v in timings.items() if f"{k}_ms" in cls.model_fields}
        )


class SearchRequest(Wire):
    collection: str = CollectionField
    query: str = QueryField
    k: int = Field(default=10, ge=1, le=MAX_K, description="Number of pages to return.")
    filters: Filters | None = Field(default=None, description="Restrict the pages searched.")
    explain: bool = Field(
        default=False, description="Add per-token similarity maps over each hit's patches."
    )


class Explanation(Wire):
    grid: list[int] | None = Field(
        description="[rows, cols] of the patch grid, or null when the maps are flat."
    )
    maps: list[list[float]] = Field(
        description="Per query token (at most 32), its similarity to each page patch."
    )


class Hit(Wire):
    rank: int = Field(description="1-based rank.")
    doc_id: str = Field(description="Document id (SHA-256 of the file).")
    page: int = Field(description="1-based page number.")
    score: float = Field(description="MaxSim score.")
    title: str = Field(description="Document title.")
    path: str = Field(description="Document source path.")
    image_url: str = Field(description="Link to the page image (add `&width=N`).")
    explanation: Explanation | None = Field(
        default=None, description="Similarity maps (only with `explain=true`)."
    )


class SearchResponse(Wire):
    collection: str = Field(description="The collection searched.")
    hits: list[Hit] = Field(description="Ranked pages, best first.")
    timings: Timings = Field(description="Milliseconds per stage.")


class AskRequest(Wire):
    collection: str = CollectionField
    query: str = QueryField
    pages: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ANSWER_PAGES,
        description="Top pages shown to the model (server default when omitted).",
    )
    filters: Filters | None = Field(default=None, description="Restrict the pages searched.")
    stream: bool = Field(
        default=False, description="Stream tokens as Server-Sent Events, then the citations."
    )


class CitationOut(Wire):
    marker: int = Field(description="The [n] marker in the answer text.")
    doc_id: str = Field(description="Document id.")
    page: int = Field(description="1-based page number.")
    title: str = Field(description="Document title.")
    path: str = Field(description="Document source path.")
    image_url: str = Field(description="Link to the page image.")


class PageShown(Wire):
    marker: int = Field(description="The page's [n] number in the prompt.")
    doc_id: str = Field(description="Document id.")
    page: int = Field(description="1-based page number.")
    score: float = Field(description="MaxSim score.")
    image_url: str = Field(description="Link to the page image.")


class AskResponse(Wire):
    collection: str = Field(description="The collection searched.")
    answer: str = Field(description="The answer text with [n] citation markers.")
    citations: list[CitationOut] = Field(description="Cited pages, each one that was shown.")
    pages: list[PageShown] = Field(description="Pages shown to the model.")
    model: str = Field(description="The generator that answered.")
    timings: Timings = Field(description="Milliseconds per stage.")
    replay: dict[str, Any] = Field(description="Hashes and settings to reproduce the call.")


class DocumentOut(Wire):
    doc_id: str = Field(description="Document id (SHA-256 of the file).")
    title: str = Field(description="Title (PDF metadata or file name).")
    path: str = Field(description="Source path on the server.")
    size_bytes: int = Field(description="File size.")
    total_pages: int = Field(description="Pages in the file.")
    stored_pages: int = Field(description="Pages embedded so far.")
    complete: bool = Field(description="Searchable (every page embedded).")
    tags: list[str] = Field(description="Tags.")
    added_at: float = Field(description="Unix time it was added.")


class DocumentList(Wire):
    collection: str = Field(description="The collection listed.")
    documents: list[DocumentOut] = Field(description="Its documents.")


class DeletedOut(Wire):
    collection: str = Field(description="The collection.")
    deleted: list[DocumentOut] = Field(description="Documents deleted.")


class FileOutcomeOut(Wire):
    file: str = Field(description="Uploaded file name.")
    status: str = Field(description="indexed, unchanged, duplicate or skipped.")
    pages: int = Field(description="Pages embedded.")
    reason: str = Field(description="Why it was skipped, if it was.")


class JobOut(Wire):
    id: str = Field(description="Job id.")
    collection: str = Field(description="Target collection.")
    status: Literal["queued", "running", "succeeded", "failed"] = Field(description="State.")
    pages_total: int = Field(description="Pages to embed (known once planned).")
    pages_done: int = Field(description="Pages embedded so far.")
    files: list[FileOutcomeOut] = Field(description="Per-file outcomes so far.")
    error: str = Field(description="Why the job (or some files) failed.")
    url: str = Field(description="Where to poll this job.")


class ModelOut(Wire):
    id: str = Field(description="Model id: a collection name (pass it as `model`).")
    object: Literal["model"] = Field(default="model", description="Always `model`.")
    created: int = Field(description="Unix time.")
    owned_by: str = Field(description="Always `colretrieve`.")


class ModelList(Wire):
    object: Literal["list"] = Field(default="list", description="Always `list`.")
    data: list[ModelOut] = Field(description="Served models (one per readable collection).")


class Health(Wire):
    status: str = Field(description="`ok` or `ready`.")
    collections: list[str] = Field(default_factory=list, description="Collections loaded.")
    generator: str | None = Field(default=None, description="Generator model, if any.")
