"""Crash-test writer: ingests crash_doc(n) for n = start, start + 1, ... until killed.

Run as ``python -m tests.store_crash_writer INDEX START``. It first resumes any incomplete
document, prints ``ready`` once the store is open, then writes forever, now and then deleting
an old document and compacting, so a SIGKILL can land inside any kind of write.
"""

from __future__ import annotations

import sys

from colretrieve.store import EmbeddedStore
from tests.store_corpus import MODEL, crash_doc


def main(index: str, start: int) -> None:
    store = EmbeddedStore.open(index, create=True)
    store.bind_model(MODEL)
    print("ready", flush=True)
    pending = [int(d.title) for d in store.documents() if not d.complete]
    n = start
    while True:
        number = pending.pop() if pending else n
        if number == n:
            n += 1
        doc = crash_doc(number)
        first = store.begin_document(doc.record) + 1
        for page in range(first, len(doc.pages) + 1, 2):
            store.add_pages(doc.record.doc_id, doc.inputs(page, min(page + 1, len(doc.pages))))
        store.finish_document(doc.record.doc_id)
        if number % 7 == 3:
            victims = [d.doc_id for d in store.documents() if d.complete][:1]
            store.delete_documents(victims)
        if number % 11 == 5:
            store.compact(min_dead_fraction=0.1)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
