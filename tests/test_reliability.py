"""What the CLI guarantees for bad input and faults (README, "What the CLI guarantees"), by class.

Each test feeds one kind of bad input or fault to every command that reads or writes that kind of file and
asserts one error line that names the culprit, a non-zero exit, no traceback, and nothing damaged.
"""

from __future__ import annotations

import errno
import json
import os
import random
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from test_leaderboard_store import make_store

from s2lbench.cli import main
from s2lbench.errors import S2LBenchError
from s2lbench.pool.records import Pool, SFTExample

N = 40


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A folder with a valid pool, trajectories, predictions, results store and reference."""
    monkeypatch.chdir(tmp_path)
    rows = [{"id": f"r{i}", "instruction": f"question {i}", "output": f"answer {i}", "source": f"s{i % 2}"}
            for i in range(N)]
    Path("pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    np.save("traj.npy", np.random.default_rng(0).random((N, 6)).astype(np.float32))
    Path("preds.jsonl").write_text(json.dumps({"index": 0, "output": "The answer is 4"}) + "\n", encoding="utf-8")
    make_store(tmp_path / "res")
    _gym_for_evaluate(tmp_path)
    assert main(["regress", "res", "--reference", "ref.json", "--update"]) == 0
    return tmp_path


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(list(argv))
    err = capsys.readouterr().err
    return rc, err


def assert_one_line_error(rc: int, err: str, *names: str) -> str:
    assert rc != 0
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.startswith("s2lbench")]
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("s2lbench: error:") or "error: " in line, line
    for name in names:
        assert name in line, (name, line)
    return line


# ------------------------------------------------------------------------------------------ 1. decoding

BAD_TEXT = {
    "latin1": '{"instruction": "caf\xe9", "output": "x"}\n'.encode("latin-1"),
    "utf16": '{"instruction": "a", "output": "x"}\n'.encode("utf-16"),
    "binary": bytes(range(128, 256)) * 4,
}

#: (command line with {f} for the bad file, the file's name) for every command that reads a text file
READERS = {
    "select pool": (["select", "--pool", "{f}", "--selector", "random", "--budget", "5", "--out", "o.jsonl"],
                    "bad.jsonl"),
    "select csv pool": (["select", "--pool", "{f}", "--selector", "random", "--budget", "5", "--out", "o.jsonl"],
                        "bad.csv"),
    "data inspect": (["data", "inspect", "{f}"], "bad.json"),
    "signals import pool": (["signals", "import", "--pool", "{f}", "--matrix", "traj.npy", "--out", "sig"],
                            "bad.jsonl"),
    "evaluate predictions": (["evaluate", "--task", "gym", "--option", "set=t", "--predictions", "{f}",
                              "--data-dir", "g"], "bad.jsonl"),
    "evaluate gym manifest": (["evaluate", "--task", "gym", "--option", "set=t", "--predictions", "preds.jsonl",
                               "--data-dir", "g"], "g/gym.json"),
    "evaluate gym test set": (["evaluate", "--task", "gym", "--option", "set=t", "--predictions", "preds.jsonl",
                               "--data-dir", "g"], "g/tests/t.jsonl"),
    "run config": (["run", "{f}", "--dry-run"], "bad.yaml"),
    "regress reference": (["regress", "res", "--reference", "{f}"], "bad.json"),
    "compare-subsets": (["compare-subsets", "{f}", "{f}"], "bad.jsonl"),
}


@pytest.mark.parametrize("encoding", sorted(BAD_TEXT))
@pytest.mark.parametrize("reader", sorted(READERS))
def test_undecodable_input_is_one_line_naming_the_file(work, capsys, reader, encoding):
    argv, name = READERS[reader]
    Path(name).write_bytes(BAD_TEXT[encoding])
    rc, err = run_cli(capsys, *[a.replace("{f}", name) for a in argv])
    assert_one_line_error(rc, err, name)


def test_undecodable_test_file_of_a_task_names_it(work, capsys):
    data = work / "data"
    data.mkdir()
    (data / "gsm8k.jsonl").write_bytes(BAD_TEXT["latin1"])
    rc, err = run_cli(capsys, "evaluate", "--task", "gsm8k", "--predictions", "preds.jsonl", "--data-dir", "data")
    assert_one_line_error(rc, err, "gsm8k")


@pytest.mark.parametrize("content", [b"{not json", BAD_TEXT["latin1"], b""])
def test_bad_tokenizer_folder_is_one_line(work, capsys, content):
    tok = work / "tok"
    tok.mkdir()
    (tok / "tokenizer.json").write_bytes(content)
    (tok / "tokenizer_config.json").write_text("{}")
    rc, err = run_cli(capsys, "data", "inspect", "pool.jsonl", "--tokenizer", "tok")
    assert_one_line_error(rc, err, "tok")


def test_missing_tokenizer_path_is_one_line(work, capsys):
    rc, err = run_cli(capsys, "data", "inspect", "pool.jsonl", "--tokenizer", "./no-such-tokenizer")
    assert_one_line_error(rc, err, "no-such-tokenizer", "no such file")


def test_hub_offline_says_the_hub_is_not_reachable(work, capsys):
    rc, err = run_cli(capsys, "select", "--pool", "hf://nobody/no-such-dataset", "--selector", "random",
                      "--budget", "5", "--out", "o.jsonl")
    line = assert_one_line_error(rc, err, "hf://nobody/no-such-dataset")
    assert "hub" in line and "local" in line


def test_a_lone_surrogate_is_written_escaped_and_reads_back(work, capsys):
    from s2lbench.commands.evaluate import evaluate_predictions

    Path("preds.jsonl").write_text(json.dumps({"index": 0, "output": "The answer is \ud800 4"}) + "\n")
    gym = work / "g"
    summary = evaluate_predictions("gym", Path("preds.jsonl"), gym, {"set": "t"}, None)
    rows = [json.loads(line) for line in Path(summary["records"]).read_text(encoding="utf-8").splitlines()]
    assert rows[0]["output"] == "The answer is \ud800 4"


# ------------------------------------------------------------------------------------------ 2. output paths

#: (command line with {o} for the output, whether the output is a file or a folder)
WRITERS = {
    "select --out": (["select", "--pool", "pool.jsonl", "--selector", "random", "--budget", "5", "--out", "{o}"],
                     "file"),
    "evaluate --out": (["evaluate", "--task", "gym", "--option", "set=t", "--predictions", "preds.jsonl",
                        "--data-dir", "g", "--out", "{o}"], "file"),
    "leaderboard --out": (["leaderboard", "res", "--out", "{o}"], "file"),
    "leaderboard --plots": (["leaderboard", "res", "--plots", "{o}"], "folder"),
    "leaderboard --tables": (["leaderboard", "res", "--tables", "{o}"], "folder"),
    "regress --update": (["regress", "res", "--update", "--reference", "{o}"], "file"),
    "signals import": (["signals", "import", "--pool", "pool.jsonl", "--matrix", "traj.npy", "--out", "{o}"],
                       "folder"),
    "gym build": (["gym", "build", "--small", "--size", "200", "--test-size", "10", "--out", "{o}"], "folder"),
    "train": (["train", "--pool", "pool.jsonl", "--model", "gym-proxy", "--steps", "1", "--out", "{o}"], "folder"),
}


def _gym_for_evaluate(work: Path) -> None:
    gym = work / "g"
    (gym / "tests").mkdir(parents=True, exist_ok=True)
    (gym / "tests" / "t.jsonl").write_text(json.dumps({"instruction": "2+2", "answer": "4"}) + "\n")
    (gym / "gym.json").write_text(json.dumps({"test_sets": [{"name": "t", "in_domain": True}]}))


def _device_node() -> str:
    """A character device like /dev/full, made in the test folder (a regression must not damage /dev)."""
    path = Path("full-device")
    if not path.exists():
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 7))
        except (PermissionError, OSError):
            os.mkfifo(path)  # not root: a FIFO is a non-regular file too
    return str(path)


def bad_outputs(kind: str) -> dict[str, str]:
    return {"device /dev/full": _device_node(), "under a regular file": "pool.jsonl/out",
            "empty string": "", "existing folder" if kind == "file" else "existing file":
            "res" if kind == "file" else "pool.jsonl"}


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("fault", ["device /dev/full", "under a regular file", "empty string", "existing other"])
def test_bad_output_path_is_one_line_and_damages_nothing(work, capsys, writer, fault):
    argv, kind = WRITERS[writer]
    _gym_for_evaluate(work)
    outputs = bad_outputs(kind)
    key = fault if fault != "existing other" else ("existing folder" if kind == "file" else "existing file")
    out = outputs[key]
    device = _device_node()
    before = os.stat(device)
    pool_bytes = Path("pool.jsonl").read_bytes()
    rc, err = run_cli(capsys, *[a.replace("{o}", out) for a in argv])
    assert_one_line_error(rc, err, *([out] if out else ["empty"]))
    after = os.stat(device)
    assert after.st_mode == before.st_mode and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino
    assert Path("pool.jsonl").read_bytes() == pool_bytes


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
@pytest.mark.parametrize("writer", ["select --out", "leaderboard --out", "regress --update", "signals import",
                                    "evaluate --out"])
def test_full_or_read_only_filesystem_is_one_line_and_leaves_no_temp(work, capsys, monkeypatch, writer, code):
    import s2lbench.common.atomic as atomic

    argv, kind = WRITERS[writer]
    _gym_for_evaluate(work)
    out = "newout.jsonl" if kind == "file" else "newout"

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic.os, "fsync", refuse)
    before = sorted(p.name for p in work.iterdir())
    rc, err = run_cli(capsys, *[a.replace("{o}", out) for a in argv])
    assert_one_line_error(rc, err, out, os.strerror(code))
    leftovers = sorted(p.name for p in work.iterdir() if not p.name.endswith(".lock"))
    assert [p for p in leftovers if p not in before] == []


def test_unwritable_folder_is_one_line(work, capsys):
    ro = work / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        rc, err = run_cli(capsys, "select", "--pool", "pool.jsonl", "--selector", "random", "--budget", "5",
                          "--out", "ro/sub/o.jsonl")
        if os.access(ro, os.W_OK):  # root ignores permissions
            pytest.skip("running as root: permission bits do not stop writes")
        assert_one_line_error(rc, err, "ro")
    finally:
        ro.chmod(0o700)


# ------------------------------------------------------------------------------------------ 3. binary inputs

def _bad_arrays(work: Path) -> dict[str, str]:
    import pickle

    import torch

    np.save("object.npy", np.array([{"a": 1}] * N, dtype=object), allow_pickle=True)
    np.save("strings.npy", np.array(["x"] * N))
    Path("pickle.npy").write_bytes(pickle.dumps([1, 2, 3]))
    Path("truncated.npy").write_bytes(Path("traj.npy").read_bytes()[:200])
    Path("text.npy").write_text("not an array")
    np.save("allnan.npy", np.full((N, 6), np.nan, dtype=np.float32))
    inf = np.random.default_rng(0).random((N, 6)).astype(np.float32)
    inf[3, 2] = np.inf
    np.save("inf.npy", inf)
    np.save("empty.npy", np.zeros((N, 0), dtype=np.float32))
    torch.save({"a": 1, "b": [1, 2]}, "dict.pt")
    torch.save([1, 2, 3], "list.pt")
    Path("junk.pt").write_bytes(b"\x80\x04junk")
    return {n: n for n in ("object.npy", "strings.npy", "pickle.npy", "truncated.npy", "text.npy", "allnan.npy",
                           "inf.npy", "empty.npy", "dict.pt", "list.pt", "junk.pt")}


MATRIX_READERS = {
    "select --trajectories": ["select", "--pool", "pool.jsonl", "--selector", "s2l", "--budget", "5",
                              "--trajectories", "{m}", "--out", "o.jsonl"],
    "signals import": ["signals", "import", "--pool", "pool.jsonl", "--matrix", "{m}", "--out", "sig"],
    "leaderboard --trajectories": ["leaderboard", "res", "--plots", "plots", "--trajectories", "{m}",
                                   "--clusters", "labels.npy"],
}


@pytest.mark.parametrize("reader", sorted(MATRIX_READERS))
def test_malformed_matrix_is_one_line_naming_it_for_every_reader(work, capsys, reader):
    np.save("labels.npy", np.zeros(N, dtype=np.int64))
    for name in _bad_arrays(work):
        rc, err = run_cli(capsys, *[a.replace("{m}", name) for a in MATRIX_READERS[reader]])
        assert_one_line_error(rc, err, name)
        assert not Path("sig").exists()


def test_nan_trajectories_are_zeroed_and_said_consistently(work, capsys):
    m = np.random.default_rng(0).random((N, 6)).astype(np.float32)
    m[0, :3] = np.nan
    np.save("nan.npy", m)
    rc = main(["select", "--pool", "pool.jsonl", "--selector", "s2l", "--budget", "5", "--trajectories", "nan.npy",
               "--option", "n_clusters=2", "--out", "a.jsonl"])
    out = capsys.readouterr().out
    assert rc == 0 and "3 NaN entries" in out and "set them to 0" in out
    assert main(["signals", "import", "--pool", "pool.jsonl", "--matrix", "nan.npy", "--out", "sig"]) == 0
    capsys.readouterr()
    assert main(["select", "--pool", "pool.jsonl", "--selector", "s2l", "--budget", "5", "--signals", "sig",
                 "--option", "n_clusters=2", "--out", "b.jsonl"]) == 0
    out = capsys.readouterr().out
    assert "3 NaN entries" in out
    assert Path("a.jsonl").read_text() == Path("b.jsonl").read_text()


@pytest.mark.parametrize("manifest", [b"{not json", BAD_TEXT["latin1"], b"[1, 2]",
                                      b'{"checkpoint_steps": "0,1"}',
                                      b'{"signals": {"loss": {"file": "../traj.npy", "shape": [40, 6]}}}',
                                      b'{"signals": {"loss": {"file": "missing.npy", "shape": [40, 6]}}}',
                                      b'{"incomplete": true}'])
def test_bad_signals_manifest_is_one_line(work, capsys, manifest):
    sig = work / "sig"
    sig.mkdir()
    np.save(sig / "trajectories.npy", np.load("traj.npy"))
    (sig / "manifest.json").write_bytes(manifest)
    rc, err = run_cli(capsys, "select", "--pool", "pool.jsonl", "--selector", "s2l", "--budget", "5",
                      "--signals", "sig", "--out", "o.jsonl")
    assert_one_line_error(rc, err, "sig")
    assert not Path("o.jsonl").exists()


def _databases(work: Path) -> dict[str, Path]:
    found = {}
    for name, make in {
        "empty": lambda p: p.write_bytes(b""),
        "foreign": lambda p: sqlite3.connect(p).execute("CREATE TABLE t (x)").connection.commit(),
        "corrupted": lambda p: p.write_bytes((work / "res" / "results.sqlite").read_bytes()[:4096] + b"junk" * 9),
        "not sqlite": lambda p: p.write_text("hello, this is text"),
    }.items():
        folder = work / f"db-{name}"
        folder.mkdir()
        make(folder / "results.sqlite")
        found[name] = folder
    return found


@pytest.mark.parametrize("command", [["leaderboard", "{d}"], ["status", "{d}"],
                                     ["regress", "{d}", "--reference", "ref.json"],
                                     ["leaderboard", "{d}", "--plots", "plots"]])
def test_read_only_commands_refuse_bad_databases_and_never_write_them(work, capsys, command):
    for name, folder in _databases(work).items():
        db = folder / "results.sqlite"
        before = db.read_bytes()
        rc, err = run_cli(capsys, *[a.replace("{d}", str(folder)) for a in command])
        assert_one_line_error(rc, err, "results.sqlite")
        assert db.read_bytes() == before, name
        assert sorted(p.name for p in folder.iterdir()) == ["results.sqlite"], name


def test_read_only_commands_open_the_database_read_only(work, capsys, monkeypatch):
    opened = []
    real = sqlite3.connect

    def spy(database, *args, **kwargs):
        opened.append((str(database), kwargs.get("uri", False)))
        return real(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", spy)
    for argv in (["leaderboard", "res"], ["status", "res"], ["regress", "res", "--reference", "ref.json"]):
        opened.clear()
        assert main(argv) == 0
        assert opened and all(uri and "mode=ro" in db for db, uri in opened), (argv, opened)


# ------------------------------------------------------------------------------------------ 4. references, overrides

@pytest.mark.parametrize("mutate,key", [
    (lambda d: d.update(cells=list(d["cells"].values())), "cells"),
    (lambda d: next(iter(d["cells"].values()))["metrics"].update({"gsm8k/accuracy": "0.5"}), "gsm8k/accuracy"),
    (lambda d: next(iter(d["cells"].values())).update(metrics=[1, 2]), "metrics"),
    (lambda d: next(iter(d["cells"].values())).update(status=3), "status"),
    (lambda d: d["cells"].update({"x": 5}), "cells.x"),
    (lambda d: d.update(tolerances={"default": "wide"}), "tolerances.default"),
    (lambda d: d.update(tolerances=[1]), "tolerances"),
])
def test_reference_with_wrong_types_names_the_key(work, capsys, mutate, key):
    data = json.loads(Path("ref.json").read_text())
    mutate(data)
    Path("ref.json").write_text(json.dumps(data))
    rc, err = run_cli(capsys, "regress", "res", "--reference", "ref.json")
    assert_one_line_error(rc, err, "ref.json", key)


CONFIG = """\
name: tiny
pool: {path: pool.jsonl}
proxy: {model: gym-proxy, tokenizer: tok, train: {total_steps: 10}}
selectors: [random]
budgets: [0.1]
targets:
  - {name: t, model: gym-target-s, tokenizer: tok, train: {total_steps: 10}}
