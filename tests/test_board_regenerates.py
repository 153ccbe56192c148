"""Every committed board with its results/ regenerates from them byte for byte, by the command its provenance names.

Generic on purpose: whatever numbers a board holds today, the tables committed beside ``results/`` must be
exactly what ``s2lbench leaderboard <board>/results --tables <dir>`` computes from it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2lbench.cli import main

BOARDS = Path(__file__).resolve().parents[1] / "leaderboards"
WITH_RESULTS = sorted(p.parent.parent for p in BOARDS.glob("*/results/cells.jsonl"))
REGENERATED = ("leaderboard.md", "leaderboard.tex", "leaderboard.csv", "leaderboard.html", "provenance.json",
               "transfer.md", "transfer.json")


def test_the_demo_board_carries_its_results():
    assert BOARDS / "demo" in WITH_RESULTS


@pytest.mark.parametrize("board", WITH_RESULTS, ids=lambda p: p.name)
def test_a_committed_board_regenerates_byte_for_byte_from_its_results(board, tmp_path):
    command = json.loads((board / "provenance.json").read_text())["command"]
    assert command[:5] == ["s2lbench", "leaderboard", "<tables>/results", "--tables", "<tables>"], command
    out = tmp_path / board.name
    argv = ["leaderboard", str(board / "results"), "--tables", str(out), *command[5:]]
    if "--transfer" in argv:
        argv += ["--plots", str(tmp_path / "plots")]  # the transfer scatter goes there, not into the board
    assert main(argv) == 0
    compared = [name for name in REGENERATED if (board / name).exists()]
    assert "leaderboard.md" in compared and "provenance.json" in compared
    for name in compared:
        assert (out / name).read_bytes() == (board / name).read_bytes(), f"{board.name}/{name} differs"
