"""benchmarks/bench_gym_calibration.py writes figures that benchmarks/plot_gym_calibration.py tabulates and draws."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO


def _load(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _figures(target, lr, params, per_seed):
    figures = {"args": {"target": target, "lr": lr}, "steps": 900,
               "test_sets": {"gym_arith": True, "gym_word": True, "ood_story": False, "ood_words": False}}
    for seed, (arith, word, story, words) in enumerate(per_seed):
        figures[f"target_full_seed{seed}"] = {
            "params": params, "wall_seconds": 100.0 + seed,
            "curve": [{"step": 450, "exact_match_%": {"gym_arith": 0.0, "gym_word": 0.0, "ood_story": 0.0,
                                                       "ood_words": 0.0}, "in_domain_mean_%": 0.0},
                      {"step": 900, "exact_match_%": {"gym_arith": arith, "gym_word": word, "ood_story": story,
                                                       "ood_words": words},
                       "in_domain_mean_%": (arith + word) / 2}]}
    return figures


def test_the_table_reports_final_scores_mean_std_and_seeds_per_run(tmp_path, capsys):
    plot = _load("plot_gym_calibration")
    small = tmp_path / "small.json"
    small.write_text(json.dumps(_figures("gym-target-l", 0.003, 1_400_000, [(90, 80, 40, 10), (94, 84, 20, 14)])))
    log = tmp_path / "large.log"  # a log: progress lines, then the CALIBRATION block the bench prints last
    log.write_text("12:00 building\n{'loss': 1.0}\nCALIBRATION " + json.dumps(
        _figures("gym-probe-xl", 0.003, 4_900_000, [(96, 92, 30, 24), (98, 94, 26, 22), (97, 93, 28, 20)]), indent=2))
    out = tmp_path / "probe.png"
    assert plot.main([str(small), str(log), "--out", str(out)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "| run | SFT wall (s, per seed) | in-domain | gym_arith | gym_word | ood_story | ood_words |"
    assert table[2].startswith("| gym-target-l (1.4M), lr 0.003, 900 steps, seeds 0-1 | 100 / 101 | 87.0 ± 2.8 (85 / 89) |")
    assert "| 30.0 ± 14.1 (40 / 20) |" in table[2]  # the last checkpoint, not the mid-run one
    assert table[3].startswith("| gym-probe-xl (4.9M), lr 0.003, 900 steps, seeds 0-2 | 100 / 101 / 102 | 95.0 ± 1.0 ")
    assert "| 22.0 ± 2.0 (24 / 22 / 20) |" in table[3]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("content, says", [
    ("no block here\n", "no 'CALIBRATION {...}' block"),
    ("CALIBRATION {\"args\": ", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"args": {}}), "no 'target_full_seed*' run"),
    (json.dumps({"target_full_seed0": {"curve": []}}), "run 'target_full_seed0' has no final checkpoint scores"),
])
def test_a_bad_input_is_one_line_naming_it(tmp_path, content, says):
    plot = _load("plot_gym_calibration")
    path = tmp_path / "bad.log"
    path.write_text(content)
    with pytest.raises(SystemExit) as raised:
        plot.main([str(path)])
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and says in message and "\n" not in message


def test_the_bench_writes_figures_the_plot_reads(tmp_path):
    """A tiny end-to-end calibration (a few steps, from a base pre-trained on a chosen corpus size and learning
    rate): --json holds the runs, seeds, test-set domains and the base's recipe."""
    out = tmp_path / "calibration.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_gym_calibration.py"), "--version", "2",
                    "--small", "--pool-size", "200", "--target", "gym-proxy", "--steps", "4", "--batch-size", "8",
                    "--eval-n", "2", "--seeds", "2", "--first-seed", "0", "--no-subset", "--skip-proxy",
                    "--base", "2", "--base-documents", "30", "--base-lr", "1e-3", "--threads", "1", "--workdir", str(tmp_path / "work"), "--json", str(out)],
                   check=True, capture_output=True, cwd=tmp_path, timeout=600)
    figures = json.loads(out.read_text())
    assert {"target_full_seed0", "target_full_seed1"} <= set(figures)
    assert figures["test_sets"]["gym_arith"] is True and figures["test_sets"]["ood_story"] is False
    recipe = figures["base"]["recipe"]
    assert (recipe["steps"], recipe["corpus"]["documents"], recipe["learning_rate"]) == (2, 30, 1e-3)
    assert figures["base"]["corpus"]["documents"] == 30 and figures["target_full_seed0"]["from_base"]
    summary = _load("plot_gym_calibration").summarise(figures, out)
    assert "base 2 steps on 30 docs, seeds 0-1" in summary.label
    assert len(summary.seconds) == 2 and len(summary.scores["in-domain"]) == 2
    assert summary.in_domain == figures["test_sets"]