evaluation: {tasks: []}
"""


def test_set_indexes_lists_and_reports_bad_values(work):
    from s2lbench.common.typed import apply_overrides, load_yaml
    from s2lbench.errors import ConfigError

    Path("c.yaml").write_text(CONFIG)
    data = apply_overrides(load_yaml("c.yaml"), ["targets.0.train.total_steps=50", "budgets=[0.2, 0.3]"])
    assert data["targets"][0]["train"]["total_steps"] == 50 and data["budgets"] == [0.2, 0.3]
    for bad, words in (("budgets=[0.1", "not valid YAML"), ("targets.5.train.total_steps=1", "out of range"),
                       ("targets.x.name=a", "use a number"), ("name.first=a", "not a mapping"),
                       ("targets..name=a", "empty key")):
        with pytest.raises(ConfigError, match=words):
            apply_overrides(load_yaml("c.yaml"), [bad])


def test_set_errors_reach_the_user_as_one_line(work, capsys):
    Path("c.yaml").write_text(CONFIG)
    rc, err = run_cli(capsys, "run", "c.yaml", "--dry-run", "--set", "budgets=[0.1")
    assert_one_line_error(rc, err, "budgets")


def test_run_help_example_of_set_works(work):
    """`run --help` shows --set targets.0.train.total_steps=50; it must parse."""
    from s2lbench.grid.experiment import load_experiment

    Path("c.yaml").write_text(CONFIG)
    config = load_experiment("c.yaml", ["targets.0.train.total_steps=50"])
    assert config.targets[0].train["total_steps"] == 50


@pytest.mark.parametrize("text,key,line", [
    (CONFIG + "budgets: [0.5]\n", "budgets", 9),
    (CONFIG.replace("selectors: [random]", "selectors: [random]\npool: {path: other.jsonl}"), "pool", 5),
    (CONFIG.replace("t, model: gym-target-s, tokenizer: tok, train: {total_steps: 10}",
                    "t, model: gym-target-s, tokenizer: tok, train: {total_steps: 10, total_steps: 20}"),
     "total_steps", 7),
])
def test_duplicate_yaml_keys_are_rejected_naming_key_and_line(work, capsys, text, key, line):
    Path("c.yaml").write_text(text)
    rc, err = run_cli(capsys, "run", "c.yaml", "--dry-run")
    assert_one_line_error(rc, err, "c.yaml", repr(key), f"line {line}")


# ------------------------------------------------------------------------------------------ 5. values at the edge

@pytest.mark.parametrize("argv", [
    ["select", "--pool", "pool.jsonl", "--selector", "random", "--budget", "5", "--out", "o.jsonl", "--seed", "-1"],
    ["leaderboard", "res", "--bootstrap-seed", "-1"],
    ["gym", "build", "--small", "--out", "gymx", "--seed", "-1"],
    ["train", "--pool", "pool.jsonl", "--model", "gym-proxy", "--out", "run", "--seed", "-1"],
])
def test_negative_seeds_are_refused_on_the_command_line(work, capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "seed" in err and "-1" in err and "Traceback" not in err
    assert not Path("o.jsonl").exists() and not Path("run").exists() and not Path("gymx").exists()


def test_negative_seeds_are_refused_in_configs_too(work, capsys):
    Path("c.yaml").write_text(CONFIG + "seeds: [0, -1]\n")
    rc, err = run_cli(capsys, "run", "c.yaml", "--dry-run")
    assert_one_line_error(rc, err, "seeds", "-1")


def test_run_selector_refuses_a_negative_seed(work):
    from s2lbench.plugin_manager import get_hooks
    from s2lbench.selection import run_selector

    pool = Pool([SFTExample(f"{i}", "q", "", "a") for i in range(10)])
    with pytest.raises(S2LBenchError, match="seed"):
        run_selector(get_hooks().selector("random"), pool, 3, -1)


@pytest.mark.parametrize("budget,words", [("-5", "negative"), ("-0.1", "negative"), ("0", "zero"),
                                          ("1.5", "fraction"), ("nan", "finite"), ("abc", "neither"),
                                          ("41", "larger than the pool")])
def test_budgets_are_reported_as_what_they_are(work, capsys, budget, words):
    rc, err = run_cli(capsys, "select", "--pool", "pool.jsonl", "--selector", "random", "--budget", budget,
                      "--out", "o.jsonl")
    assert words in assert_one_line_error(rc, err, budget if budget != "41" else "41")


def test_options_are_checked_against_the_data(work, capsys):
    rc, err = run_cli(capsys, "select", "--pool", "pool.jsonl", "--selector", "s2l", "--budget", "5",
                      "--trajectories", "traj.npy", "--option", "checkpoints=99", "--out", "o.jsonl")
    assert_one_line_error(rc, err, "checkpoints=99", "6")
    assert not Path("o.jsonl").exists()


@pytest.mark.parametrize("flag,value,suggestion", [("--metric", "acuracy", "accuracy"),
                                                   ("--baseline", "randm", "random"),
                                                   ("--metric", "zzz", "accuracy")])
def test_leaderboard_names_are_checked_with_did_you_mean(work, capsys, flag, value, suggestion):
    rc, err = run_cli(capsys, "leaderboard", "res", flag, value)
    assert_one_line_error(rc, err, repr(value), suggestion)


@pytest.mark.parametrize("variable", ["S2LBENCH_PLUGINS", "S2LBENCH_DISABLE_PLUGINS"])
def test_unknown_plugin_names_in_the_environment_are_errors(work, monkeypatch, variable):
    from s2lbench.errors import PluginError
    from s2lbench.plugin_manager import make_plugin_manager

    monkeypatch.setenv(variable, "does-not-exist")
    with pytest.raises(PluginError, match="does-not-exist"):
        make_plugin_manager()


def test_unknown_plugin_names_reach_the_user_as_one_line(work, capsys, monkeypatch):
    from s2lbench.plugin_manager import get_hooks

    get_hooks.cache_clear()
    monkeypatch.setenv("S2LBENCH_PLUGINS", "does-not-exist")
    try:
        rc, err = run_cli(capsys, "plugins")
    finally:
        get_hooks.cache_clear()
    assert_one_line_error(rc, err, "does-not-exist", "S2LBENCH_PLUGINS")


# ------------------------------------------------------------------------------------------ 6. the boundary

def test_an_unexpected_error_is_one_line_with_a_log_file(work, capsys, monkeypatch):
    from s2lbench.commands import select

    def boom(self, args):
        raise RuntimeError("a bug")

    monkeypatch.setenv("S2LBENCH_LOG_DIR", str(work / "logs"))
    monkeypatch.setattr(select.SelectCommand, "run", boom)
    argv = ["select", "--pool", "pool.jsonl", "--selector", "random", "--budget", "5", "--out", "o.jsonl"]
    rc, err = run_cli(capsys, *argv)
    assert rc == 1 and "Traceback" not in err and "a bug" in err
    logs = list((work / "logs").glob("crash-*.log"))
    assert len(logs) == 1 and str(logs[0]) in err
    assert "Traceback" in logs[0].read_text() and "RuntimeError: a bug" in logs[0].read_text()
    rc, err = run_cli(capsys, *argv, "--debug")
    assert rc == 1 and "Traceback" in err


@pytest.mark.parametrize("exc,words", [
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "not UTF-8"),
    (OSError(errno.EIO, "Input/output error", "disk.bin"), "disk.bin"),
    (json.JSONDecodeError("Expecting value", "x", 0), "malformed JSON"),
    (sqlite3.DatabaseError("file is not a database"), "database"),
    (ConnectionError("Max retries exceeded"), "hub is not reachable"),
])
def test_expected_failures_from_libraries_are_one_line(work, capsys, monkeypatch, exc, words):
    from s2lbench.commands import select

    def fail(self, args):
        raise exc

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(select.SelectCommand, "run", fail)
    rc, err = run_cli(capsys, "select", "--pool", "p", "--selector", "random", "--budget", "5", "--out", "o")
    assert rc == 2
    assert words in assert_one_line_error(rc, err)


# ------------------------------------------------------------------------------------------ 7. artifacts as units

def test_a_later_subset_removes_an_earlier_runs_cluster_labels(work, capsys):
    from s2lbench.commands.select import check_selection_unit

    assert main(["select", "--pool", "pool.jsonl", "--selector", "s2l", "--budget", "6", "--trajectories",
                 "traj.npy", "--option", "n_clusters=2", "--out", "sub.jsonl"]) == 0
    assert Path("sub.cluster_labels.npy").exists()
    assert main(["select", "--pool", "pool.jsonl", "--selector", "random", "--budget", "6",
                 "--out", "sub.jsonl"]) == 0
    assert not Path("sub.cluster_labels.npy").exists()
    diag = check_selection_unit("sub.jsonl")
    assert diag["provenance"]["selector"] == "random" and "cluster_labels" not in diag["files"]


def test_a_subset_that_does_not_match_its_diagnostics_is_refused(work, capsys):
    from s2lbench.commands.select import check_selection_unit

    assert main(["select", "--pool", "pool.jsonl", "--selector", "random", "--budget", "6",
                 "--out", "sub.jsonl"]) == 0
    Path("sub.jsonl").write_text(Path("sub.jsonl").read_text().splitlines()[0] + "\n")
    with pytest.raises(S2LBenchError, match="does not match"):
        check_selection_unit("sub.jsonl")
    Path("sub.diagnostics.json").unlink()
    with pytest.raises(S2LBenchError, match="incomplete"):
        check_selection_unit("sub.jsonl")


def test_gym_evaluation_refuses_a_folder_without_its_manifest(work, capsys):
    _gym_for_evaluate(work)
    (work / "g" / "gym.json").unlink()
    rc, err = run_cli(capsys, "evaluate", "--task", "gym", "--option", "set=t", "--predictions", "preds.jsonl",
                      "--data-dir", "g")
    assert_one_line_error(rc, err, "gym.json")


@pytest.mark.parametrize("value", ["../pool", "/etc/passwd", "t/../../pool", ".hidden"])
def test_paths_from_options_never_escape_their_folder(work, capsys, value):
    _gym_for_evaluate(work)
    row = json.dumps({"instruction": "2+2", "answer": "4"}) + "\n"
    (work / "g" / "pool.jsonl").write_text(row)  # what set=../pool would reach
    (work / "g" / "tests" / ".hidden.jsonl").write_text(row)
    rc, err = run_cli(capsys, "evaluate", "--task", "gym", "--option", f"set={value}", "--predictions",
                      "preds.jsonl", "--data-dir", "g")
    assert_one_line_error(rc, err, value)


def test_a_failed_train_leaves_no_run_folder(work, capsys):
    rc, err = run_cli(capsys, "train", "--pool", "pool.jsonl", "--model", "gym-proxy", "--tokenizer",
                      "./no-such-tok", "--steps", "1", "--out", "run")
    assert_one_line_error(rc, err, "no-such-tok")
    assert not Path("run").exists()


def test_signals_import_keeps_the_old_folder_when_the_new_matrix_is_bad(work, capsys):
    assert main(["signals", "import", "--pool", "pool.jsonl", "--matrix", "traj.npy", "--out", "sig"]) == 0
    before = {p.name: p.read_bytes() for p in Path("sig").iterdir()}
    inf = np.load("traj.npy")
    inf[0, 0] = np.inf
    np.save("inf.npy", inf)
    rc, err = run_cli(capsys, "signals", "import", "--pool", "pool.jsonl", "--matrix", "inf.npy", "--out", "sig")
    assert_one_line_error(rc, err, "inf.npy", "infinite")
    assert {p.name: p.read_bytes() for p in Path("sig").iterdir()} == before


def test_output_folders_that_are_not_ours_are_not_replaced(work, capsys):
    other = work / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    for argv in (["signals", "import", "--pool", "pool.jsonl", "--matrix", "traj.npy", "--out", "mine"],
                 ["gym", "build", "--small", "--size", "200", "--test-size", "10", "--out", "mine"]):
        rc, err = run_cli(capsys, *argv)
        assert_one_line_error(rc, err, "mine", "refusing")
        assert (other / "notes.txt").read_text() == "keep me"


# ------------------------------------------------------------------------------------------ 8. contracts

@dataclass(frozen=True)
class _NoOptions:
    pass


def _global_random_selector():
    from s2lbench.selection import Selector

    class GlobalRandom(Selector):
        name = "global-random"

        def select(self, ctx):
            return np.array(random.sample(range(len(ctx.pool)), ctx.budget))

    return GlobalRandom


def test_run_selector_catches_a_selector_using_the_global_random(work):
    from s2lbench.selection import run_selector

    pool = Pool([SFTExample(f"{i}", f"q{i}", "", "a") for i in range(200)])
    with pytest.raises(S2LBenchError, match="two runs with seed 3 chose different subsets"):
        run_selector(_global_random_selector(), pool, 20, 3, check_determinism=True)


def test_select_check_catches_a_third_party_plugin_using_the_global_random(work, capsys, monkeypatch):
    from s2lbench import plugin_manager as plugins

    cls = _global_random_selector()
    real = plugins.Hooks.selector
    monkeypatch.setattr(plugins.Hooks, "selector", lambda self, name: cls if name == cls.name else real(self, name))
    argv = ["select", "--pool", "pool.jsonl", "--selector", "global-random", "--budget", "10", "--out", "o.jsonl"]
    rc, err = run_cli(capsys, *argv, "--check")
    assert_one_line_error(rc, err, "global-random", "different subsets")
    assert not Path("o.jsonl").exists()


@pytest.mark.parametrize("selector,options", [("random", []), ("s2l", ["--option", "n_clusters=3"])])
def test_select_check_passes_for_deterministic_selectors(work, capsys, selector, options):
    assert main(["select", "--pool", "pool.jsonl", "--selector", selector, "--budget", "8", "--trajectories",
                 "traj.npy", *options, "--check", "--out", "o.jsonl"]) == 0
    assert "determinism checked" in capsys.readouterr().out
    assert json.loads(Path("o.diagnostics.json").read_text())["determinism_checked"] is True


@pytest.mark.parametrize("manifest,words", [
    (b"{not json", ["gym.json", "JSON"]),
    (BAD_TEXT["latin1"], ["gym.json"]),
    (b"[1, 2]", ["gym.json", "config"]),
    (b'{"config": "v2"}', ["gym.json", "config"]),
    (b'{"config": {"version": 2, "pool_sise": 100}}', ["gym.json", "config.pool_sise", "pool_size"]),
    (b'{"config": {"version": 2, "vocab_size": 10}}', ["gym.json", "config.vocab_size", "258"]),
])
def test_gym_pretrain_names_the_bad_manifest(work, capsys, manifest, words):
    """`s2lbench gym pretrain --gym DIR` reads DIR/gym.json: every way it can be bad is one line naming it (and
    the key), and nothing is written."""
    (work / "bad-gym").mkdir()
    (work / "bad-gym" / "gym.json").write_bytes(manifest)
    rc, err = run_cli(capsys, "gym", "pretrain", "--gym", "bad-gym", "--model", "gym-proxy", "--out", "base")
    assert_one_line_error(rc, err, *words)
    assert not Path("base").exists()


@pytest.mark.parametrize("override,key", [
    ("pool.gym.pool_size=-1", "pool.gym.pool_size"),
    ("pool.gym.defects.wrong_answer=2", "pool.gym.defects.wrong_answer"),
    ("targets.0.train.total_steps=0", "targets[0].train.total_steps"),
    ("proxy.train.batch_size=0", "proxy.train.batch_size"),
    ("evaluation.generation.batch_size=0", "evaluation.generation.batch_size"),
])
def test_a_value_a_config_block_refuses_is_named_by_its_full_key(work, capsys, override, key):
    """A check inside a block (GymConfig, TrainConfig, GenerationConfig) names the key with the block's path."""
    rc, err = run_cli(capsys, "demo", "--out", "d", "--set", override)
    assert_one_line_error(rc, err, "demo", key)
    assert not Path("d").exists()


