"""A hand-built results store with known numbers, shared by the leaderboard, plot and regression tests.

Every selector/seed/task has 40 test examples whose 0/1 accuracies are laid out so that the aggregates are
round numbers and the per-example differences to random are known:

============  =================  =================  =====================
selector      gsm8k (in-domain)  svamp (OOD)        note
============  =================  =================  =====================
random        .30 .40 .50        .20 .20 .20        the baseline
s2l           .60 .70 .80        .10 .20 .30        best gsm8k and Avg
el2n          .50 .50 .50        .30 .30 .30        best svamp
bad           .10 .10 .10        .10 .10 .10        worse than random
solo (seed 0) .40                .20                one seed only
full (seed 0) .90                .90                reference, never bold
============  =================  =================  =====================

A selector's correct examples are a prefix of the indices, so for gsm8k s2l is right wherever random is
plus 12 more examples in every seed (difference exactly +0.30 per seed).
"""

from __future__ import annotations

from pathlib import Path

from s2lbench.results.store import Cell, ResultRow, ResultsStore

N_EXAMPLES = 40
TARGET = "tiny"
BUDGET = 100
POOL = 1000

ACCURACY = {
    "random": {"gsm8k": [0.3, 0.4, 0.5], "svamp": [0.2, 0.2, 0.2]},
    "s2l": {"gsm8k": [0.6, 0.7, 0.8], "svamp": [0.1, 0.2, 0.3]},
    "el2n": {"gsm8k": [0.5, 0.5, 0.5], "svamp": [0.3, 0.3, 0.3]},
    "bad": {"gsm8k": [0.1, 0.1, 0.1], "svamp": [0.1, 0.1, 0.1]},
    "solo": {"gsm8k": [0.4], "svamp": [0.2]},
}
IN_DOMAIN = {"gsm8k": True, "svamp": False}


def cell_id(selector: str, budget: int, seed: int, target: str = TARGET) -> str:
    return f"{target}-{selector}-{budget}-s{seed}"


def add_cell(store: ResultsStore, selector: str, budget: int, seed: int, accuracy: dict[str, float], *,
             target: str = TARGET, status: str = "done", metric: str = "accuracy", higher_is_better: bool = True,
             cost: dict[str, float] | None = None) -> str:
    cid = cell_id(selector, budget, seed, target)
    store.upsert_cell(Cell(cid, "gym", selector, budget, budget / POOL, seed, target, status=status,
                           selected_ids_hash=f"hash-{selector}-{budget}-{seed}",
                           cost=cost if cost is not None else {"proxy_seconds": 10.0, "selection_seconds": 2.0,
                                                               "proxy_flops": 1e12}))
    rows = []
    for task, acc in accuracy.items():
        correct = round(acc * N_EXAMPLES)
        samples = [{"index": i, "prompt": f"q{i}", "output": "", "reference": "",
                    "scores": {metric: float(i < correct)}} for i in range(N_EXAMPLES)]
        rel = store.write_samples(cid, task, samples)
        rows.append(ResultRow(cid, task, metric, correct / N_EXAMPLES, higher_is_better, IN_DOMAIN.get(task),
                              N_EXAMPLES, rel))
    store.add_results(rows)
    return cid


def make_store(folder: Path, *, with_full: bool = True, extra_budget: int | None = None) -> ResultsStore:
    store = ResultsStore(folder)
    for selector, tasks in ACCURACY.items():
        for seed in range(len(tasks["gsm8k"])):
            add_cell(store, selector, BUDGET, seed, {t: v[seed] for t, v in tasks.items()})
    if extra_budget:
        for seed in range(3):
            add_cell(store, "random", extra_budget, seed, {"gsm8k": 0.6, "svamp": 0.4})
            add_cell(store, "s2l", extra_budget, seed, {"gsm8k": 0.8, "svamp": 0.3})
    if with_full:
        add_cell(store, "full", POOL, 0, {"gsm8k": 0.9, "svamp": 0.9}, cost={"finetune_seconds": 99.0})
    return store
