"""The README's main job, `colretrieve quickstart`, on a small folder, fully offline: it must
fall back to the tiny models, say loudly that rankings are meaningless, and still run
index + search + eval."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from indexer.cli import app
from tests.bad_inputs import CORPUS

FILES = ("tabula__fisheries-exports-es.pdf", "pdfua__invoice.pdf")


def test_quickstart_offline_falls_back_to_tiny_models_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "pdfs"
    folder.mkdir()
    for name in FILES:
        shutil.copy(CORPUS / "pdfs" / name, folder / name)
    queries = [
        line
        for line in (CORPUS / "dev-queries.jsonl").read_text().splitlines()
        if json.loads(line)["file"] in FILES
    ]
    (tmp_path / "dev-queries.jsonl").write_text("\n".join(queries))

    result = CliRunner().invoke(app, ["quickstart", str(folder)])
    output = " ".join(result.output.split())  # undo the terminal's line wrapping
    assert result.exit_code == 0, output
    assert "TINY RANDOM-WEIGHT" in output and "MEANINGLESS" in output
    assert "2 files indexed" in output
    assert "evaluation on" in output and "R@10" in output
    assert "Reminder:" in output
    # The tiny index is kept apart from the default (real-model) index location.
    assert (tmp_path / ".colretrieve" / "tiny-index" / "index.sqlite").exists()
    assert not (tmp_path / "colretrieve-index").exists()
