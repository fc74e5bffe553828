"""End-to-end ingest pages/s (rasterize + embed + store) with ColQwen2-2B's real dimensions.

Speed does not depend on weight values, so the model is built from a config with the
dimensions of ColQwen2 (Qwen2-VL-2B backbone, 128-d projection) and random weights: no
download. The checkpoint is saved and loaded back through the same ``from_pretrained`` path
as real weights. The numbers say nothing about retrieval quality.

    python benchmarks/ingest_throughput.py --pages 2               # CPU: minutes per page
    python benchmarks/ingest_throughput.py --pages 64 --batch-size 8  # on a GPU
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import CORPUS, machine, peak_rss_mb, write_json

# Qwen2-VL-2B-Instruct's backbone, as in vidore/colqwen2-base's config.json.
TEXT_2B = {
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
}
VISION_2B = {"depth": 32, "embed_dim": 1280, "hidden_size": 1536, "mlp_ratio": 4, "num_heads": 16}
QUERIES = [
    "What was the total revenue reported for the last fiscal year?",
    "Which month had the fewest incidents?",
    "How many passengers were carried in the first quarter?",
]


def pick_pages(count: int) -> list[Path]:
    """Copy whole PDFs from the corpus until at least ``count`` pages (prefix order)."""
    from colretrieve.rasterize import inspect_source

    chosen, pages = [], 0
    for pdf in sorted((CORPUS / "pdfs").glob("*.pdf")):
        if pages >= count:
            break
        chosen.append(pdf)
        pages += inspect_source(pdf).page_count
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=2, help="At least this many pages.")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--max-visual-tokens", type=int, default=768)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dpi", type=int, default=144)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import torch

    from colretrieve.channels.writers import VisualWriter
    from colretrieve.models import ColpaliEmbedder
    from colretrieve.models.tiny import build_tokenizer, save_random_colqwen2, tiny_config
    from colretrieve.store import EmbeddedStore
    from indexer.pipeline import IngestOptions, ingest

    work = Path(tempfile.mkdtemp(prefix="colretrieve-bench-"))
    try:
        started = time.perf_counter()
        tokenizer = build_tokenizer()
        config = tiny_config(tokenizer, TEXT_2B, VISION_2B)
        save_random_colqwen2(work / "colqwen2-2b-random", config, tokenizer, dtype=torch.bfloat16)
        build_s = time.perf_counter() - started

        started = time.perf_counter()
        embedder = ColpaliEmbedder.load(
            str(work / "colqwen2-2b-random"),
            device=args.device,
            max_visual_tokens=args.max_visual_tokens,
            batch_size=args.batch_size,
        )
        load_s = time.perf_counter() - started
        parameters = sum(p.numel() for p in embedder.model.parameters())

        inputs = work / "inputs"
        inputs.mkdir()
        for pdf in pick_pages(args.pages):
            shutil.copy(pdf, inputs / pdf.name)

        embedder.embed_queries(QUERIES[:1])  # warm-up (kernels, allocator)
        latencies = []
        for query in QUERIES * 3:
            started = time.perf_counter()
            embedder.embed_queries([query])
            latencies.append((time.perf_counter() - started) * 1000)

        store = EmbeddedStore.open(work / "index", create=True)
        options = IngestOptions(dpi=args.dpi, batch_size=args.batch_size)
        report = ingest([inputs], {"visual": VisualWriter(store, embedder)}, options)
        stats = store.stats()
        store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    write_json(
        args.json,
        {
            "benchmark": "ingest_throughput",
            "note": "random weights with ColQwen2-2B dimensions: speed only, no quality",
            "machine": machine(),
            "device": str(embedder.device),
            "dtype": str(next(embedder.model.parameters()).dtype),
            "parameters": parameters,
            "max_visual_tokens": args.max_visual_tokens,
            "batch_size": args.batch_size,
            "dpi": args.dpi,
            "pages": report.pages_embedded,
            "vectors_per_page": round(stats.vectors / max(stats.pages, 1), 1),
            "ingest_seconds": round(report.seconds, 2),
            "pages_per_s": round(report.pages_embedded / report.seconds, 4),
            "seconds_per_page": round(report.seconds / max(report.pages_embedded, 1), 2),
            "query_encode_p50_ms": round(statistics.median(latencies), 1),
            "model_build_s": round(build_s, 1),
            "model_load_s": round(load_s, 1),
            "peak_rss_mb": round(peak_rss_mb()),
        },
    )


if __name__ == "__main__":
    main()