# ------------------------------------------------------------------------------------------ 9. whole classes of input

@pytest.mark.parametrize("override,key", [
    ("targets.0.name=null", "targets[0].name"),                 # null read as the name "None"
    ("targets.0.model=null", "targets[0].model"),
    ("budgets=[0.1, 0.1]", "budgets[1]"),                       # one cell id twice
    ("budgets=[]", "budgets"),                                  # selectors with nothing to select
    ("seeds=[]", "seeds"),                                      # a grid of zero cells
    ("evaluation.limit=-1", "evaluation.limit"),                # items[:-1] dropped the last item
    ("evaluation.limit=0", "evaluation.limit"),
    ("evaluation.tasks=[gym, gym]", "evaluation.tasks[1]"),
    ("name=", "name"),                                          # default output folder runs/
    ("targets.0.name=a/b", "targets[0].name"),                  # cell ids name files
    ("targets.0.name=a__b", "targets[0].name"),
    ("selectors=[{name: random, label: full}]", "selectors[0]"),  # the full-data reference's row
    ("selectors=[randm]", "selectors[0].name"),
    ("evaluation.tasks=[gym, gsm8kk]", "evaluation.tasks[1]"),
    ("signals.options.max_lenght=64", "signals.options.max_lenght"),  # a TypeError after proxy training
    ("evaluation.task_options={gym: {gradin: s2lbench}}", "evaluation.task_options.gym.gradin"),
    ("evaluation.task_options={gsm8k: {grading: s2lbench}}", "evaluation.task_options.gsm8k"),
    ("evaluation.in_domain={gms8k: true}", "evaluation.in_domain.gms8k"),
])
def test_config_values_that_would_misbehave_later_are_refused_naming_the_key(work, capsys, override, key):
    rc, err = run_cli(capsys, "demo", "--out", "d", "--set", override)
    line = assert_one_line_error(rc, err, "demo", key)
    assert "ExperimentConfig" not in line
    assert not Path("d").exists()


