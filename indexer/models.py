"""Choosing an ingest's channels and loading their models before anything is written.

A model that cannot load must not leave an empty index behind, so models load first. The
visual channel is optional by default (no GPU or no hub access is a normal machine for the
text channels), but never silently: when it is left out the reason is returned for the
console. Asked for explicitly (``--channels visual...`` or ``--model``), it must load.
"""

from __future__ import annotations

from dataclasses import dataclass

from colretrieve.channels import TEXT, TEXT_CHANNELS, VISUAL, parse_channels
from colretrieve.contracts import PageEmbedder, TextEmbedder
from colretrieve.errors import IndexNotFoundError, ModelLoadError
from colretrieve.settings import Settings


@dataclass(frozen=True)
class IngestModels:
    channels: tuple[str, ...]
    embedder: PageEmbedder | None = None
    text_encoder: TextEmbedder | None = None
    visual_left_out: str = ""
    """Why the visual channel is not part of this ingest although it was not excluded."""


def bound_models(settings: Settings) -> dict[str, str]:
    """The model names an existing index was built with, by setting (``model``,
    ``text_model``); empty for a new index."""
    from colretrieve.channels.stores import open_channel_stores

    try:
        stores = open_channel_stores(settings, read_only=True)
    except IndexNotFoundError:
        return {}
    try:
        visual, text = stores.visual.model, stores.text.model if stores.text else None
    finally:
        stores.close()
    found = {"model": visual.name if visual else None, "text_model": text.name if text else None}
    return {key: name for key, name in found.items() if name}


def load_ingest_models(settings: Settings, embedder: PageEmbedder | None = None) -> IngestModels:
    """The channels ``settings`` select for an ingest, with their models loaded.

    An existing index keeps its own models unless ``--model``/``--text-model`` say
    otherwise (another model is then refused at ingest). ``embedder`` reuses an already
    loaded visual model.
    """
    from colretrieve.models import ColpaliEmbedder
    from colretrieve.text.encoder import TokenTextEncoder

    own = {k: v for k, v in bound_models(settings).items() if k not in settings.model_fields_set}
    settings = settings.model_copy(update=own)
    requested = parse_channels(settings.channels) if settings.channels else None
    left_out = ""
    if embedder is None and (requested is None or VISUAL in requested):
        try:
            embedder = ColpaliEmbedder.from_settings(settings)
        except ModelLoadError as error:
            if requested is not None or "model" in settings.model_fields_set:
                raise
            left_out = f"visual model {settings.model!r} not available ({error.reason})"
    if requested is not None and VISUAL not in requested:
        embedder = None
    channels = requested or (((VISUAL,) if embedder else ()) + TEXT_CHANNELS)
    text_encoder = None
    if TEXT in channels:
        text_encoder = TokenTextEncoder.load(settings.text_model, device=settings.device)
    return IngestModels(channels, embedder, text_encoder, left_out)
