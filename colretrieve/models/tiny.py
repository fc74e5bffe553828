"""Tiny, randomly initialised checkpoints for tests and offline demos.

``make_tiny_models(out_dir)`` writes two checkpoints with ``save_pretrained``:

* ``out_dir/"colqwen2"``: a ColQwen2 retriever (Qwen2-VL backbone, 128-dim projection, like
  ``vidore/colqwen2-v1.0``) with its ``ColQwen2Processor``;
* ``out_dir/"qwen2-vl"``: a Qwen2-VL generator (``Qwen2VLForConditionalGeneration``) with an
  ``AutoProcessor`` and the Qwen2-VL chat template, so ``apply_chat_template`` + ``generate``
  work on an image and a question.

They load back through exactly the same ``from_pretrained(folder)`` path as real weights,
which is what makes them useful: the whole pipeline (loading, preprocessing, padding,
embedding, scoring, generation) runs offline in seconds on a CPU.

**The weights are random.** Embeddings are meaningless, rankings are arbitrary and generated
answers are gibberish. Use them to test plumbing, never quality.

Builds are deterministic: the same ``seed`` gives byte-identical files, so the folder
fingerprint (``model_revision``) is stable across builds and machines.

The tokenizer is a small byte-level BPE (about 1K tokens) trained here with ``tokenizers`` on
generated English text, carrying every Qwen2-VL special token, wrapped as ``Qwen2Tokenizer``.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colretrieve.torchvision_compat import ensure_torchvision

# Qwen2-VL's special tokens, in its order; they get ids 0..13 in the tiny vocabulary.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
VOCAB_SIZE = 1024
MAX_VISUAL_TOKENS = 768
# One visual token is a 2x2 merge of 14-pixel patches.
PIXELS_PER_VISUAL_TOKEN = 28 * 28

# Qwen2-VL-Instruct's chat template (images and videos become vision_start/pad/end runs).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_WORDS_TEXT = (
    "the of and to in is for on with as by at from that this are be or an it was which page "
    "document table figure report annual revenue total year data results section chapter "
    "summary analysis market growth rate price energy population budget income tax cost "
    "value number percent million billion chart shows what how when where who why does "
    "between during under over more less than per first second third new old high low "
    "model method paper image text search query answer question retrieval vision language "
    "invoice contract policy account balance sheet profit loss quarter sales customer "
    "state country city district water rainfall temperature health school student research"
)
_WORDS = _WORDS_TEXT.split()


@dataclass(frozen=True)
class TinyModelPaths:
    colqwen2: Path
    qwen2_vl: Path


def _corpus(seed: int, n_lines: int = 3000) -> list[str]:
    """Generated English-like lines with numbers and punctuation, for BPE training."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 14))]
        if rng.random() < 0.5:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 2030)))
        line = " ".join(words).capitalize() + rng.choice([".", "?", "!", ",", ":", "."])
        lines.append(line)
    return lines


def build_tokenizer(seed: int = 0) -> Any:
    """A small byte-level BPE with all Qwen2-VL special tokens, as a ``Qwen2Tokenizer``."""
    from tokenizers import Tokenizer, models, trainers
    from transformers import Qwen2Tokenizer

    # Train with Qwen2's own pre-tokenizer so the merges fit how Qwen2Tokenizer splits text.
    template = Qwen2Tokenizer()
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = template.backend_tokenizer.pre_tokenizer
    bpe.normalizer = template.backend_tokenizer.normalizer
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=_byte_alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(seed), trainer=trainer)
    vocab = bpe.get_vocab()
    merges = [tuple(pair) for pair in _merges(bpe)]
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        extra_special_tokens=list(SPECIAL_TOKENS[1:]),
        model_max_length=32768,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    # Left padding, as Qwen2-VL batched generation and the ColQwen2 processor both expect.
    tokenizer.padding_side = "left"
    return tokenizer


def _byte_alphabet() -> list[str]:
    from tokenizers import pre_tokenizers

    return pre_tokenizers.ByteLevel.alphabet()


def _merges(bpe: Any) -> list[list[str]]:
    import json

    merges = json.loads(bpe.to_str())["model"]["merges"]
    # Older tokenizers wrote "a b" strings, newer ones [a, b] pairs.
    return [m.split(" ", 1) if isinstance(m, str) else m for m in merges]


def _processor_parts() -> tuple[Any, Any]:
    from transformers.models.qwen2_vl import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    max_pixels = MAX_VISUAL_TOKENS * PIXELS_PER_VISUAL_TOKEN
    image = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=max_pixels)
    video = Qwen2VLVideoProcessor(min_pixels=56 * 56, max_pixels=max_pixels)
    return image, video


def tiny_config(
    tokenizer: Any,
    text_overrides: dict[str, Any] | None = None,
    vision_overrides: dict[str, Any] | None = None,
) -> Any:
    """A Qwen2-VL config small enough to embed a 768-token page in well under a second.

    The overrides give other sizes with the same tokenizer (the throughput benchmark builds
    ColQwen2-2B's real dimensions this way: speed does not depend on weight values).
    """
    from transformers import Qwen2VLConfig

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    hidden, heads = 64, 4
    head_dim = hidden // heads
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": heads,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        # mrope splits head_dim/2 rotary frequencies over (time, height, width).
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1000000.0,
            "mrope_section": [head_dim // 4, head_dim // 8, head_dim // 8],
        },
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    vision_config = {
        "depth": 1,
        "embed_dim": 32,
        "hidden_size": hidden,
        "mlp_ratio": 2,
        "num_heads": 2,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    text_config.update(text_overrides or {})
    vision_config.update(vision_overrides or {})
    return Qwen2VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )


