"""The Python API (docs/api.md): `s2lbench.select` on records, files and datasets; `load_results` agrees
with the leaderboard; `plugins`; and bad input raises the project's exceptions with the very line the command
line prints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_leaderboard_store import make_store

import s2lbench
from s2lbench.cli import main
from s2lbench.errors import BudgetError, ConfigError, DataError, MissingSignalError, PluginError
from s2lbench.report.leaderboard import build_leaderboard


def records(n: int = 40) -> list[dict]:
    return [{"id": f"ex{i}", "instruction": f"Add {i} and {i + 1}.", "output": f"{2 * i + 1}",
             "source": "even" if i % 2 == 0 else "odd"} for i in range(n)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_select_on_records_returns_records_with_positions_and_diagnostics():
    rows = records()
    picked = s2lbench.select(rows, "random", 0.25, seed=7)
    assert len(picked) == 10 and list(picked.positions) == sorted(picked.positions)
    assert picked.rows == [rows[int(p)] for p in picked.positions]
    assert picked.ids == [rows[int(p)]["id"] for p in picked.positions]
    assert picked.diagnostics["seed"] == 7 and picked.diagnostics["budget"] == 10
    again = s2lbench.select(rows, "random", 0.25, seed=7)
    other = s2lbench.select(rows, "random", 0.25, seed=8)
    assert np.array_equal(again.positions, picked.positions) and not np.array_equal(other.positions, picked.positions)


def test_select_on_a_jsonl_path_and_on_a_dataset_keeps_the_kind_and_ids(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = records()
    from_file = s2lbench.select(write_jsonl(tmp_path / "pool.jsonl", rows), "random", 12, seed=1)
    assert from_file.rows == [rows[int(p)] for p in from_file.positions]
    dataset = datasets.Dataset.from_list(rows)
    from_dataset = s2lbench.select(dataset, "random", 12, seed=1)
    assert isinstance(from_dataset.rows, datasets.Dataset)
    assert from_dataset.rows.column_names == dataset.column_names
    assert from_dataset.rows["id"] == from_dataset.ids == from_file.ids  # the same pool, the same picks


def test_select_with_precomputed_signals_runs_a_signal_selector():
    rows = records(30)
    losses = np.random.default_rng(0).random((30, 4)).astype(np.float32)
    picked = s2lbench.select(rows, "s2l", 6, signals={"loss": losses}, options={"n_clusters": 3})
    assert len(picked.ids) == 6 and picked.diagnostics["selector"] == "s2l"


@pytest.mark.integration
def test_select_with_a_tiny_proxy_caches_its_stages(tmp_path):
    rows = [{"instruction": f"What is {i % 13} plus {i % 7}?", "output": f"{i % 13 + i % 7}"} for i in range(80)]
    train = {"total_steps": 4, "n_checkpoints": 2, "batch_size": 8, "max_length": 48}
    first = s2lbench.select(rows, "s2l", 0.2, proxy="gym-proxy", proxy_train=train, options={"n_clusters": 3},
                            out=tmp_path / "work")
    again = s2lbench.select(rows, "s2l", 0.2, proxy="gym-proxy", proxy_train=train, options={"n_clusters": 3},
                            out=tmp_path / "work")
    assert first.rows == [rows[int(p)] for p in first.positions] and len(first.rows) == 16
    assert np.array_equal(first.positions, again.positions)
    assert all(s["status"] == "cached" for s in again.diagnostics["provenance"]["stages"])


def test_plugins_lists_what_the_cli_lists(capsys):
    found = s2lbench.plugins()
    assert main(["plugins", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in found["selectors"]] == [s["name"] for s in printed["selectors"]]
    assert {"s2l", "random"} <= {s["name"] for s in found["selectors"]}


def test_importing_s2lbench_loads_no_heavy_library():
    import subprocess
    import sys

    code = ("import sys, s2lbench\n"
            "assert callable(s2lbench.select) and callable(s2lbench.load_results)\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'datasets', "
            "'pandas'}))\n"
            "print(sorted(m for m in sys.modules if m.startswith('s2lbench.')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    heavy, ours = done.stdout.splitlines()
    assert heavy == "[]" and ours == "[]"


# --- bad input: one line on the command line, the same message raised by the API -------------------------
def cli_error(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("s2lbench: error: "), err
    return err[0][len("s2lbench: error: "):]


def bad_inputs(tmp_path: Path) -> list[tuple[str, dict, type]]:
    good = write_jsonl(tmp_path / "good.jsonl", records(20))
    bad_row = write_jsonl(tmp_path / "bad.jsonl", [*records(2), {"instruction": "x", "output": ""}])
    return [("missing pool file", {"pool": str(tmp_path / "nope.jsonl")}, DataError),
            ("bad row", {"pool": str(bad_row)}, DataError),
            ("unknown selector", {"pool": str(good), "selector": "s2", "budget": "5"}, PluginError),
            ("zero budget", {"pool": str(good), "budget": "0"}, BudgetError),
            ("fraction above one", {"pool": str(good), "budget": "1.5"}, BudgetError),
            ("budget not a number", {"pool": str(good), "budget": "ten"}, BudgetError),
            ("budget above the pool", {"pool": str(good), "budget": "21"}, BudgetError)]


@pytest.mark.parametrize("case", range(7))
def test_bad_input_gives_the_cli_line_and_the_api_exception(case, tmp_path, capsys):
    what, given, error = bad_inputs(tmp_path)[case]
    args = {"selector": "random", "budget": "5", **given}
    for command in ("subset", "select"):
        out = tmp_path / ("out" if command == "subset" else "out.jsonl")
        line = cli_error([command, "--pool", args["pool"], "--selector", args["selector"], "--budget", args["budget"],
                          "--out", str(out)], capsys)
        with pytest.raises(error) as raised:
            if command == "subset":
                s2lbench.subset(args["pool"], args["selector"], args["budget"], out=out, report=None)
            else:
                s2lbench.select(args["pool"], args["selector"], args["budget"])
        assert str(raised.value) == line, what
    if what == "bad row":
        assert "bad.jsonl, line 3, field 'output'" in line
    if what == "missing pool file":
        assert "nope.jsonl" in line


def test_bad_records_in_memory_name_the_item():
    with pytest.raises(DataError, match=r"records, line 2, field 'output': empty value"):
        s2lbench.select([{"instruction": "a", "output": "b"}, {"instruction": "c", "output": " "}], "random", 1)
    with pytest.raises(DataError, match=r"records, line 1: is a str, not a dict"):
        s2lbench.select(["text"], "random", 1)


def test_a_proxy_selector_without_proxy_or_signals_says_how_to_get_them(tmp_path, capsys):
    pool = write_jsonl(tmp_path / "pool.jsonl", records(20))
    line = cli_error(["subset", "--pool", str(pool), "--selector", "s2l", "--budget", "5", "--out",
                      str(tmp_path / "out")], capsys)
    assert "--proxy MODEL" in line
    with pytest.raises(ConfigError) as raised:
        s2lbench.subset(pool, "s2l", 5, out=tmp_path / "out", report=None)
    assert str(raised.value) == line
    with pytest.raises(MissingSignalError):
        s2lbench.select(pool, "s2l", 5)


def test_a_bad_proxy_setting_names_the_key(tmp_path, capsys):
    pool = write_jsonl(tmp_path / "pool.jsonl", records(20))
    line = cli_error(["subset", "--pool", str(pool), "--selector", "s2l", "--budget", "5", "--proxy", "gym-proxy",
                      "--proxy-train", "totl_steps=3", "--out", str(tmp_path / "out")], capsys)
    assert "totl_steps" in line and "proxy.train" in line


# --- results ------------------------------------------------------------------------------------------------
def test_load_results_has_the_leaderboards_numbers_and_provenance(tmp_path):
    store = make_store(tmp_path)
    frame = s2lbench.load_results(tmp_path)
    assert len(frame) == len([r for r in store.results() if store.get_cell(r.cell_id).status == "done"])
    for column in ("cell_id", "selector", "budget", "seed", "target", "task", "metric", "value", "config_hash",
                   "pool_fingerprint", "selected_ids_hash", "git_commit"):
        assert column in frame.columns
    board = build_leaderboard(store, paired_tests=False)
    checked = 0
    for table in board.tables:
        for row in table.rows:
            for column in table.columns:
                summary = row.cells[column.key].summary
                if summary is None:
                    continue
                mine = frame[(frame.target == table.target) & (frame.selector == row.selector)
                             & (frame.budget == row.budget) & frame.task.isin(column.tasks)]
                per_seed = mine[[m == dict(zip(column.tasks, column.metrics, strict=True))[t]
                                 for t, m in zip(mine.task, mine.metric, strict=True)]]
                per_seed = per_seed.groupby("seed").value.mean()  # an average column: the mean over its tasks
                assert per_seed.mean() == pytest.approx(summary.mean, abs=1e-12)
                assert len(per_seed) == summary.n_seeds
                checked += 1
    assert checked >= 10


def test_load_samples_returns_a_cells_per_example_rows(tmp_path):
    store = make_store(tmp_path)
    row = next(r for r in store.results() if r.samples_path)
    samples = s2lbench.load_samples(tmp_path, row.cell_id, row.task)
    assert len(samples) == len(store.load_samples(row.samples_path)) and "scores" in samples.columns
    with pytest.raises(DataError, match="no samples"):
        s2lbench.load_samples(tmp_path, row.cell_id, "no-such-task")


def test_run_raises_the_cli_error_for_a_bad_config(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("name: x\nselectors: [random]\nbudgets: [0.1]\ntargets: []\nevaluation: {tasks: [gym]}\n")
    line = cli_error(["run", str(config), "--out", str(tmp_path / "out")], capsys)
    with pytest.raises(ConfigError) as raised:
        s2lbench.run(config, out=tmp_path / "out")
    assert str(raised.value) == line
