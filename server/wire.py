"""Request and response shapes of the HTTP API (separate shapes; unknown fields refused)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

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

Channel = Literal["visual", "text", "bm25"]
FusionMethod = Literal["rrf", "weighted"]
Weight = Annotated[float, Field(ge=0, le=100)]
ChannelsField = Field(
    default=None,
    min_length=1,
    max_length=3,
    description="Retrieval channels to search (visual: page images; text: token vectors of "
    "the text layer; bm25: keywords). Default: every channel the collection holds; naming "
    "one it lacks is a 400 `invalid_input`.",
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
    encode_ms: float | None = Field(
        default=None, description="Query encoding, every channel together."
    )
    score_ms: float | None = Field(
        default=None,
        description="Everything else of the search: each channel's store (first stage and "
        "rerank) and the fusion.",
    )
    first_stage_ms: float | None = Field(
        default=None,
        description="Candidate generation of the fast path; null when the search was exact "
        "MaxSim over every page (or one Qdrant call).",
    )
    rerank_ms: float | None = Field(
        default=None, description="Exact MaxSim rerank of the fast path's candidates; null: idem."
    )
    visual_encode_ms: float | None = Field(
        default=None, description="Visual channel: query encoding (null: not searched)."
    )
    visual_score_ms: float | None = Field(
        default=None, description="Visual channel: the store's search (null: not searched)."
    )
    text_encode_ms: float | None = Field(
        default=None, description="Text channel: query encoding (null: not searched)."
    )
    text_score_ms: float | None = Field(
        default=None, description="Text channel: the store's search (null: not searched)."
    )
    bm25_score_ms: float | None = Field(
        default=None, description="Bm25 channel: the keyword search (null: not searched)."
    )
    fuse_ms: float | None = Field(
        default=None, description="Merging the channels' rankings into one."
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
        default=False,
        description="Add per-token similarity maps over each hit's patches (needs the visual "
        "channel).",
    )
    channels: list[Channel] | None = ChannelsField
    fusion: FusionMethod | None = Field(
        default=None,
        description="How the channels' rankings merge: rrf (reciprocal rank) or weighted "
        "(weighted normalised scores). Default: the server's `fusion` setting.",
    )
    weights: dict[Channel, Weight] | None = Field(
        default=None,
        description='Per-channel fusion weights (0 to 100), e.g. {"text": 1, "bm25": 0.5}; '
        "channels left out keep the server's `fusion_weights` (else 1).",
    )


class Explanation(Wire):
    grid: list[int] | None = Field(
        description="[rows, cols] of the patch grid, or null when the maps are flat."
    )
    maps: list[list[float]] = Field(
        description="Per query token (at most 32), its similarity to each page patch."
    )


class Match(Wire):
    channel: Channel = Field(description="The channel that found the page.")
    rank: int = Field(description="1-based rank of the page in that channel's own ranking.")
    score: float = Field(description="That channel's own score (MaxSim, or BM25).")


class Hit(Wire):
    rank: int = Field(description="1-based rank.")
    doc_id: str = Field(description="Document id (SHA-256 of the file).")
    page: int = Field(description="1-based page number.")
    score: float = Field(
        description="Fused score (see `fusion`); each channel's own score is in `matches`."
    )
    title: str = Field(description="Document title.")
    path: str = Field(description="Document source path.")
    image_url: str = Field(description="Link to the page image (add `&width=N`).")
    explanation: Explanation | None = Field(
        default=None, description="Similarity maps (only with `explain=true`)."
    )
    matches: list[Match] = Field(
        default_factory=list,
        description="Per channel that ranked this page within its fusion depth: its rank and "
        "score there.",
    )


class SearchResponse(Wire):
    collection: str = Field(description="The collection searched.")
    channels: list[Channel] = Field(
        default_factory=list, description="The channels searched (empty: nothing to search)."
    )
    fusion: FusionMethod | None = Field(
        default=None, description="The fusion method used (null when one channel was searched)."
    )
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
    channels: list[Channel] | None = ChannelsField


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
    score: float = Field(description="Retrieval score (fused over the channels searched).")
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
    channels: list[Channel] = Field(
        default_factory=list, description="Channels that hold the document (complete or not)."
    )


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
    channels: list[Channel] = Field(
        default_factory=list, description="Channels this job wrote the file into."
    )


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
    channels: dict[str, list[Channel]] = Field(
        default_factory=dict,
        description="Per collection, its searchable channels (served, holding documents).",
    )
    ingest_channels: dict[str, list[Channel]] = Field(
        default_factory=dict, description="Per collection, the channels an upload writes."
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="What the server runs without, e.g. the visual channel when its model "
        "cannot load.",
    )