def save_random_colqwen2(
    folder: Path, config: Any, tokenizer: Any, seed: int = 0, dtype: Any = None
) -> Path:
    """Save a randomly initialised ColQwen2 of ``config`` with its processor into ``folder``."""
    ensure_torchvision()
    import torch
    from colpali_engine.models import ColQwen2, ColQwen2Processor

    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    # Built directly in ``dtype``: a 2B-parameter model need not exist in float32 first.
    torch.set_default_dtype(dtype or previous)
    try:
        retriever = ColQwen2(config).eval()
    finally:
        torch.set_default_dtype(previous)
    image, video = _processor_parts()
    ColQwen2Processor(
        image_processor=image, tokenizer=tokenizer, video_processor=video
    ).save_pretrained(folder)
    retriever.save_pretrained(folder)
    return folder


def make_tiny_models(out_dir: Path, seed: int = 0) -> TinyModelPaths:
    """Build and save the tiny ColQwen2 and Qwen2-VL checkpoints under ``out_dir``."""
    ensure_torchvision()
    import torch
    from transformers import Qwen2VLForConditionalGeneration, Qwen2VLProcessor

    out_dir = Path(out_dir)
    paths = TinyModelPaths(colqwen2=out_dir / "colqwen2", qwen2_vl=out_dir / "qwen2-vl")
    tokenizer = build_tokenizer(seed)
    config = tiny_config(tokenizer)

    save_random_colqwen2(paths.colqwen2, config, tokenizer, seed)

    torch.manual_seed(seed + 1)
    generator = Qwen2VLForConditionalGeneration(config).eval()
    generator.generation_config.pad_token_id = config.text_config.pad_token_id
    generator.generation_config.eos_token_id = config.text_config.eos_token_id
    image, video = _processor_parts()
    Qwen2VLProcessor(
        image_processor=image,
        tokenizer=tokenizer,
        video_processor=video,
        chat_template=CHAT_TEMPLATE,
    ).save_pretrained(paths.qwen2_vl)
    generator.save_pretrained(paths.qwen2_vl)
    return paths


# The tiny text encoder (BERT layout) for the text channel: WordPiece specials, plus the
# ColBERT query/document markers pylate uses, so a projection-head variant can be built too.
TEXT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[Q]", "[D]")


def build_wordpiece_tokenizer() -> Any:
    """A small uncased WordPiece tokenizer (BERT normaliser and pre-tokenizer)."""
    ensure_torchvision()
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from transformers import PreTrainedTokenizerFast

    # Built, not trained: the WordPiece trainer breaks ties in hash order, which would make
    # the files (and the folder fingerprint) differ between builds. Whole words of the
    # generated corpus, then single characters alone and as "##" continuations.
    chars = sorted(set(string.ascii_lowercase + string.digits + string.punctuation))
    pieces = [*sorted(set(_WORDS)), *chars, *(f"##{c}" for c in chars)]
    tokens = dict.fromkeys([*TEXT_SPECIAL_TOKENS, *pieces])
    vocab = {token: i for i, token in enumerate(tokens)}
    wordpiece = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls_id, sep_id = wordpiece.token_to_id("[CLS]"), wordpiece.token_to_id("[SEP]")
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    wordpiece.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=wordpiece,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )


def make_tiny_text_encoder(folder: Path, seed: int = 0, projection_dim: int | None = None) -> Path:
    """Save a tiny random BertModel with its WordPiece tokenizer into ``folder``.

    With ``projection_dim`` the folder also gets a pylate-style ColBERT head: ``modules.json``,
    a ``1_Dense`` linear projection to that size, and query/document markers with a 16-token
    [MASK]-expanded query length in ``config_sentence_transformers.json``.
    """
    import json

    ensure_torchvision()
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    folder = Path(folder)
    tokenizer = build_wordpiece_tokenizer()
    hidden = 32
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    BertModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if projection_dim is not None:
        generator = torch.Generator().manual_seed(seed + 1)
        weight = torch.randn(projection_dim, hidden, generator=generator) / hidden**0.5
        dense = folder / "1_Dense"
        dense.mkdir(exist_ok=True)
        save_file({"linear.weight": weight.contiguous()}, str(dense / "model.safetensors"))
        dense_config = {
            "in_features": hidden,
            "out_features": projection_dim,
            "bias": False,
            "activation_function": "torch.nn.modules.linear.Identity",
        }
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
        ]
        style = {"query_prefix": "[Q] ", "document_prefix": "[D] ", "query_length": 16}
        for path, data in [
            (dense / "config.json", dense_config),
            (folder / "modules.json", modules),
            (folder / "config_sentence_transformers.json", style),
        ]:
            path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return folder
