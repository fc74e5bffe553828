"""All of colretrieve's settings in one place, read from arguments or COLRETRIEVE_* variables.

Built by the CLI or the server factory, never at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from colretrieve.store.fast import SearchOptions

DEFAULT_MODEL = "vidore/colqwen2-v1.0"


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

    search_mode: Literal["fast", "exact"] = Field(
        default="fast",
        description="fast: first stage then exact MaxSim of the candidates; exact: score "
        "every page. Fast equals exact until compact() has sketched the index.",
    )
    search_candidates: int = Field(
        default=128,
        ge=1,
        le=100_000,
        description="Pages per query scored by exact MaxSim after the first stage.",
    )
    search_probe: int = Field(
        default=64, ge=1, le=4096, description="First-stage cells probed per query token."
    )
    sketch_min_pages: int = Field(
        default=512,
        ge=1,
        description="Stored pages before compact() trains the first stage's codebook.",
    )

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
