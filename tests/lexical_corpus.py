"""Hand-written page texts for the bm25 store tests, and BM25 references in plain Python.

The two references are the two backends' formulas, written out: FTS5's ``bm25()`` (live
average length, ``log((N - n + .5) / (n + .5))`` idf floored at 1e-6) and the Qdrant store's
(constant average length, ``ln(1 + (N - n + .5) / (n + .5))`` idf, N counting non-empty pages).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from colretrieve.contracts import DocumentRecord, LexicalStore, PageText
from colretrieve.text.analyzer import terms
from tests.store_corpus import doc_id_for

K1, B = 1.2, 0.75


@dataclass(frozen=True)
class TextDoc:
    record: DocumentRecord
    texts: list[str]

    def pages(self, first: int = 1, last: int | None = None) -> list[PageText]:
        last = len(self.texts) if last is None else last
        return [PageText(n, self.texts[n - 1]) for n in range(first, last + 1)]


def text_doc(name: str, path: str, texts: list[str], tags: tuple[str, ...] = ()) -> TextDoc:
    record = DocumentRecord(
        doc_id=doc_id_for(name),
        path=path,
        title=name.title(),
        size_bytes=100 * len(texts),
        total_pages=len(texts),
        tags=tags,
    )
    return TextDoc(record, texts)


def make_text_corpus() -> list[TextDoc]:
    """Six documents, thirteen pages (one empty) on energy, with paths and tags to filter."""
    return [
        text_doc(
            "solar",
            "letters/solar.pdf",
            [
                "Solar panels convert sunlight into electricity. Photovoltaic cells in solar "
                "panels degrade slowly over twenty years.",
                "Installing solar panels on a roof requires a building permit.",
            ],
            ("red",),
        ),
        text_doc(
            "wind",
            "reports/wind.pdf",
            [
                "Wind turbines generate electricity from wind. Offshore wind farms are large "
                "and the turbines are tall.",
                "Turbine blades are made of fiberglass.",
                "",
            ],
            ("blue",),
        ),
        text_doc(
            "battery",
            "reports/battery.pdf",
            [
                "Lithium batteries store electricity for later use.",
                "Battery recycling recovers lithium, cobalt and nickel from old cells.",
            ],
            ("red", "blue"),
        ),
        text_doc(
            "grid",
            "reports/grid/transmission.pdf",
            [
                "High-voltage transmission lines carry electricity across the grid to cities "
                "and factories, losing a few percent of the electricity on the way.",
                "Grid operators balance supply and demand every second of the day.",
            ],
            ("blue",),
        ),
        text_doc(
            "tariff",
            "letters/tariff.pdf",
            [
                "The tariff for electricity is 0.31 EUR per kWh; invoice number INV_2024_0042.",
                "Standing charge: 0.45 EUR per day.",
            ],
        ),
        text_doc(
            "hydro",
            "reports/hydro.pdf",
            [
                "Hydroelectric dams store water in reservoirs and release it through turbines.",
                "Pumped storage hydro acts like a giant battery for the electricity grid.",
            ],
            ("red",),
        ),
    ]


QUERIES = [
    "electricity",
    "fiberglass blades for wind turbines",
    "How do lithium batteries store electricity?",
    "INV_2024_0042 tariff",
    "grid battery storage",
    "solar panel permit",
]


def ingest(store: LexicalStore, docs: list[TextDoc], batch: int = 2) -> None:
    for doc in docs:
        start = store.begin_document(doc.record) + 1
        for first in range(start, len(doc.texts) + 1, batch):
            store.add_texts(
                doc.record.doc_id, doc.pages(first, min(first + batch - 1, len(doc.texts)))
            )
        store.finish_document(doc.record.doc_id)


def all_pages(docs: list[TextDoc]) -> list[tuple[str, int, list[str]]]:
    return [
        (doc.record.doc_id, n, terms(text))
        for doc in docs
        for n, text in enumerate(doc.texts, start=1)
    ]


def reference(
    stored: list[TextDoc],
    searched: list[TextDoc],
    query: str,
    k: int,
    backend: str,
    avg_page_terms: float = 300.0,
) -> list[tuple[str, int, float]]:
    """(doc_id, page, score) of the top-k ``searched`` pages; statistics over ``stored``
    (every stored page counts, searchable or not), ties by (doc_id, page)."""
    pages = all_pages(stored)
    wanted = list(dict.fromkeys(terms(query)))
    if backend == "embedded":
        population = pages
        avgdl = sum(len(t) for *_, t in pages) / len(pages)
    else:
        population = [p for p in pages if p[2]]
        avgdl = avg_page_terms
    n_total = len(population)
    scored = []
    keep = {d.record.doc_id for d in searched}
    for doc_id, page, page_terms in pages:
        if doc_id not in keep:
            continue
        counts = Counter(page_terms)
        score, hit = 0.0, False
        for term in wanted:
            tf = counts[term]
            if not tf:
                continue
            hit = True
            n = sum(1 for *_, t in population if term in t)
            ratio = (n_total - n + 0.5) / (n + 0.5)
            if backend == "embedded":
                idf = math.log(ratio) if ratio > 1 else 1e-6
            else:
                idf = math.log(1 + ratio)
            norm = K1 * (1 - B + B * len(page_terms) / avgdl)
            score += idf * tf * (K1 + 1) / (tf + norm)
        if hit:
            scored.append((doc_id, page, score))
    scored.sort(key=lambda s: (-s[2], s[0], s[1]))
    return scored[:k]
