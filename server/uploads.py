"""Accept uploaded files: size and page caps, content sniffing, kept under INDEX/uploads/."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from colretrieve.errors import LimitExceededError, UnreadableDocumentError
from colretrieve.rasterize import inspect_source

CHUNK = 1 << 20
_IMAGE_SUFFIX = {
    b"\x89PNG": ".png",
    b"\xff\xd8\xff": ".jpg",
    b"II*\x00": ".tif",
    b"MM\x00*": ".tif",
}


class UploadTooLargeError(LimitExceededError):
    code = "upload_too_large"


def _suffix(path: Path, kind: str) -> str:
    if kind == "pdf":
        return ".pdf"
    head = path.read_bytes()[:4]
    return next((s for magic, s in _IMAGE_SUFFIX.items() if head.startswith(magic)), ".img")


def store_uploads(
    files: list[tuple[str, BinaryIO]], uploads: Path, max_bytes: int, max_pages: int
) -> list[Path]:
    """Copy each upload (checked by content) to ``uploads/<sha256>.<ext>``; all or nothing."""
    uploads.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=uploads))
    try:
        total_bytes = 0
        staged = []
        for number, (name, handle) in enumerate(files):
            target = staging / f"{number}"
            with target.open("wb") as out:
                while chunk := handle.read(CHUNK):
                    total_bytes += len(chunk)
                    if total_bytes > max_bytes:
                        raise UploadTooLargeError("upload size (bytes)", max_bytes)
                    out.write(chunk)
            try:
                source = inspect_source(target)
            except UnreadableDocumentError as error:
                raise UnreadableDocumentError(Path(name), error.reason) from None
            staged.append((target, source))
        pages = sum(source.page_count for _, source in staged)
        if pages > max_pages:
            raise LimitExceededError("pages per upload", max_pages, pages)
        kept = []
        for target, source in staged:
            final = uploads / f"{source.sha256}{_suffix(target, source.kind)}"
            if not final.exists():
                target.replace(final)
            kept.append(final)
        return kept
    finally:
        shutil.rmtree(staging, ignore_errors=True)
