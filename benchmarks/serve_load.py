"""Load test of POST /v1/search: N concurrent clients on loopback for a fixed time.

    python benchmarks/serve_load.py --clients 32 --seconds 60 [--index DIR] [--json out.json]

Builds tiny random-weight models and (unless --index is given) an index of the shared
corpus, starts `colretrieve serve --no-auth` in its own process on 127.0.0.1, and drives it
with asyncio httpx clients. Prints throughput, latency percentiles and errors as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import CORPUS, machine, write_json

QUERIES = [
    "total amount due",
    "energy tariff unit rate",
    "rainfall distribution by district",
    "population growth per decade",
    "budget summary revenue",
    "tax form filing deadline",
    "fisheries exports by country",
    "financial statement net income",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def drive(base: str, clients: int, seconds: float, k: int) -> dict:
    import httpx

    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def one(seed: int) -> None:
            rng = random.Random(seed)
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    r = await client.post("/v1/search", json={"query": rng.choice(QUERIES), "k": k})
                    if r.status_code == 200:
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                except Exception as error:  # count, keep going
                    name = type(error).__name__
                    errors[name] = errors.get(name, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
    ms = [x * 1000 for x in latencies]
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "throughput_rps": round(len(latencies) / elapsed, 2),
        "p50_ms": round(percentile(ms, 0.50), 1),
        "p95_ms": round(percentile(ms, 0.95), 1),
        "p99_ms": round(percentile(ms, 0.99), 1),
        "mean_ms": round(statistics.fmean(ms), 1) if ms else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--index", type=Path, help="existing index (default: build one)")
    parser.add_argument("--max-files", type=int, default=20, help="corpus PDFs to index")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="serve-load-"))
    python = sys.executable
    cli = [python, "-m", "indexer"]
    subprocess.run([*cli, "make-tiny-models", str(work / "tiny")], check=True)
    model = str(work / "tiny" / "colqwen2")
    index = args.index
    if index is None:
        index = work / "index"
        docs = work / "docs"
        docs.mkdir()
        for pdf in sorted((CORPUS / "pdfs").glob("*.pdf"))[: args.max_files]:
            (docs / pdf.name).symlink_to(pdf)
        subprocess.run([*cli, "index", str(docs), "--index", str(index), "--model", model])
    server = subprocess.Popen(
        [*cli, "serve", "--index", str(index), "--no-auth", "--port", str(args.port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        import httpx

        for _ in range(600):
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit("server did not become ready")
        stats = httpx.get(f"{base}/v1/documents").json()["documents"]
        result = asyncio.run(drive(base, args.clients, args.seconds, args.k))
    finally:
        server.terminate()
        server.wait(30)
    write_json(
        args.json,
        {
            "benchmark": "serve_load",
            "clients": args.clients,
            "k": args.k,
            "documents": len(stats),
            "pages": sum(d["stored_pages"] for d in stats),
            **result,
            "p95_over_p50": round(result["p95_ms"] / result["p50_ms"], 2)
            if result["requests"]
            else None,
            "machine": machine(),
        },
    )


if __name__ == "__main__":
    main()
