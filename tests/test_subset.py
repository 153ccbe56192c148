"""`s2lbench subset` and `s2lbench.subset`: pool -> tiny proxy -> signals -> S2L -> a subset every trainer
reads. Each export is opened with its own library (datasets, TRL) or checked against its documented schema
(LLaMA-Factory's data/README); a kill -9 after a finished stage resumes without recomputing it; the dry run
computes nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import s2lbench
from s2lbench.cli import main
from s2lbench.grid.stages import read_events
from s2lbench.pool.exports import DATASET_INFO, FILES, sha256_of
from s2lbench.pool.loaders import load_pool

PROXY_TRAIN = {"total_steps": 6, "n_checkpoints": 3, "batch_size": 8, "max_length": 64}
CLI_PROXY = [f"--proxy-train={k}={v}" for k, v in PROXY_TRAIN.items()]
N_ROWS = 120
BUDGET = 0.25


def write_pool(path: Path, n: int = N_ROWS) -> Path:
    """Arithmetic questions with an extra column (which the HF export must keep) and no ids."""
    with open(path, "w") as f:
        for i in range(n):
            a, b = i % 17 + 2, i % 5 + 3
            row = {"question": f"What is {a} times {b}?" + " Explain." * (i % 3), "answer": f"{a}*{b}={a * b}. "
                   f"#### {a * b}", "difficulty": i % 4}
            f.write(json.dumps(row) + "\n")
    return path


@pytest.fixture(scope="module")
def pool_file(tmp_path_factory) -> Path:
    return write_pool(tmp_path_factory.mktemp("pool") / "math.jsonl")


@pytest.fixture(scope="module")
def s2l_subset(pool_file, tmp_path_factory):
    """One S2L subset (jsonl); every other format re-exports it from the cached stages."""
    out = tmp_path_factory.mktemp("subset")
    result = s2lbench.subset(pool_file, "s2l", BUDGET, out=out, proxy="gym-proxy", proxy_train=PROXY_TRAIN,
                             options={"n_clusters": 4}, report=None)
    return out, result


def export(pool_file: Path, out: Path, fmt: str, capsys=None):
    code = main(["subset", "--pool", str(pool_file), "--selector", "s2l", "--budget", str(BUDGET), "--proxy",
                 "gym-proxy", *CLI_PROXY, "--option", "n_clusters=4", "--out", str(out), "--format", fmt])
    assert code == 0
    return json.loads((out / "diagnostics.json").read_text())


@pytest.mark.integration
def test_subset_writes_the_selection_its_diagnostics_and_provenance(s2l_subset, pool_file):
    out, result = s2l_subset
    pool = load_pool(pool_file)
    count = round(BUDGET * N_ROWS)
    assert len(result.ids) == count and list(result.positions) == sorted(result.positions)
    rows = [json.loads(line) for line in (out / FILES["jsonl"]).read_text().splitlines()]
    assert [r["id"] for r in rows] == result.ids == [pool[int(p)].id for p in result.positions]
    assert rows[0] == pool[int(result.positions[0])].to_dict()  # s2lbench's own records
    picks = [json.loads(line) for line in (out / "selection.jsonl").read_text().splitlines()]
    assert [(p["id"], p["position"]) for p in picks] == list(zip(result.ids, map(int, result.positions), strict=True))
    diag = json.loads((out / "diagnostics.json").read_text())
    prov = diag["provenance"]
    assert prov["pool"]["fingerprint"] == pool.fingerprint() and prov["budget"] == count
    assert prov["selector"] == "s2l" and prov["options"] == {"n_clusters": 4}
    assert prov["proxy"]["model"] == "gym-proxy" and prov["proxy"]["train"]["total_steps"] == 6
    assert {s["stage"] for s in prov["stages"]} == {"proxy", "signals", "selection"}
    assert diag["cost"]["by_stage"]["proxy"]["flops"] > 0 and diag["cost"]["seconds"] > 0
    assert diag["selector_diagnostics"]["selected_ids_hash"]
    assert sum(v["selected"] for v in diag["source_mix"].values()) == count

    for entry in diag["files"].values():  # the manifest describes exactly the files beside it
        assert sha256_of(out / entry["file"]) == entry["sha256"]


@pytest.mark.integration
def test_the_subset_is_the_runners_own_selection_stage(s2l_subset, pool_file):
    """Same stage specs as the runner: the selection folder's spec names the pool, the signals' stage key,
    the selector, its options, the budget count and the seed, exactly as a grid cell's would."""
    out, result = s2l_subset
    diag = json.loads((out / "diagnostics.json").read_text())
    keys = {s["stage"]: s["key"] for s in diag["provenance"]["stages"]}
    spec = json.loads((out / "stages" / "selection" / keys["selection"] / "spec.json").read_text())
    assert spec == {"pool": load_pool(pool_file).fingerprint(), "signals": {"loss": keys["signals"]},
                    "selector": "s2l", "options": {"n_clusters": 4}, "budget": len(result.ids), "seed": 0}
    signals_spec = json.loads((out / "stages" / "signals" / keys["signals"] / "spec.json").read_text())
    assert signals_spec["proxy"] == keys["proxy"]
    # the tiny proxy's tokenizer was trained on the pool, in the stage cache, and named portably
    proxy_spec = json.loads((out / "stages" / "proxy" / keys["proxy"] / "spec.json").read_text())
    assert proxy_spec["train"]["tokenizer"].startswith("<stages>/tokenizer/")


