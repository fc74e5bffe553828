"""Run tasks in a RenderPool with a bounded window, yielding results in submission order.

The window keeps the workers busy while the caller embeds earlier results (the overlap of
rasterizing and embedding) and bounds memory: at most ``window`` tasks' pages exist at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from indexer.workers import RenderPool

Key = TypeVar("Key")


def ordered_map(
    pool: RenderPool,
    fn: Callable[..., Any],
    tasks: Iterable[tuple[Key, tuple]],
    window: int,
) -> Iterator[tuple[Key, Any | None]]:
    """Yield ``(key, fn(*args))`` per task in order; the result is None if ``fn`` crashed its
    worker process (re-run alone to be sure it is the culprit)."""
    source = iter(tasks)
    pending: deque[tuple[Key, tuple, Future]] = deque()

    def fill() -> None:
        while len(pending) < window:
            task = next(source, None)
            if task is None:
                return
            key, args = task
            pending.append((key, args, pool.submit(fn, *args)))

    fill()
    while pending:
        key, args, future = pending.popleft()
        try:
            result = future.result()
        except BrokenProcessPool:
            result = pool.run_isolated(fn, *args)
            # Tasks that shared the dead pool are innocent until proven otherwise: resubmit.
            pending = deque(
                (k, a, f if _succeeded(f) else pool.submit(fn, *a)) for k, a, f in pending
            )
        fill()
        yield key, result


def _succeeded(future: Future) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None
