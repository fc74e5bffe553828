"""All of colretrieve's settings in one place, read from arguments or COLRETRIEVE_* variables.

Built by the CLI or the server factory, never at import time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from colretrieve.channels.search import FusionOptions
    from colretrieve.store.fast import SearchOptions

DEFAULT_MODEL = "vidore/colqwen2-v1.0"
DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
CHANNEL_NAMES = ("visual", "text", "bm25")
MAX_ANSWER_PAGES = 8
COLLECTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Settings(BaseSettings):
    """Settings shared by ingest and search. Every field can be set as COLRETRIEVE_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="COLRETRIEVE_", extra="forbid")

    index: Path = Field(
        default=Path("colretrieve-index"), description="Folder of the index to create or open."
    )
    model: str = Field(
        default=DEFAULT_MODEL,
        description="colpali-engine checkpoint: a Hugging Face hub name or a local folder.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Where the model runs; auto picks CUDA when present."
    )
    dpi: int = Field(default=144, ge=36, le=600, description="PDF rasterization resolution.")
    max_page_pixels: int = Field(
        default=4_000_000,
        ge=100_000,
        le=40_000_000,
        description="Cap on a rendered page's pixels; larger pages are rendered at lower DPI.",
    )
    max_visual_tokens: int = Field(
        default=768,
        ge=16,
        le=16_384,
        description="Visual-token budget per page (ColQwen2 was trained with 768).",
    )
    batch_size: int = Field(default=4, ge=1, le=256, description="Pages embedded per batch.")
    workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Rasterizing worker processes; 0 picks one per CPU core, at most 4.",
    )
    # -- OCR of pages without a text layer (colretrieve.ocr) ----------------------------------
    ocr: Literal["auto", "off", "require"] = Field(
        default="auto",
        description="OCR scanned pages with Tesseract: auto when it is installed, off, or "
        "require (refuse to ingest without it).",
    )
    ocr_languages: str = Field(
        default="eng",
        description="Tesseract languages, joined by + (eng+deu); each needs its language data.",
    )
    ocr_tesseract: str = Field(
        default="tesseract", description="The Tesseract binary: a name on PATH or a path."
    )
    ocr_dpi: int = Field(
        default=300, ge=72, le=600, description="Resolution of the page images OCRed."
    )
    ocr_timeout: float = Field(
        default=60.0, gt=0, le=3600, description="Seconds Tesseract may spend on one page."
    )

    @field_validator("ocr_languages")
    @classmethod
    def _ocr_languages(cls, value: str) -> str:
        from colretrieve.ocr import split_languages

        return "+".join(split_languages(value))

    @field_validator("ocr_tesseract")
    @classmethod
    def _ocr_tesseract(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("ocr_tesseract must name the tesseract binary or its path")
        return value.strip()

    channels: str | None = Field(
        default=None,
        description="Retrieval channels, comma-separated from visual,text,bm25. Unset: ingest "
        "writes text and bm25, plus visual when its model loads; search uses every channel "
        "the index holds.",
    )
    text_model: str = Field(
        default=DEFAULT_TEXT_MODEL,
        description="Text channel encoder: a Hugging Face hub name or local folder (the "
        "default ships with colretrieve, no download).",
    )
    fusion: Literal["rrf", "weighted"] = Field(
        default="rrf",
        description="How channel rankings merge: rrf (weighted reciprocal rank; measured "
        "best on held-out questions, docs/channels.md) or weighted (weighted per-query "
        "min-max normalised scores).",
    )
    fusion_weights: dict[str, float] | None = Field(
        default=None,
        description='Per-channel fusion weights, e.g. {"text": 1.0, "bm25": 0.25}; a missing '
        "channel weighs 1. Unset: text 1, bm25 0.25, visual 1.",
    )
    fusion_depth: int = Field(
        default=100, ge=1, le=1_000, description="Candidates each channel brings to fusion."
    )

    search_mode: Literal["fast", "exact"] = Field(
        default="fast",
        description="fast: first stage then exact MaxSim of the candidates (measured "
        "recall@10 0.996 at 25K pages, docs/search.md); exact: score every page. Fast "
        "equals exact until a compact() in fast mode has sketched the index.",
    )
    search_candidates: int = Field(
        default=256,
        ge=1,
        le=100_000,
        description="Pages per query scored by exact MaxSim after the first stage.",
    )
    search_probe: int = Field(
        default=32, ge=1, le=4096, description="First-stage cells probed per query token."
    )
    sketch_min_pages: int = Field(
        default=512,
        ge=1,
        description="Stored pages before compact() trains the first stage's codebook (fast "
        "mode only: in exact mode compact() builds no first stage).",
    )

    store: Literal["embedded", "qdrant"] = Field(
        default="embedded",
        description="Store backend: the embedded folder at `index`, or Qdrant (a server or "
        "cluster at `qdrant_url`, else qdrant-client's local mode at `qdrant_path`).",
    )
    qdrant_url: str | None = Field(
        default=None,
        description="Qdrant server or cluster URL, e.g. http://qdrant-0:6333 (https:// for "
        "TLS). Unset: qdrant-client's in-process local mode, for tests and tiny indexes only.",
    )
    qdrant_api_key: SecretStr | None = Field(
        default=None, description="Qdrant API key, sent with every request; use with https."
    )
    qdrant_collection: str = Field(
        default="colretrieve",
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Qdrant collection of the pages; documents go to COLLECTION__documents.",
    )
    qdrant_path: str | None = Field(
        default=None,
        description="Local-mode folder (or ':memory:') when qdrant_url is unset; "
        "default: the `index` folder.",
    )
    qdrant_verify_tls: bool = Field(
        default=True, description="Verify the Qdrant server's TLS certificate (https URLs)."
    )
    qdrant_prefer_grpc: bool = Field(
        default=False, description="Talk gRPC (port 6334) instead of REST: faster bulk upserts."
    )
    qdrant_timeout: int = Field(
        default=60, ge=1, le=3600, description="Seconds before a Qdrant request gives up."
    )
    qdrant_prefetch_limit: int = Field(
        default=512,
        ge=1,
        le=100_000,
        description="Pages the first stage (pooled vectors, HNSW) hands to the exact MaxSim "
        "rerank. Results equal exact search when it is at least the number of pages that "
        "pass the filter; raise it for recall, lower it for speed.",
    )
    qdrant_pool_size: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="First-stage vectors: means of this many consecutive page vectors "
        "(fixed when the collection is created).",
    )
    qdrant_quantization: Literal["none", "scalar", "binary"] = Field(
        default="none",
        description="Quantization of the first-stage vectors (server only; the full "
        "vectors used for the exact rerank are never quantized).",
    )
    qdrant_shards: int = Field(
        default=1, ge=1, le=1024, description="Shards of a new collection (cluster mode)."
    )
    qdrant_replication_factor: int = Field(
        default=1, ge=1, le=16, description="Copies of each shard of a new collection."
    )

    @field_validator("qdrant_url")
    @classmethod
    def _qdrant_url_scheme(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError("qdrant_url must start with http:// or https://")
        return value

    # -- answers (colretrieve ask, POST /v1/ask, /v1/chat/completions) ------------------------
    generator: str | None = Field(
        default=None,
        description="Answer generator: a Qwen2-VL/Qwen2.5-VL hub name or folder, or the base URL "
        "of an OpenAI-compatible chat endpoint (http://... or https://...).",
    )
    generator_model: str | None = Field(
        default=None,
        description="Model name sent to an OpenAI-compatible generator endpoint.",
    )
    generator_api_key: SecretStr | None = Field(
        default=None, description="Bearer key for an OpenAI-compatible generator endpoint."
    )
    answer_pages: int = Field(
        default=3,
        ge=1,
        le=MAX_ANSWER_PAGES,
        description=f"Top pages shown to the generator as images (at most {MAX_ANSWER_PAGES}).",
    )
    answer_max_pixels: int = Field(
        default=602_112,
        ge=12_544,
        le=4_000_000,
        description="Pixel budget per page image sent to the generator (resized server-side).",
    )
    answer_page_text: bool = Field(
        default=True, description="Also give the generator each page's text layer as context."
    )
    max_new_tokens: int = Field(
        default=512, ge=1, le=8192, description="Most tokens the generator may produce."
    )
    temperature: float = Field(
        default=0.0, ge=0.0, le=2.0, description="Sampling temperature; 0 is greedy decoding."
    )
    # -- server (colretrieve serve) -------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address the server listens on.")
    port: int = Field(default=8000, ge=1, le=65_535, description="Port the server listens on.")
    api_key: SecretStr | None = Field(
        default=None, description="One all-access API key (kept only as its SHA-256)."
    )
    keys_file: Path | None = Field(
        default=None,
        description="JSON file of hashed API keys, each bound to collections it may read/write.",
    )
    no_auth: bool = Field(
        default=False, description="Serve without API keys: local development only."
    )
    collections: dict[str, Path] = Field(
        default_factory=dict,
        description="Extra named collections (name -> index folder); `default` is `index`.",
    )
    max_upload_bytes: int = Field(
        default=50_000_000, ge=1_000, le=2_000_000_000, description="Largest accepted upload."
    )
    max_upload_pages: int = Field(
        default=500, ge=1, le=100_000, description="Most pages in one upload (all its files)."
    )
    max_query_chars: int = Field(
        default=2_000, ge=1, le=2_000, description="Longest accepted query, in characters."
    )
    max_k: int = Field(default=100, ge=1, le=1_000, description="Largest k a search may ask.")
    max_jobs: int = Field(
        default=2, ge=1, le=64, description="Ingest jobs queued or running at once."
    )
    max_image_width: int = Field(
        default=2_048, ge=64, le=8_192, description="Widest page image the server renders."
    )

    @field_validator("collections")
    @classmethod
    def _collection_names(cls, value: dict[str, Path]) -> dict[str, Path]:
        for name in value:
            if not COLLECTION_NAME.fullmatch(name):
                raise ValueError(f"collection names are 1-64 of [A-Za-z0-9_-]; got {name!r}")
        return value

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        names = [name.strip().lower() for name in value.split(",") if name.strip()]
        unknown = sorted(set(names) - set(CHANNEL_NAMES))
        if unknown or not names:
            raise ValueError(f"channels are a comma-separated subset of {','.join(CHANNEL_NAMES)}")
        return ",".join(name for name in CHANNEL_NAMES if name in names)

    @field_validator("fusion_weights")
    @classmethod
    def _fusion_weights(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for name, weight in (value or {}).items():
            if name not in CHANNEL_NAMES or not 0 <= weight <= 100:
                raise ValueError(
                    f"fusion weights map channels ({','.join(CHANNEL_NAMES)}) to numbers "
                    f"from 0 to 100; got {name}={weight}"
                )
        return value

    def fusion_options(self) -> FusionOptions:
        from colretrieve.channels.search import FusionOptions
        from colretrieve.fusion import DEFAULT_FUSION

        weights = self.fusion_weights if self.fusion_weights is not None else DEFAULT_FUSION.weights
        return FusionOptions(self.fusion, dict(weights), self.fusion_depth)

    def search_options(self) -> SearchOptions:
        """The embedded store's search options these settings describe."""
        from colretrieve.store.fast import SearchOptions

        return SearchOptions(
            mode=self.search_mode,
            candidates=self.search_candidates,
            probe=self.search_probe,
            min_pages=self.sketch_min_pages,
        )

    @field_validator("model")
    @classmethod
    def _model_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("model must name a hub checkpoint or a local folder")
        return value.strip()