@pytest.mark.integration
def test_rerunning_recomputes_nothing_and_hf_export_keeps_original_columns(s2l_subset, pool_file, tmp_path):
    datasets = pytest.importorskip("datasets")
    out, result = s2l_subset
    before = len(read_events(out / "stages"))
    diag = export(pool_file, out, "hf")
    new = read_events(out / "stages")[before:]
    assert new and all(e["status"] == "cached" for e in new)
    ds = datasets.load_from_disk(str(out / FILES["hf"]))
    assert set(ds.column_names) == {"question", "answer", "difficulty", "id"}
    originals = [json.loads(line) for line in pool_file.read_text().splitlines()]
    assert ds["id"] == result.ids
    assert [{k: row[k] for k in ("question", "answer", "difficulty")} for row in ds] == \
        [originals[int(p)] for p in result.positions]
    assert diag["files"]["subset"]["format"] == "hf"


@pytest.mark.integration
def test_messages_export_is_trl_conversational(s2l_subset, pool_file):
    datasets = pytest.importorskip("datasets")
    out, result = s2l_subset
    export(pool_file, out, "messages")
    ds = datasets.load_dataset("json", data_files=str(out / FILES["messages"]), split="train")
    assert len(ds) == len(result.ids) and ds["id"] == result.ids
    pool = load_pool(pool_file)
    first = pool[int(result.positions[0])]
    assert ds[0]["messages"] == [{"role": "user", "content": first.instruction},
                                 {"role": "assistant", "content": first.output}]
    trl_data = pytest.importorskip("trl.data_utils")
    assert all(trl_data.is_conversational(row) for row in ds)


def check_llama_factory_entry(folder: Path, entry: dict, fmt: str) -> list[dict]:
    """The schema of hiyouga/LLaMA-Factory data/README.md: file_name in the folder, formatting, columns (and,
    for sharegpt, tags) naming keys every row has."""
    assert entry["formatting"] == fmt
    rows = json.loads((folder / entry["file_name"]).read_text())
    assert isinstance(rows, list) and rows
    columns = entry["columns"]
    if fmt == "alpaca":
        assert columns == {"prompt": "instruction", "query": "input", "response": "output"}
        for row in rows:
            assert all(isinstance(row[c], str) for c in columns.values()) and row["instruction"] and row["output"]
    else:
        tags = entry["tags"]
        assert columns == {"messages": "conversations"}
        assert tags == {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}
        for row in rows:
            turns = row[columns["messages"]]
            # human and gpt alternate, human first (the README's rule for the odd and even positions)
            assert [t[tags["role_tag"]] for t in turns] == [tags["user_tag"], tags["assistant_tag"]]
            assert all(isinstance(t[tags["content_tag"]], str) and t[tags["content_tag"]] for t in turns)
    return rows


@pytest.mark.integration
def test_alpaca_and_sharegpt_exports_register_in_one_dataset_info(s2l_subset, pool_file):
    out, result = s2l_subset
    pool = load_pool(pool_file)
    for fmt in ("alpaca", "sharegpt"):
        diag = export(pool_file, out, fmt)
        assert diag["files"]["dataset_info"]["entry"] == f"s2lbench_subset_{fmt}"
    info = json.loads((out / DATASET_INFO).read_text())
    assert set(info) == {"s2lbench_subset_alpaca", "s2lbench_subset_sharegpt"}  # the second kept the first
    alpaca = check_llama_factory_entry(out, info["s2lbench_subset_alpaca"], "alpaca")
    sharegpt = check_llama_factory_entry(out, info["s2lbench_subset_sharegpt"], "sharegpt")
    first = pool[int(result.positions[0])]
    assert alpaca[0]["instruction"] == first.instruction and alpaca[0]["output"] == first.output
    assert sharegpt[0]["conversations"][1]["value"] == first.output
    assert [r["id"] for r in alpaca] == [r["id"] for r in sharegpt] == result.ids