def _math_dir(name: str, rows: object, file: str = "numglue.json") -> str:
    Path(name).mkdir()
    text = rows if isinstance(rows, str) else json.dumps(rows)
    (Path(name) / file).write_text(text, encoding="utf-8")
    return name


@pytest.mark.parametrize("file,rows,words", [
    ("math.jsonl", '{"problem": "p", "answer": "1"}\n7\n', ["math.jsonl", "item 1", "int"]),   # was a TypeError
    ("math.jsonl", '["problem"]\n', ["math.jsonl", "item 0", "list"]),                        # was an AttributeError
    ("math.jsonl", '{"problem": null, "answer": "1"}\n', ["math.jsonl", "'problem'"]),        # was the text "None"
    ("numglue.json", [{"question": "q", "answer": {"a": 1}}], ["numglue.json", "'answer'", "dict"]),
    ("numglue.json", [{"question": ["q"], "answer": 1}], ["numglue.json", "'question'", "list"]),
    ("simuleq.json", [{"question": "q", "answer": True}], ["simuleq.json", "'answer'", "bool"]),
    ("gsm8k.jsonl", "", ["gsm8k.jsonl", "no items"]),   # was blamed on the predictions' index 0
    ("numglue.json", [], ["numglue.json", "no items"]),
])
def test_malformed_math_test_files_are_one_line_naming_file_and_item(work, capsys, file, rows, words):
    task = file.split(".")[0]
    _math_dir("data", rows, file)
    rc, err = run_cli(capsys, "evaluate", "--task", task, "--predictions", "preds.jsonl", "--data-dir", "data",
                      "--out", "graded.jsonl")
    assert_one_line_error(rc, err, *words)
    assert not Path("graded.jsonl").exists()


