"""Per-stage timings gathered through a context variable.

A search passes through layers (the store, its first stage, its rerank) that should not all
carry a timer argument. ``collect()`` opens a record for the current thread or task;
``stage(name)`` adds the time spent in its block to that record when one is open, and costs
nothing otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from time import perf_counter

_record: ContextVar[dict[str, float] | None] = ContextVar("colretrieve_stages", default=None)


@contextmanager
def collect() -> Iterator[dict[str, float]]:
    """Record the ``stage`` blocks run inside this block, in milliseconds by stage name."""
    record: dict[str, float] = {}
    token = _record.set(record)
    try:
        yield record
    finally:
        _record.reset(token)


@contextmanager
def stage(name: str) -> Iterator[None]:
    record = _record.get()
    if record is None:
        yield
        return
    started = perf_counter()
    try:
        yield
    finally:
        record[name] = record.get(name, 0.0) + (perf_counter() - started) * 1000
