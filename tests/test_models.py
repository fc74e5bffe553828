"""The colpali-engine embedder on tiny random-weight checkpoints, offline."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from colretrieve.contracts import PageEmbedder
from colretrieve.errors import InvalidInputError, ModelLoadError
from colretrieve.maxsim import maxsim_lists
from colretrieve.models import ColpaliEmbedder, TinyModelPaths, make_tiny_models, resolve_device
from colretrieve.models.checkpoint import model_revision

PDFS = sorted(Path("/work/shared/corpus/pdfs").glob("*.pdf"))
QUERIES = ["revenue", "what was the total rainfall in the district during 2014?", "tax"]


def _synthetic_page(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 10))
        draw.text((x, y), "row 2014 total", fill=tuple(int(c) for c in rng.integers(0, 200, 3)))
    return image


def _pages() -> list[Image.Image]:
    """A rendered corpus page when available, plus synthetic pages of different sizes."""
    pages = [_synthetic_page(612, 792, 1), _synthetic_page(900, 500, 2)]
    if PDFS:
        import pypdfium2

        pdf = pypdfium2.PdfDocument(PDFS[0])
        try:
            pages.insert(0, pdf[0].render(scale=1.0).to_pil().convert("RGB"))
        finally:
            pdf.close()
    return pages


@pytest.fixture(scope="module")
def pages() -> list[Image.Image]:
    return _pages()


def test_embedder_protocol_and_info(tiny_embedder: ColpaliEmbedder) -> None:
    assert isinstance(tiny_embedder, PageEmbedder)
    info = tiny_embedder.info
    assert (info.architecture, info.dim, info.max_visual_tokens) == ("ColQwen2", 128, 768)
    assert len(info.revision) == 64
    assert str(tiny_embedder.device) == "cpu"


def test_shapes_dtypes_no_nan(tiny_embedder: ColpaliEmbedder, pages: list[Image.Image]) -> None:
    # One batch of different-size images and one of different-length queries: left padding.
    tiny_embedder.batch_size = 4
    outputs = tiny_embedder.embed_images(pages) + tiny_embedder.embed_queries(QUERIES)
    assert len(outputs) == len(pages) + len(QUERIES)
    for array in outputs:
        assert array.dtype == np.float32 and array.flags.c_contiguous
        assert array.ndim == 2 and array.shape[1] == 128 and array.shape[0] > 0
        assert np.isfinite(array).all()
        np.testing.assert_allclose(np.linalg.norm(array, axis=1), 1.0, atol=1e-4)
    assert tiny_embedder.embed_images([]) == [] and tiny_embedder.embed_queries([]) == []


def test_padding_is_stripped(tiny_embedder: ColpaliEmbedder, pages: list[Image.Image]) -> None:
    alone = tiny_embedder.embed_queries([QUERIES[0]])[0]
    batched = tiny_embedder.embed_queries([QUERIES[0], QUERIES[1]])[0]
    assert alone.shape == batched.shape
    np.testing.assert_allclose(alone, batched, atol=1e-4)
    small_alone = tiny_embedder.embed_images([pages[-1]])[0]
    small_batched = tiny_embedder.embed_images([pages[-1], pages[0]])[0]
    np.testing.assert_allclose(small_alone, small_batched, atol=1e-4)


def test_iterator_input_and_batching(tiny_embedder: ColpaliEmbedder) -> None:
    images = [_synthetic_page(200 + 40 * i, 300, i) for i in range(3)]
    tiny_embedder.batch_size = 2
    try:
        from_iterator = tiny_embedder.embed_images(iter(images))
    finally:
        tiny_embedder.batch_size = 4
    one_by_one = [tiny_embedder.embed_images([image])[0] for image in images]
    for a, b in zip(from_iterator, one_by_one, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("bad", [[""], ["ok", "   "], "a string"])
def test_bad_queries_rejected(tiny_embedder: ColpaliEmbedder, bad: object) -> None:
    with pytest.raises(InvalidInputError):
        tiny_embedder.embed_queries(bad)  # type: ignore[arg-type]


def test_maxsim_matches_colpali_engine(
    tiny_embedder: ColpaliEmbedder, pages: list[Image.Image]
) -> None:
    import torch

    queries = tiny_embedder.embed_queries(QUERIES)
    page_vectors = tiny_embedder.embed_images(pages)
    ours = maxsim_lists(queries, page_vectors)
    # batch_size=1: larger batches zero-pad pages, adding a 0-similarity candidate.
    theirs = tiny_embedder.processor.score_multi_vector(
        [torch.from_numpy(q) for q in queries],
        [torch.from_numpy(p) for p in page_vectors],
        batch_size=1,
        device="cpu",
    )
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-5, atol=1e-4)


def test_visual_token_budget(tiny_models: TinyModelPaths) -> None:
    big = Image.new("RGB", (2400, 3200), "white")
    for budget in (64, 256):
        embedder = ColpaliEmbedder.load(
            str(tiny_models.colqwen2), device="cpu", max_visual_tokens=budget
        )
        assert embedder.info.max_visual_tokens == budget
        (vectors,) = embedder.embed_images([big])
        prompt_tokens = 20  # the visual prompt around the image pads
        assert budget // 2 < vectors.shape[0] <= budget + prompt_tokens


def test_builds_are_deterministic(tiny_models: TinyModelPaths, tmp_path: Path) -> None:
    again = make_tiny_models(tmp_path / "again")
    assert model_revision(again.colqwen2) == model_revision(tiny_models.colqwen2)
    assert model_revision(again.qwen2_vl) == model_revision(tiny_models.qwen2_vl)
    assert model_revision(again.colqwen2) != model_revision(again.qwen2_vl)


def test_architecture_comes_from_config(tiny_models: TinyModelPaths, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_models.colqwen2, tmp_path / "renamed"))
    config = json.loads((copy / "config.json").read_text())
    config["architectures"] = ["FancyNewRetriever"]
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="FancyNewRetriever"):
        ColpaliEmbedder.load(str(copy), device="cpu")
    # A revision fingerprint covers the config bytes.
    assert model_revision(copy) != model_revision(tiny_models.colqwen2)


def test_base_transformers_architecture_falls_back_to_model_type(
    tiny_models: TinyModelPaths, tmp_path: Path
) -> None:
    # Saved under a plain transformers class name: model_type "qwen2_vl" picks ColQwen2.
    copy = Path(shutil.copytree(tiny_models.colqwen2, tmp_path / "plain-name"))
    config = json.loads((copy / "config.json").read_text())
    config["architectures"] = ["Qwen2VLForConditionalGeneration"]
    (copy / "config.json").write_text(json.dumps(config))
    embedder = ColpaliEmbedder.load(str(copy), device="cpu")
    assert embedder.info.architecture == "ColQwen2"


def test_chat_model_is_not_taken_for_a_retriever(tiny_models: TinyModelPaths) -> None:
    # Same model_type, but no custom_text_proj weights: refuse rather than project randomly.
    with pytest.raises(ModelLoadError, match="custom_text_proj"):
        ColpaliEmbedder.load(str(tiny_models.qwen2_vl), device="cpu")


def test_missing_folder_fails(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no folder"):
        ColpaliEmbedder.load(str(tmp_path / "nope"), device="cpu")


def test_unknown_hub_name_fails_fast_offline() -> None:
    started = time.monotonic()
    with pytest.raises(ModelLoadError) as caught:
        ColpaliEmbedder.load("nobody-here/no-such-colqwen", device="cpu")
    assert time.monotonic() - started < 5
    assert "local folder" in str(caught.value) and "--model" in str(caught.value)


def test_resolve_device() -> None:
    import torch

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cpu", "cuda"}
    with pytest.raises(InvalidInputError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInputError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_tiny_qwen2_vl_generates(tiny_models: TinyModelPaths) -> None:
    from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

    processor = AutoProcessor.from_pretrained(tiny_models.qwen2_vl)
    model = Qwen2VLForConditionalGeneration.from_pretrained(tiny_models.qwen2_vl).eval()
    messages = [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": "What is the total?"}],
        }
    ]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert "<|image_pad|>" in prompt and prompt.endswith("<|im_start|>assistant\n")
    inputs = processor(text=[prompt], images=[_synthetic_page(300, 400, 7)], return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    new_tokens = output[0, inputs["input_ids"].shape[1] :]
    assert 1 <= len(new_tokens) <= 5
    assert isinstance(processor.decode(new_tokens, skip_special_tokens=True), str)


# peft calls a transformers method that transformers 5 deprecates; not ours to fix.
@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")
def test_peft_adapter_folder_loads_through_its_base(
    tiny_models: TinyModelPaths, tiny_embedder: ColpaliEmbedder, tmp_path: Path
) -> None:
    # Like vidore/colqwen2-v1.0: adapter_config.json naming the base, no config.json.
    import torch
    from peft import LoraConfig, get_peft_model

    base = type(tiny_embedder.model).from_pretrained(str(tiny_models.colqwen2)).eval()
    targets = r"(.*(language_model).*(q_proj|v_proj|down_proj).*$|.*(custom_text_proj).*$)"
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    torch.manual_seed(3)
    for name, parameter in peft_model.named_parameters():
        if "lora_B" in name:  # peft starts B at zero: make the adapter change something
            parameter.data.normal_(0, 0.5)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    tiny_embedder.processor.save_pretrained(adapter)
    assert not (adapter / "config.json").exists()

    embedder = ColpaliEmbedder.load(str(adapter), device="cpu")
    assert (embedder.info.architecture, embedder.info.dim) == ("ColQwen2", 128)
    assert embedder.info.revision != tiny_embedder.info.revision
    (ours,) = embedder.embed_queries([QUERIES[1]])
    with torch.inference_mode():
        expected = peft_model(**embedder.processor.process_queries([QUERIES[1]]))[0].numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    assert np.abs(ours - tiny_embedder.embed_queries([QUERIES[1]])[0]).max() > 1e-3


def test_cached_hub_name_loads_offline_with_commit_revision(
    tiny_models: TinyModelPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tiny-org--colqwen2"
    shutil.copytree(tiny_models.colqwen2, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    embedder = ColpaliEmbedder.load("tiny-org/colqwen2", device="cpu")
    assert (embedder.info.name, embedder.info.revision) == ("tiny-org/colqwen2", commit)
    assert model_revision("tiny-org/colqwen2") == commit
    assert embedder.embed_queries(["tax"])[0].shape[1] == 128


def test_unreachable_hub_means_cache_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from colretrieve.models import checkpoint

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(checkpoint, "hub_reachable", lambda timeout=2.0: False)
    started = time.monotonic()
    with pytest.raises(ModelLoadError, match="local Hugging Face cache"):
        checkpoint.locate("nobody-here/no-such-colqwen")
    assert time.monotonic() - started < 5