@pytest.mark.parametrize("name,content,words", [
    ("reports.json", json.dumps([{"findings": "a", "impression": "b"}, [1]]), ["reports.json", "item 1", "list"]),
    ("reports.csv", "uid,findings,findings,impression\n1,a,b,c\n2,d,e,f\n", ["reports.csv", "'findings' twice"]),
    ("reports.csv", "uid,findings,impression\n1,a,b\n2,c,d\n", ["reports.csv", "radiology-mimic options.test_size"]),
])
def test_malformed_radiology_files_are_one_line_naming_file_and_key(work, capsys, name, content, words):
    Path(name).write_text(content, encoding="utf-8")
    rc, err = run_cli(capsys, "evaluate", "--task", "radiology-mimic", "--predictions", "preds.jsonl",
                      "--data-dir", name, "--option", "bertscore=false", "--out", "graded.jsonl")
    assert_one_line_error(rc, err, *words)
    assert not Path("graded.jsonl").exists()


def test_evaluate_never_writes_over_its_predictions(work, capsys):
    before = Path("preds.jsonl").read_bytes()
    rc, err = run_cli(capsys, "evaluate", "--task", "gym", "--option", "set=t", "--data-dir", "g",
                      "--predictions", "preds.jsonl", "--out", "preds.jsonl")
    assert_one_line_error(rc, err, "preds.jsonl", "input")
    assert Path("preds.jsonl").read_bytes() == before


