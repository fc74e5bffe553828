"""Task functions for worker-pool tests; importable by spawned processes."""

import os


def square_or_die(value: int) -> int:
    if value < 0:
        os._exit(1)  # what a renderer segfault looks like to the pool
    return value * value