def _bench(tmp_path, *flags):
    """One tiny calibration run of gym-proxy (4 steps, 2 test rows) in ``tmp_path/work``; its --json figures."""
    out = tmp_path / "calibration.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_gym_calibration.py"), "--version", "2",
                    "--small", "--pool-size", "200", "--target", "gym-proxy", "--steps", "4", "--batch-size", "8",
                    "--eval-n", "2", "--first-seed", "0", "--no-subset", "--skip-proxy", "--threads", "1",
                    "--workdir", str(tmp_path / "work"), "--json", str(out), *flags],
                   check=True, capture_output=True, cwd=tmp_path, timeout=600)
    return json.loads(out.read_text())


def test_a_reused_workdir_pretrains_a_new_base_for_a_new_recipe(tmp_path):
    """Base and run folders are named by the whole recipe: a second run in the same workdir with another base
    learning rate trains its own base and its own fine-tune instead of reusing (or refusing) the first one's."""
    first = _bench(tmp_path, "--base", "2", "--base-documents", "30", "--base-lr", "1e-3")
    second = _bench(tmp_path, "--base", "2", "--base-documents", "30", "--base-lr", "2e-3")
    assert first["base"]["recipe"]["learning_rate"] == 1e-3 and second["base"]["recipe"]["learning_rate"] == 2e-3
    assert first["base"]["folder"] != second["base"]["folder"]
    assert first["base"]["recipe_hash"] != second["base"]["recipe_hash"]
    assert first["target_full_seed0"]["run_dir"] != second["target_full_seed0"]["run_dir"]


def test_the_shared_tokenizer_uses_the_committed_base_of_the_grid_recipe(tmp_path):
    """--tokenizer shared with the grids' base recipe (2,400 steps, 24,000 documents) starts SFT from the committed
    long base, as the runner does, instead of pre-training one."""
    from s2lbench.gym.bases import PRETRAINED_DIR

    figures = _bench(tmp_path, "--tokenizer", "shared", "--base", "2400", "--base-documents", "24000")
    assert figures["base"]["folder"] == str(PRETRAINED_DIR / "gym-proxy-long")
    assert not any((tmp_path / "work").glob("base-*"))
    assert figures["target_full_seed0"]["from_base"]


def test_the_kernel_check_finds_one_greedy_order_and_names_a_bad_embeddings_file(tmp_path, capsys):
    check = _load("check_selection_kernels")
    x = check.near_tied_embeddings(n=1200, dim=24)
    np.save(tmp_path / "x.npy", x)
    assert check.main(["--embeddings", str(tmp_path / "x.npy"), "--budget", "120", "--coretypes", ""]) == 0
    out = capsys.readouterr().out
    orders = [line.split("order ")[1].split()[0] for line in out.splitlines() if " order " in line]
    assert len(orders) == 2 and "distinct greedy orders: 1" in out  # plain and column-permuted agree
    (tmp_path / "bad.npy").write_text("not an array")
    with pytest.raises(SystemExit, match="bad.npy"):
        check.main(["--embeddings", str(tmp_path / "bad.npy")])
    np.save(tmp_path / "small.npy", x[:10])
    with pytest.raises(SystemExit, match="small.npy.*at least 400"):
        check.main(["--embeddings", str(tmp_path / "small.npy")])


def test_the_fact_probe_covers_every_step_fact_once_and_kinds_the_test_problems():
    probe = _load("probe_gym_facts")
    operands, answer = probe.FACTS["teen-b (borrow step)"]
    assert (17, "-", 8) in operands and answer(17, 8) == 9 and all(10 <= a <= 18 for a, _, _ in operands)
    assert len(probe.FACTS["a+b, carry"][0]) + len(probe.FACTS["a+b, no carry"][0]) == 100
    assert probe.answered(" 13.", 13) and not probe.answered("134", 13) and not probe.answered("3", 13)
    assert probe.problem_kind("What is 77 + 38?") == "+ carry, 2-digit"
    assert probe.problem_kind("What is 41 minus 5?") == "- borrow, 1-digit"
    assert probe.problem_kind("What is 99 - 62?") == "- no borrow, 2-digit"
    assert probe.problem_kind("Write fifty in digits.") == "other"


def test_the_fact_probe_reads_a_model_and_names_a_folder_that_is_not_one(tmp_path):
    """End to end on a tiny untrained model: one recall row per fact kind; a folder without a model is one line."""
    from transformers import AutoTokenizer

    from s2lbench.gym import GymConfig, build_gym
    from s2lbench.training.models import tiny_model

    gym = build_gym(tmp_path / "gym", GymConfig.small(version=2, pool_size=100, test_size=4, dev_size=0))
    tokenizer = AutoTokenizer.from_pretrained(gym.tokenizer)
    tiny_model("gym-proxy", tokenizer, seed=0).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    script = str(REPO / "benchmarks" / "probe_gym_facts.py")
    done = subprocess.run([sys.executable, script, str(tmp_path / "model"), "--tests", str(gym.tests["gym_arith"].parent),
                           "--threads", "1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert all(kind in done.stdout for kind in _load("probe_gym_facts").FACTS)
    assert re.search(r"gym_arith exact match \d+/4 = ", done.stdout)
    bad = subprocess.run([sys.executable, script, str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1] == f"{tmp_path}: not a model folder (no config.json)"