def _edit_store(sql: str) -> None:
    with sqlite3.connect("res/results.sqlite") as con:
        con.execute(sql)


@pytest.mark.parametrize("sql,words", [
    ("UPDATE cells SET cost = '{bad' WHERE rowid = 1", ["results.sqlite", "column cost", "JSON"]),
    ("UPDATE cells SET versions = '[1, 2]' WHERE rowid = 1", ["results.sqlite", "column versions"]),
    ("UPDATE cells SET budget = 'abc' WHERE rowid = 1", ["results.sqlite", "column budget", "'abc'"]),
    ("UPDATE results SET value = 'abc' WHERE rowid = 1", ["results.sqlite", "column value", "'abc'"]),
])
@pytest.mark.parametrize("command", [["leaderboard", "res"], ["regress", "res", "--reference", "ref.json"]])
def test_edited_database_values_are_one_line_naming_the_database_and_column(work, capsys, sql, words, command):
    _edit_store(sql)
    rc, err = run_cli(capsys, *command)
    assert_one_line_error(rc, err, *words)


def test_damage_deep_in_the_database_names_the_file(work, capsys):
    """The header and schema pages read fine; a damaged page shows only when a query reaches it."""
    data = bytearray(Path("res/results.sqlite").read_bytes())
    page = 4096
    data[page:2 * page] = b"\xff" * page
    Path("res/results.sqlite").write_bytes(bytes(data))
    for command in (["leaderboard", "res"], ["status", "res"], ["regress", "res", "--reference", "ref.json"]):
        rc, err = run_cli(capsys, *command)
        assert_one_line_error(rc, err, "res/results.sqlite")


