"""Crash-test writer for the embedded bm25 store: a fixed, endless sequence of calls.

Run as ``python -m tests.lexical_crash_writer INDEX``. It prints ``ready`` once the store is
open, then ``ok N`` after call N returns, until killed. The test replays :func:`operations`
on :func:`apply` to know what the store must hold after the last acknowledged call.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from colretrieve.store.lexical import EmbeddedLexicalStore
from tests.lexical_corpus import TextDoc, text_doc

Operation = tuple


def crash_text_doc(n: int) -> TextDoc:
    """Document ``n``: 5 pages of ~3K words, each page holding the term ``uniq{n}p{page}``;
    every 5th document is a new version of the one before (same path)."""
    path = f"docs/{n - 1 if n % 5 == 4 else n}.pdf"
    filler = " ".join(f"word{(n * 7 + i) % 997}" for i in range(3_000))
    texts = [f"uniq{n}p{page} {filler}" for page in range(1, 6)]
    return text_doc(f"crash-{n}", path, texts)


def operations() -> Iterator[Operation]:
    n = 0
    while True:
        doc = crash_text_doc(n)
        yield ("begin", doc)
        for first in (1, 3, 5):
            yield ("add", doc, first, min(first + 1, 5))
        replaces = [crash_text_doc(n - 1).record.doc_id] if n % 5 == 4 else []
        yield ("finish", doc, replaces)
        if n % 4 == 3 and n % 5 != 0:
            yield ("delete", [crash_text_doc(n - 2).record.doc_id])
        n += 1


def run(store: EmbeddedLexicalStore, op: Operation) -> None:
    kind, *args = op
    if kind == "begin":
        store.begin_document(args[0].record)
    elif kind == "add":
        doc, first, last = args
        store.add_texts(doc.record.doc_id, doc.pages(first, last))
    elif kind == "finish":
        store.finish_document(args[0].record.doc_id, replaces=args[1])
    else:
        store.delete_documents(args[0])


def apply(state: dict[str, tuple[int, bool]], op: Operation) -> None:
    """What ``op`` does to {doc_id: (stored_pages, complete)}."""
    kind, *args = op
    if kind == "begin":
        state.setdefault(args[0].record.doc_id, (0, False))
    elif kind == "add":
        doc, _, last = args
        state[doc.record.doc_id] = (last, False)
    elif kind == "finish":
        state[args[0].record.doc_id] = (5, True)
        for old in args[1]:
            del state[old]
    else:
        for old in args[0]:
            del state[old]


def main(index: str) -> None:
    store = EmbeddedLexicalStore.open(index, create=True)
    print("ready", flush=True)
    for number, op in enumerate(operations()):
        run(store, op)
        print(f"ok {number}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
