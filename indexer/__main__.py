"""``python -m indexer`` runs the ``colretrieve`` command line."""

from indexer.cli import main

main()