@pytest.mark.parametrize("argv,key", [
    (["--tolerance", "nan"], "--tolerance"),                      # NaN passed every move
    (["--tolerance", "-0.1"], "--tolerance"),
    (["--metric-tolerance", "gsm8k=nan"], "--metric-tolerance"),
])
def test_regress_refuses_tolerances_that_disable_the_check(work, capsys, argv, key):
    rc, err = run_cli(capsys, "regress", "res", "--reference", "ref.json", *argv)
    assert_one_line_error(rc, err, key)


@pytest.mark.parametrize("tolerances,key", [({"default": float("nan")}, "tolerances.default"),
                                            ({"per_metric": {"gsm8k/accuracy": -1}}, "tolerances.per_metric")])
def test_regress_refuses_a_reference_whose_tolerances_disable_the_check(work, capsys, tolerances, key):
    data = json.loads(Path("ref.json").read_text())
    data["tolerances"] = tolerances
    Path("ref.json").write_text(json.dumps(data))
    rc, err = run_cli(capsys, "regress", "res", "--reference", "ref.json")
    assert_one_line_error(rc, err, "ref.json", key)


def test_leaderboard_reads_its_inputs_before_writing_tables_or_figures(work, capsys):
    rc, err = run_cli(capsys, "leaderboard", "res", "--tables", "tables", "--plots", "plots",
                      "--trajectories", "missing.npy", "--clusters", "missing.npy")
    assert_one_line_error(rc, err, "missing.npy")
    assert not Path("tables").exists() and not Path("plots").exists()