def test_a_selector_without_signals_trains_no_proxy(pool_file, tmp_path, capsys):
    assert main(["subset", "--pool", str(pool_file), "--selector", "random", "--budget", "10", "--seed", "3",
                 "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "no proxy is trained" in printed and "stage selection" in printed
    assert {e["stage"] for e in read_events(tmp_path / "stages")} == {"selection"}
    rows = (tmp_path / "subset.jsonl").read_text().splitlines()
    assert len(rows) == 10


def test_dry_run_prints_the_estimate_and_computes_nothing(pool_file, tmp_path, capsys):
    assert main(["subset", "--pool", str(pool_file), "--selector", "s2l", "--budget", "0.1", "--proxy", "gym-proxy",
                 "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "cost estimate" in printed and "proxy training" in printed and "signal pass" in printed
    assert "dry run OK" in printed
    assert read_events(tmp_path / "out" / "stages") == []
    assert not (tmp_path / "out" / "diagnostics.json").exists()


@pytest.mark.integration
def test_kill_during_subset_resumes_without_recomputing_finished_stages(tmp_path):
    """A real `s2lbench subset` process, killed with SIGKILL as soon as its proxy stage has finished, then run
    again: the tokenizer and the proxy come from the cache, only what was unfinished is computed."""
    pool = write_pool(tmp_path / "pool.jsonl", 200)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "s2lbench.cli", "subset", "--pool", str(pool), "--selector", "s2l", "--budget",
            "0.2", "--proxy", "gym-proxy", *CLI_PROXY, "--proxy-train", "n_checkpoints=4", "--out", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 600
    try:
        while time.time() < deadline and proc.poll() is None:
            if any(e["stage"] == "proxy" and e["status"] == "computed" for e in read_events(out / "stages")):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "the run ended before its proxy stage finished or was killed"
    assert not (out / "diagnostics.json").exists()  # no half subset looks finished
    first = read_events(out / "stages")
    assert not any(e["stage"] == "selection" for e in first)

    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    second = read_events(out / "stages")[len(first):]
    status = {e["stage"]: e["status"] for e in second}
    assert status["tokenizer"] == "cached" and status["proxy"] == "cached"
    assert status["selection"] == "computed"
    computed = [e["stage"] for e in read_events(out / "stages") if e["status"] == "computed"]
    assert computed.count("proxy") == 1 and computed.count("tokenizer") == 1 and computed.count("signals") == 1
    assert "[subset]   stage proxy" in done.stdout and "cached" in done.stdout
    assert json.loads((out / "diagnostics.json").read_text())["provenance"]["budget"] == 40


def test_an_hf_pool_exports_its_original_columns(tmp_path, monkeypatch):
    """``hf://owner/name`` pools go through ``datasets.load_dataset``, served here from a local file (tests are
    offline): the subset is selected from it and its HF export keeps the dataset's own columns."""
    datasets = pytest.importorskip("datasets")
    source = write_pool(tmp_path / "train.jsonl", 50)
    real = datasets.load_dataset

    def from_the_hub(path, *args, split="train", **kwargs):
        assert path == "acme/math" and split == "train"
        return real("json", data_files=str(source), split="train")

    monkeypatch.setattr(datasets, "load_dataset", from_the_hub)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # the preflight would look for it in the hub cache
    out = tmp_path / "out"
    assert main(["subset", "--pool", "hf://acme/math", "--selector", "random", "--budget", "0.2", "--out", str(out),
                 "--format", "hf"]) == 0
    ds = datasets.load_from_disk(str(out / FILES["hf"]))
    picks = [json.loads(line) for line in (out / "selection.jsonl").read_text().splitlines()]
    originals = [json.loads(line) for line in source.read_text().splitlines()]
    assert len(ds) == 10 and set(ds.column_names) == {"question", "answer", "difficulty", "id"}
    assert [{k: r[k] for k in ("question", "answer", "difficulty")} for r in ds] == \
        [originals[p["position"]] for p in picks]
    assert ds["id"] == [p["id"] for p in picks]


def test_proxy_recipes_default_to_the_gym_and_the_paper_and_take_overrides():
    from s2lbench.api.subset import proxy_recipe

    tiny = proxy_recipe("gym-proxy", None)
    assert tiny["schedule"] == "steps" and tiny["n_checkpoints"] == 8 and tiny["learning_rate"] == 3e-3
    paper = proxy_recipe("EleutherAI/pythia-70m-deduped", None)
    assert (paper["schedule"], paper["epochs"], paper["learning_rate"], paper["max_length"]) == ("epochs", 3, 2e-5, 512)
    assert paper["batch_size"] * paper["grad_accum"] == 128 and paper["n_checkpoints"] == 12
    steps = proxy_recipe("EleutherAI/pythia-70m-deduped", {"total_steps": 500, "save_every": 50})
    assert steps["schedule"] == "steps" and "n_checkpoints" not in steps and steps["save_every"] == 50
    assert proxy_recipe("gym-proxy", {"epochs": 2})["schedule"] == "epochs"


def test_dry_run_of_a_hub_proxy_estimates_the_paper_recipe_and_names_what_is_missing(pool_file, tmp_path, capsys):
    """Offline (as tests are) a hub proxy absent from the cache is a preflight problem; the estimate of its
    stages (the paper's recipe: 3 epochs over the pool, a signal pass per checkpoint) is printed first."""
    code = main(["subset", "--pool", str(pool_file), "--selector", "s2l", "--budget", "0.1", "--proxy",
                 "EleutherAI/pythia-70m-deduped", "--out", str(tmp_path), "--dry-run"])
    printed = capsys.readouterr()
    assert "70.4M parameters (built-in table)" in printed.out
    assert "proxy training" in printed.out and "signal pass" in printed.out
    assert code == 2 and "EleutherAI/pythia-70m-deduped" in printed.err and len(printed.err.splitlines()) == 1
    assert read_events(tmp_path / "stages") == []
