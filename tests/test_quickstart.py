"""The README's main job, `colretrieve quickstart`, on a small folder, fully offline: without
the visual weights it must say that the visual channel is left out and still run index +
search + eval on the text and bm25 channels, whose model ships with colretrieve."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from indexer.cli import app
from tests.bad_inputs import CORPUS

FILES = ("tabula__fisheries-exports-es.pdf", "pdfua__invoice.pdf")


def test_quickstart_offline_runs_the_text_channels_and_says_visual_is_left_out(
    tmp_path, monkeypatch
):
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
    assert "visual channel is left out" in output and "vidore/colqwen2-v1.0" in output
    assert "2 files indexed" in output
    assert "evaluation on" in output and "R@10" in output
    for run in ("text", "bm25", "fused"):
        assert f"│ {run} " in result.output
    index = tmp_path / "colretrieve-index"
    assert (index / "text" / "index.sqlite").exists() and (index / "bm25").is_dir()