@pytest.fixture
def third_party_plugin(monkeypatch):
    """Install one fake entry point beside the real ones; yields a setter taking the module it loads."""
    from importlib.metadata import entry_points as installed

    from s2lbench import plugin_manager as plugins

    class EntryPoint:
        name, value, target = "third", "third_mod", None
        dist = type("Dist", (), {"name": "third-dist"})

        def load(self):
            if isinstance(self.target, BaseException):
                raise self.target
            return self.target

    ep = EntryPoint()
    monkeypatch.setattr(plugins, "entry_points", lambda group: [*installed(group=group), ep])
    plugins.get_hooks.cache_clear()
    yield lambda target: setattr(ep, "target", target)
    plugins.get_hooks.cache_clear()


def _registering(kind: str, obj: object) -> object:
    import s2lbench

    return type("Plugin", (), {f"register_{kind}": staticmethod(s2lbench.hookimpl(lambda register: register(obj)))})()


def _selector(name: object, **attrs) -> type:
    from s2lbench.selection import Selector

    return type("Sel", (Selector,), {"name": name, "requires": (), "select": lambda self, ctx: [], **attrs})


def _bad_plugins() -> dict[str, tuple[object, str]]:
    from types import SimpleNamespace

    from s2lbench.evaluation import Evaluator

    return {
        "exits on import": (SystemExit(3), "SystemExit"),
        "space in name": (_registering("selectors", _selector("my selector")), "'my selector'"),
        "slash in name": (_registering("selectors", _selector("a/b")), "'a/b'"),
        "cell-id separator": (_registering("selectors", _selector("a__b")), "'a__b'"),
        "the reference's row": (_registering("selectors", _selector("full")), "'full'"),
        "not a class": (_registering("selectors", SimpleNamespace(name="ns")), "Selector"),
        "options not a dataclass": (_registering("selectors", _selector("x", Options=dict)), "Options"),
        "requires a string": (_registering("selectors", _selector("x", requires="loss")), "requires"),
        "metrics not Metric": (_registering("evaluators", type("E", (Evaluator,), {"name": "e", "metrics": ("a",)})),
                               "metrics"),
        "evaluator not a class": (_registering("evaluators", SimpleNamespace(name="ev")), "Evaluator"),
    }


@pytest.mark.parametrize("case", sorted(_bad_plugins()))
def test_a_bad_third_party_plugin_is_one_line_naming_it(work, capsys, third_party_plugin, case):
    target, words = _bad_plugins()[case]
    third_party_plugin(target)
    rc, err = run_cli(capsys, "plugins")
    assert_one_line_error(rc, err, "'third'", words)
