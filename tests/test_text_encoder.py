"""The text channel's encoder on a tiny random BERT (and the bundled MiniLM), offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from colretrieve.contracts import TextEmbedder
from colretrieve.errors import InvalidInputError, TextModelLoadError
from colretrieve.models.checkpoint import fingerprint
from colretrieve.models.tiny import make_tiny_text_encoder
from colretrieve.text.encoder import DEFAULT_TEXT_MODEL, TextRecipe, TokenTextEncoder, windows

# Every word is one piece of the tiny vocabulary, so n words are n word pieces.
WORDS = [
    "the",
    "annual",
    "report",
    "shows",
    "revenue",
    "growth",
    "and",
    "the",
    "market",
    "price",
    "of",
    "energy",
    "per",
    "year",
]


def words(n: int, offset: int = 0) -> str:
    return " ".join(WORDS[(i + offset) % len(WORDS)] for i in range(n))


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_text_encoder(tmp_path_factory.mktemp("tiny-text") / "bert")


@pytest.fixture(scope="module")
def encoder(tiny_folder: Path) -> TokenTextEncoder:
    recipe = TextRecipe(window=16, overlap=4)
    return TokenTextEncoder.load(str(tiny_folder), device="cpu", recipe=recipe, batch_size=3)


def test_protocol_and_info(encoder: TokenTextEncoder, tiny_folder: Path) -> None:
    assert isinstance(encoder, TextEmbedder)
    assert encoder.info.dim == 32
    assert encoder.info.architecture == "TokenText/BertModel"
    assert encoder.info.name == str(tiny_folder.resolve())
    assert encoder.info.revision == fingerprint(tiny_folder)


def test_tiny_build_is_deterministic(tiny_folder: Path, tmp_path: Path) -> None:
    again = make_tiny_text_encoder(tmp_path / "again")
    assert fingerprint(again) == fingerprint(tiny_folder)


def test_shapes_dtype_and_unit_rows(encoder: TokenTextEncoder) -> None:
    texts = ["The annual revenue report.", words(50), "Price of energy, per year!"]
    outputs = encoder.embed_texts(texts) + encoder.embed_queries(["What is the revenue?"])
    for vectors in outputs:
        assert vectors.dtype == np.float32 and vectors.ndim == 2 and vectors.shape[1] == 32
        assert vectors.flags.c_contiguous
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    # Punctuation and [CLS]/[SEP] are dropped: one vector per word here.
    assert len(outputs[0]) == 4 and len(outputs[2]) == 5
    assert encoder.embed_texts([]) == [] and encoder.embed_queries([]) == []


def test_window_ranges_tile_the_tokens() -> None:
    for n in [1, 15, 16, 17, 40, 100, 257]:
        spans = windows(n, 16, 4)
        owned = [i for _, _, a, b in spans for i in range(a, b)]
        assert owned == list(range(n))
        assert all(s <= a < b <= e and e - s <= 16 for s, e, a, b in spans)
    assert windows(0, 16, 4) == []


def test_long_text_windows_concatenated_without_duplicates(encoder: TokenTextEncoder) -> None:
    text = words(40)
    vectors = encoder.embed_texts([text])[0]
    assert len(vectors) == 40  # windows [0,16) [12,28) [24,40): each piece once
    # The first window owns pieces 0..13; alone, the same 16 pieces give the same vectors.
    first_window = encoder.embed_texts([words(16)])[0]
    np.testing.assert_allclose(vectors[:14], first_window[:14], atol=1e-5)
    assert not np.allclose(vectors[14], first_window[14], atol=1e-5)  # from window 2
    # The last window (pieces 24..39) owns 26..39.
    last_window = encoder.embed_texts([words(16, offset=24)])[0]
    np.testing.assert_allclose(vectors[26:], last_window[2:], atol=1e-5)


def test_max_tokens_caps_a_page(encoder: TokenTextEncoder) -> None:
    capped = encoder.with_recipe(max_tokens=20)
    assert len(capped.embed_texts([words(60)])[0]) == 20


def test_empty_and_punctuation_only_pages_are_one_zero_vector(encoder: TokenTextEncoder) -> None:
    for text in ["", "   \n", "... !?"]:
        (vectors,) = encoder.embed_texts([text])
        assert vectors.shape == (1, 32) and vectors.dtype == np.float32
        assert not vectors.any()


def test_batch_equals_single(encoder: TokenTextEncoder) -> None:
    texts = [words(5), words(40, 3), "", "Tax income, budget: 2019.", words(23, 7)]
    batched = encoder.embed_texts(texts)
    for text, vectors in zip(texts, batched, strict=True):
        np.testing.assert_allclose(vectors, encoder.embed_texts([text])[0], atol=1e-5)
    queries = ["what is the revenue", "energy price per year in 2019?"]
    for query, vectors in zip(queries, encoder.embed_queries(queries), strict=True):
        np.testing.assert_allclose(vectors, encoder.embed_queries([query])[0], atol=1e-5)


def test_query_stop_words_and_punctuation(encoder: TokenTextEncoder) -> None:
    (content,) = encoder.embed_queries(["What is the revenue of the market?"])
    assert len(content) == 2  # revenue, market
    (only_stop,) = encoder.embed_queries(["what is the"])
    assert len(only_stop) == 3  # nothing left after dropping: keep them all
    (kept,) = encoder.with_recipe(drop_query_stop_words=False).embed_queries(["what is the"])
    np.testing.assert_allclose(kept, only_stop, atol=1e-6)


def test_bad_inputs(encoder: TokenTextEncoder) -> None:
    with pytest.raises(InvalidInputError):
        encoder.embed_queries(["  "])
    with pytest.raises(InvalidInputError):
        encoder.embed_queries("a string")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        encoder.embed_texts("a string")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        TextRecipe(window=16, overlap=9)


def test_colbert_head_and_query_expansion(tmp_path: Path) -> None:
    folder = make_tiny_text_encoder(tmp_path / "colbert", projection_dim=8)
    encoder = TokenTextEncoder.load(str(folder), device="cpu")
    assert encoder.info.dim == 8
    (query,) = encoder.embed_queries(["what is the revenue?"])
    # [CLS] [Q], 5 pieces padded with [MASK] to 16, [SEP]: all kept but the "?".
    assert query.shape == (18, 8)
    (page,) = encoder.embed_texts(["annual revenue"])
    assert page.shape == (5, 8)  # [CLS] [D] annual revenue [SEP]
    np.testing.assert_allclose(np.linalg.norm(page, axis=1), 1.0, rtol=1e-5)


def test_bundled_default_loads_offline() -> None:
    encoder = TokenTextEncoder.load(device="cpu")
    assert encoder.info.name == DEFAULT_TEXT_MODEL
    assert encoder.info.dim == 384
    pages = encoder.embed_texts(["Annual rainfall by district.", "Income tax return form."])
    (query,) = encoder.embed_queries(["How much rain fell in each district?"])
    scores = [float((query @ page.T).max(axis=1).sum()) for page in pages]
    assert scores[0] > scores[1]


def test_unknown_hub_model_offline_says_to_use_a_folder() -> None:
    with pytest.raises(TextModelLoadError, match="local folder"):
        TokenTextEncoder.load("nobody-here/no-such-text-model", device="cpu")
    with pytest.raises(TextModelLoadError, match="no folder"):
        TokenTextEncoder.load("./no/such/folder", device="cpu")
