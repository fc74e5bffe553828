"""Migrates SOURCE to DEST and SIGKILLs itself once PAGES pages are copied.

Run as ``python -m tests.migrate_killer SOURCE DEST PAGES``; the kill lands right after a
write returned, as a power cut or OOM kill would, with no cleanup or close.
"""

from __future__ import annotations

import os
import signal
import sys

from colretrieve.settings import Settings
from indexer.migrate import migrate, open_location, parse_location


class KillAfter:
    def __init__(self, pages: int) -> None:
        self.left = pages

    def planned(self, documents: int, pages: int) -> None:
        pass

    def pages_done(self, count: int) -> None:
        self.left -= count
        if self.left <= 0:
            os.kill(os.getpid(), signal.SIGKILL)


def main(source: str, dest: str, pages: int) -> None:
    settings = Settings()
    source_store = open_location(parse_location(source), settings, read_only=True)
    dest_store = open_location(parse_location(dest), settings, create=True)
    migrate(source_store, dest_store, batch_pages=1, listener=KillAfter(pages))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
