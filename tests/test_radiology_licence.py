"""The Indiana reports are CC BY-NC-ND: the repository may hold aggregate scores and plots derived from them,
never their text, per-report samples or the split (which is recomputed from its seed at run time)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from s2lbench.pool.radiology import INDIANA_FILE, read_reports

REPO = Path(__file__).resolve().parent.parent
BOARD = REPO / "leaderboards" / "radiology"
#: where text derived from the reports could be committed: boards, docs, configs, the README
SCANNED = [REPO / "leaderboards", REPO / "docs", REPO / "configs", REPO / "README.md"]
TEXT_SUFFIXES = {".md", ".csv", ".json", ".jsonl", ".txt", ".html", ".tex", ".yaml", ".yml", ".tsv"}
#: a sentence this long is specific to a report; shorter ones ("No acute disease.") are generic phrases
MIN_WORDS = 6
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _sentences(text: str) -> set[str]:
    out = set()
    for part in _SENTENCE.split(" ".join(text.split())):
        words = re.findall(r"[a-z0-9]+", part.lower())
        if len(words) >= MIN_WORDS:
            out.add(" ".join(words))
    return out


def _files(roots: list[Path]):
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        yield from (p for p in paths if p.suffix.lower() in TEXT_SUFFIXES)


@pytest.fixture(scope="module")
def reports(shared_data):
    path = shared_data / "clinical" / INDIANA_FILE
    if not path.is_file():
        pytest.skip(f"no {INDIANA_FILE} in {shared_data / 'clinical'}: nothing to compare the repository with")
    return read_reports(path)


def test_no_report_sentence_is_committed_in_boards_docs_configs_or_readme(reports):
    report_sentences = set()
    for r in reports:
        report_sentences |= _sentences(r.findings) | _sentences(r.impression)
    assert len(report_sentences) > 1000  # the comparison has something to compare with
    leaks = {}
    for path in _files(SCANNED):
        found = _sentences(path.read_text(errors="replace")) & report_sentences
        if found:
            leaks[str(path.relative_to(REPO))] = sorted(found)[:3]
    assert not leaks, f"report text committed: {leaks}"


def test_the_guard_catches_a_copied_report_sentence(reports, tmp_path):
    long_one = next(r.findings for r in reports if _sentences(r.findings))
    (tmp_path / "table.md").write_text(f"| row | {long_one} |\n")
    report_sentences = _sentences(long_one)
    assert _sentences((tmp_path / "table.md").read_text().replace("|", ".")) & report_sentences


def test_the_radiology_board_holds_no_per_report_file_id_list_or_split():
    if not BOARD.is_dir():
        pytest.skip("leaderboards/radiology/ does not exist yet (the grid has not been published)")
    for path in sorted(p for p in BOARD.rglob("*") if p.is_file()):
        rel = path.relative_to(REPO)
        assert path.suffix.lower() in {".md", ".csv", ".json", ".png", ".svg", ".html", ".tex", ".txt"}, \
            f"{rel}: only tables, plots and provenance belong on the board"
        assert "sample" not in path.name.lower() and "split" not in path.name.lower(), rel
        if path.suffix.lower() in {".md", ".csv", ".json", ".html", ".tex", ".txt"}:
            text = path.read_text(errors="replace")
            assert not re.search(r"\bindiana-\d+\b", text), f"{rel}: names training/test report ids"
            if path.suffix.lower() == ".csv":
                header = next(csv.reader(text.splitlines()), [])
                assert not {"uid", "id", "prompt", "output", "reference", "findings", "impression"} & \
                    {h.strip().lower() for h in header}, f"{rel}: per-report columns {header}"
