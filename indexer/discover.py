"""Find the input files under the paths a user gives."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from colretrieve.rasterize import INPUT_SUFFIXES


@dataclass(frozen=True)
class Missing:
    path: Path
    reason: str


def discover_inputs(paths: Iterable[Path]) -> tuple[list[Path], list[Missing]]:
    """Files to ingest, in a stable order, and the given paths that do not exist.

    Folders are walked recursively for PDFs and page images (by extension; content is
    checked later). A file named explicitly is always taken, whatever its extension, so a
    wrong type is reported rather than silently passed over. Each file is listed once.
    """
    found: dict[Path, None] = {}
    missing: list[Missing] = []
    for path in paths:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    if Path(name).suffix.lower() in INPUT_SUFFIXES:
                        found.setdefault(Path(os.path.abspath(os.path.join(root, name))), None)
        elif path.exists():
            found.setdefault(Path(os.path.abspath(path)), None)
        else:
            missing.append(Missing(path, "no such file or folder"))
    return list(found), missing
