"""End to end through the ``colretrieve`` CLI on real PDFs with the tiny random-weight model:
index, search, info, eval, incremental re-runs, bad inputs, delete, model mismatch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from colretrieve.models import make_tiny_models
from colretrieve.rasterize import inspect_source
from colretrieve.store import EmbeddedStore
from indexer.cli import app
from tests.bad_inputs import CORPUS, make_bad_inputs

SUBSET = (
    "pymupdf__irs-form-7004.pdf",
    "tabula__fisheries-exports-es.pdf",
    "pdfua__invoice.pdf",
    "camelot__good-energy-tariff-label.pdf",
    "pymupdf__irs-form-1040-2025.pdf",
    "tabula__kyokuyo-financial-statement-ja.pdf",
)

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def run_json(*args: str) -> dict:
    code, output = run(*args, "--json")
    assert code == 0, output
    return json.loads(output[output.index("{") :])


@pytest.fixture()
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in SUBSET:
        shutil.copy(CORPUS / "pdfs" / name, folder / name)
    return folder


@pytest.fixture()
def cli(tmp_path: Path, tiny_models):
    """Run a command against a fresh index with the tiny model."""
    index = tmp_path / "index"

    def invoke(command: str, *args: str, model: bool = True) -> tuple[int, str]:
        extra = ["--index", index]
        if model:
            extra += ["--model", tiny_models.colqwen2]
        return run(command, *args, *extra)

    invoke.index = index
    return invoke


def subset_pages() -> int:
    return sum(inspect_source(CORPUS / "pdfs" / name).page_count for name in SUBSET)


def test_index_search_info_eval(cli, docs: Path, tmp_path: Path):
    code, output = cli("index", docs, "--batch-size", "2", "--json")
    assert code == 0, output
    report = json.loads(output[output.index("{") :])
    assert report["pages_embedded"] == subset_pages()
    assert {f["status"] for f in report["files"]} == {"indexed"}

    info = run_json("info", "--index", cli.index)
    # --model given: the visual channel, plus the text channels that are always available.
    assert list(info["channels"]) == ["visual", "text", "bm25"]
    visual = info["channels"]["visual"]
    assert (visual["documents"], visual["pages"], visual["dim"]) == (
        len(SUBSET),
        subset_pages(),
        128,
    )
    assert visual["model"]["architecture"] == "ColQwen2"
    assert visual["model"]["max_visual_tokens"] == 768
    assert visual["bytes_on_disk"] > visual["vectors"] * 128 * 2  # float16 vectors at least
    text, bm25 = info["channels"]["text"], info["channels"]["bm25"]
    assert (text["pages"], text["dim"], bm25["pages"]) == (subset_pages(), 384, subset_pages())

    # The index remembers its model: no --model needed to search it.
    found = run_json("search", "revenue by segment", "--index", cli.index, "-k", "4")
    hits = found["results"]
    assert len(hits) == 4
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert all(Path(h["path"]).parent == docs.resolve() and h["page"] >= 1 for h in hits)
    # Fused over the three channels: every hit says which channels found it and where.
    assert all(set(h["channels"]) <= {"visual", "text", "bm25"} and h["channels"] for h in hits)
    lexical = run_json("search", "revenue by segment", "--index", cli.index, "--channels", "bm25")
    assert all(list(h["channels"]) == ["bm25"] for h in lexical["results"])
    code, table = cli("search", "revenue by segment", model=False)
    assert code == 0 and f"{hits[0]['score']:.3f}" in table

    queries = [
        line
        for line in (CORPUS / "dev-queries.jsonl").read_text().splitlines()
        if json.loads(line)["file"] in SUBSET
    ]
    queries_file = tmp_path / "queries.jsonl"
    queries_file.write_text("\n".join(queries))
    evaluation = run_json("eval", queries_file, "--index", cli.index)
    assert evaluation["overall"]["queries"] == len(queries) > 0
    assert set(evaluation["runs"]) == {"visual", "text", "bm25", "fused"}
    assert evaluation["overall"] == evaluation["runs"]["fused"]["overall"]
    assert evaluation["missing_files"] == []
    # Six documents, at most ten pages: every target is within the top 10.
    assert evaluation["overall"]["recall_at_10"] == 1.0


def test_rerun_is_incremental_and_changed_files_replace_old_pages(cli, docs: Path):
    assert cli("index", docs)[0] == 0
    code, output = cli("index", docs, "--json")
    report = json.loads(output[output.index("{") :])
    assert code == 0 and report["pages_embedded"] == 0
    assert {f["status"] for f in report["files"]} == {"unchanged"}

    changed = docs / SUBSET[0]
    old_id = inspect_source(changed).sha256
    shutil.copy(CORPUS / "pdfs" / "pdfplumber__demolition-committee-minutes-fr.pdf", changed)
    code, output = cli("index", docs, "--json")
    report = json.loads(output[output.index("{") :])
    assert code == 0 and report["pages_embedded"] == 2
    with EmbeddedStore.open(cli.index, read_only=True) as store:
        versions = store.find_by_path(str(changed))
        assert [d.doc_id for d in versions] == [inspect_source(changed).sha256]
        assert store.get_document(old_id) is None
        assert versions[0].stored_pages == 2
        assert store.stats().pages == subset_pages() + 1


def test_bad_inputs_are_reported_and_skipped_never_fatal(cli, docs: Path, tmp_path: Path):
    bad = tmp_path / "bad"
    expected = make_bad_inputs(bad)
    shutil.copy(docs / SUBSET[0], bad / "good.pdf")
    code, output = cli("index", bad, tmp_path / "missing-folder", "--json")
    assert code == 3, output
    report = json.loads(output[output.index("{") :])
    outcomes = {Path(f["path"]).name: f for f in report["files"]}
    assert outcomes["good.pdf"]["status"] == "indexed"
    for name, reason in expected.items():
        assert outcomes[name]["status"] == "skipped", name
        assert reason in outcomes[name]["reason"], (name, outcomes[name]["reason"])
    assert outcomes["missing-folder"]["reason"] == "no such file or folder"
    # Nothing silently dropped: every input has an outcome.
    assert len(report["files"]) == len(expected) + 2


def test_same_content_twice_is_a_duplicate_not_an_error(cli, docs: Path):
    shutil.copy(docs / SUBSET[0], docs / "copy-of-form.pdf")
    code, output = cli("index", docs, "--json")
    report = json.loads(output[output.index("{") :])
    assert code == 0
    duplicates = [f for f in report["files"] if f["status"] == "duplicate"]
    assert len(duplicates) == 1 and "same content as" in duplicates[0]["reason"]


def test_delete_by_path_and_by_id_prefix(cli, docs: Path):
    assert cli("index", docs)[0] == 0
    code, output = cli("delete", docs / SUBSET[0], model=False)
    assert code == 0 and "deleted" in output
    with EmbeddedStore.open(cli.index, read_only=True) as store:
        victim = next(d for d in store.documents() if d.path.endswith(SUBSET[1]))
    code, _ = cli("delete", victim.doc_id[:10], model=False)
    assert code == 0
    found = run_json("search", "form", "--index", cli.index, "-k", "50")
    names = {Path(h["path"]).name for h in found["results"]}
    assert names == set(SUBSET[2:])
    code, output = cli("delete", "no-such-document", model=False)
    assert code == 1 and "no document" in output


def test_another_model_is_refused(cli, docs: Path, tmp_path: Path):
    assert cli("index", docs / SUBSET[0])[0] == 0
    other = make_tiny_models(tmp_path / "other-models", seed=1).colqwen2
    code, output = run("search", "tax", "--index", cli.index, "--model", other)
    assert code == 1 and "built with" in output
    code, output = run("index", docs, "--index", cli.index, "--model", other)
    assert code == 1 and "built with" in output


def test_index_never_swaps_an_unloadable_model(tmp_path: Path, docs: Path):
    code, output = run("index", docs, "--index", tmp_path / "i", "--model", tmp_path / "nope")
    assert code == 1
    assert "cannot load model" in output
    assert not (tmp_path / "i").exists()  # no empty index left behind


def test_rerun_without_model_options_keeps_the_index_models(cli, docs: Path, tmp_path: Path):
    """An index built with --model and --text-model folders keeps using them: a later
    `colretrieve index` without those options neither drops the visual channel nor trips
    over a text-model mismatch."""
    from colretrieve.models.tiny import make_tiny_text_encoder

    text_model = make_tiny_text_encoder(tmp_path / "tiny-text")
    first = SUBSET[0]
    (docs / "later").mkdir()
    shutil.move(docs / SUBSET[1], docs / "later" / SUBSET[1])
    code, output = cli("index", docs / first, "--text-model", text_model, "--json")
    assert code == 0, output

    code, output = cli("index", docs / "later", "--json", model=False)
    assert code == 0, output
    assert "left out" not in output
    report = json.loads(output[output.index("{") :])
    assert [f["channels"] for f in report["files"]] == [["visual", "text", "bm25"]]
    info = run_json("info", "--index", cli.index)
    assert info["channels"]["text"]["model"]["name"] == str(text_model)
    assert info["channels"]["visual"]["documents"] == 2
