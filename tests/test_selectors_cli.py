"""`s2lbench select` and `s2lbench compare-subsets` end to end on small files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from s2lbench.cli import main
from s2lbench.commands.compare_subsets import jaccard
from s2lbench.commands.select import diagnostics_path


@pytest.fixture
def pool_file(tmp_path):
    path = tmp_path / "pool.jsonl"
    with open(path, "w") as f:
        for i in range(200):
            source = "big" if i % 4 else "small"
            f.write(json.dumps({"id": f"ex{i}", "instruction": "q" * (i % 13 + 1), "input": "",
                                "output": "a" * (i % 7 + 1), "source": source}) + "\n")
    return path


def read_jsonl(path):
    return [json.loads(line) for line in open(path)]


def test_select_with_byo_trajectories_writes_subset_and_diagnostics(tmp_path, pool_file):
    trajectories = tmp_path / "traj.npy"
    np.save(trajectories, np.random.default_rng(0).random((200, 6)).astype(np.float32))
    out = tmp_path / "out" / "s2l.jsonl"
    rc = main(["select", "--pool", str(pool_file), "--selector", "s2l", "--budget", "0.2", "--seed", "3",
               "--trajectories", str(trajectories), "--option", "n_clusters=5", "--out", str(out)])
    assert rc == 0
    rows = read_jsonl(out)
    assert len(rows) == 40 and all(r["id"] == f"ex{r['position']}" for r in rows)
    diag = json.loads(diagnostics_path(out).read_text())
    prov = diag["provenance"]
    assert prov["selector"] == "s2l" and prov["seed"] == 3 and prov["budget"] == 40
    assert prov["options"]["n_clusters"] == 5 and len(prov["pool"]["fingerprint"]) == 16
    assert {"s2lbench", "numpy", "faiss"} <= set(prov["versions"])
    # source balancing: 40 split 20/20 between a 50-row and a 150-row source
    assert diag["source_mix"]["small"]["selected"] == 20 and diag["source_mix"]["big"]["selected"] == 20
    assert diag["source_mix"]["small"]["pool_share"] == 0.25
    sel = diag["selector_diagnostics"]
    assert sum(sum(s["cluster_picks"]) for s in sel["sources"].values()) == 40
    assert "small_cluster_uplift" in sel["balance"]
    assert diag["lengths"]["output"]["pool"]["max"] == 7 and diag["selection_seconds"] >= 0


def test_select_reads_a_signals_folder_and_reports_a_missing_signal(tmp_path, pool_file, capsys):
    signals = tmp_path / "signals"
    signals.mkdir()
    np.save(signals / "confidence.npy", np.random.default_rng(1).random((200, 3)).astype(np.float32))
    out = tmp_path / "least.jsonl"
    assert main(["select", "--pool", str(pool_file), "--selector", "confidence-least", "--budget", "10",
                 "--signals", str(signals), "--out", str(out)]) == 0
    assert len(read_jsonl(out)) == 10
    assert main(["select", "--pool", str(pool_file), "--selector", "el2n", "--budget", "10",
                 "--signals", str(signals), "--out", str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "'el2n'" in err and "s2lbench signals" in err
    assert not (tmp_path / "x.jsonl").exists()


def test_select_rejects_an_oversized_budget_and_a_bad_option(tmp_path, pool_file, capsys):
    out = str(tmp_path / "r.jsonl")
    assert main(["select", "--pool", str(pool_file), "--selector", "random", "--budget", "500",
                 "--out", out]) == 2
    assert "500" in capsys.readouterr().err
    assert main(["select", "--pool", str(pool_file), "--selector", "random", "--budget", "5",
                 "--option", "nope", "--out", out]) == 2
    assert "key=value" in capsys.readouterr().err


def write_subset(path, ids):
    path.write_text("".join(json.dumps({"id": i, "position": n}) + "\n" for n, i in enumerate(ids)))
    return str(path)


def test_compare_subsets_prints_pairwise_jaccard(tmp_path, capsys):
    a = write_subset(tmp_path / "a.jsonl", ["1", "2", "3"])
    b = write_subset(tmp_path / "b.jsonl", ["2", "3", "4"])
    c = write_subset(tmp_path / "c.jsonl", ["9"])
    assert main(["compare-subsets", a, b, c, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    by_pair = {(p["a"], p["b"]): p["jaccard"] for p in report["pairs"]}
    assert by_pair[("a", "b")] == 0.5 and by_pair[("a", "c")] == 0.0 and len(by_pair) == 3
    assert report["files"]["a"] == a
    assert main(["compare-subsets", a, b]) == 0
    assert "0.500" in capsys.readouterr().out
    assert main(["compare-subsets", a]) == 2  # one subset compares with nothing
    assert "at least two subsets" in capsys.readouterr().err


def test_compare_subsets_refuses_a_select_output_its_diagnostics_do_not_vouch_for(tmp_path, pool_file, capsys):
    a, b = str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")
    for out, seed in ((a, "0"), (b, "1")):
        assert main(["select", "--pool", str(pool_file), "--selector", "random", "--budget", "20",
                     "--seed", seed, "--out", out]) == 0
    assert main(["compare-subsets", a, b, "--json"]) == 0
    capsys.readouterr()
    # a subset replaced behind its diagnostics' back (another writer, a half-finished copy) is not compared
    Path(a).write_text(Path(a).read_text().splitlines(keepends=True)[0])
    assert main(["compare-subsets", a, b]) == 2
    err = capsys.readouterr().err
    assert "a.jsonl does not match its diagnostics" in err and "Traceback" not in err


def _runner_folder(tmp_path, subsets):
    """A hand-built results folder: one finished cell per (row, ids), its selection in the stage cache."""
    (tmp_path / "cells").mkdir(parents=True)
    for i, (row, ids) in enumerate(subsets.items()):
        stage = tmp_path / "stages" / "selection" / f"k{i}"
        stage.mkdir(parents=True)
        write_subset(stage / "selection.jsonl", ids)
        (stage / "diagnostics.json").write_text(json.dumps({"selector": "whatever", "budget": len(ids), "seed": 0}))
        (tmp_path / "cells" / f"t__{row}__b__s0.json").write_text(json.dumps(
            {"cell": {"selector": row}, "diagnostics": {"selection_dir": f"stages/selection/k{i}"}}))
    full = tmp_path / "cells" / "t__full__100%__s0.json"
    full.write_text(json.dumps({"cell": {"selector": "full"}, "diagnostics": {}}))
    return tmp_path


def test_compare_subsets_reads_a_runner_folder_and_reports_defect_shares(tmp_path, capsys):
    run = _runner_folder(tmp_path / "run", {"noisy": ["1", "2", "3", "4"], "tidy": ["4", "5", "6", "7"]})
    gym = tmp_path / "gym"
    gym.mkdir()
    defects = gym / "defects.json"
    defects.write_text(json.dumps({"1": "truncated", "2": "truncated", "3": "wrong_answer", "9": "wrong_answer"}))
    (gym / "gym.json").write_text(json.dumps({"pool": {"rows": 10, "defects": {"truncated": 2, "wrong_answer": 2}}}))
    assert main(["compare-subsets", "--run", str(run), "--defects", str(defects), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["sizes"]) == {"noisy · n=4 · seed 0", "tidy · n=4 · seed 0"}  # row names; no full cell
    assert report["pairs"][0]["jaccard"] == round(1 / 7, 4)
    assert report["defect_shares"]["noisy · n=4 · seed 0"] == {"truncated": 0.5, "wrong_answer": 0.25, "clean": 0.25}
    assert report["defect_shares"]["tidy · n=4 · seed 0"] == {"truncated": 0.0, "wrong_answer": 0.0, "clean": 1.0}
    assert report["pool_defect_shares"] == {"truncated": 0.2, "wrong_answer": 0.2, "clean": 0.6}
    one = str(run / "stages" / "selection" / "k0" / "selection.jsonl")
    assert main(["compare-subsets", one, "--defects", str(defects)]) == 0  # one subset is enough for shares
    out = capsys.readouterr().out
    assert "Jaccard" not in out
    assert "whatever · n=4 · seed 0" in out and "50.0" in out and "whole pool" in out


def test_compare_subsets_profiles_each_subset_by_the_proxys_final_loss(tmp_path, capsys):
    # 20 rows; the final checkpoint's loss is the row number: rows 18, 19 are the hardest tenth, 0-4 the
    # easiest quarter (loss <= the 25th percentile 4.75)
    signals = tmp_path / "signals"
    signals.mkdir()
    final = np.arange(20, dtype=np.float32)
    np.save(signals / "trajectories.npy", np.stack([final + 5, final], axis=1))
    hard = tmp_path / "hard.jsonl"
    hard.write_text("".join(json.dumps({"id": f"r{i}", "position": i}) + "\n" for i in (19, 18, 10, 1)))
    easy = tmp_path / "easy.jsonl"
    easy.write_text("".join(json.dumps({"id": f"r{i}", "position": i}) + "\n" for i in (0, 1, 2, 3)))
    assert main(["compare-subsets", str(hard), str(easy), "--signals", str(signals), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["loss_profile"]["hard"] == {"mean_final_loss": 12.0, "hardest_tenth": 0.5, "easiest_quarter": 0.25}
    assert report["loss_profile"]["easy"] == {"mean_final_loss": 1.5, "hardest_tenth": 0.0, "easiest_quarter": 1.0}
    assert report["pool_loss_profile"] == {"mean_final_loss": 9.5, "hardest_tenth": 0.1, "easiest_quarter": 0.25}
    out_of_range = tmp_path / "far.jsonl"
    out_of_range.write_text(json.dumps({"id": "x", "position": 20}) + "\n")
    assert main(["compare-subsets", str(out_of_range), "--signals", str(signals)]) == 2
    assert "far.jsonl, line 1" in capsys.readouterr().err


def test_compare_subsets_names_a_bad_defects_file_and_an_empty_run(tmp_path, capsys):
    subset = write_subset(tmp_path / "a.jsonl", ["1"])
    bad = tmp_path / "defects.json"
    bad.write_text(json.dumps(["1", "truncated"]))
    assert main(["compare-subsets", subset, "--defects", str(bad)]) == 2
    assert "defects.json" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["compare-subsets", "--run", str(tmp_path / "empty")]) == 2
    assert "no selected subsets" in capsys.readouterr().err


def test_jaccard_and_bad_subset_files(tmp_path, capsys):
    assert jaccard({"a"}, {"a"}) == 1.0 and jaccard(set(), set()) == 1.0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1"}\nnot json\n')
    good = write_subset(tmp_path / "g.jsonl", ["1"])
    assert main(["compare-subsets", good, str(bad)]) == 2
    assert "bad.jsonl, line 2" in capsys.readouterr().err
