"""RDS+ (Ivison et al., 2025, "Large-Scale Data Selection for Instruction Tuning"): representation similarity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from s2lbench import hookimpl
from s2lbench.selection import Selection, SelectionContext, Selector
from s2lbench.signals.signalset import DEV_EMBEDDING, DEV_TASKS, PROXY_EMBEDDING


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.nan_to_num(np.asarray(x, dtype=np.float32))
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def task_similarities(pool: np.ndarray, dev: np.ndarray, dev_tasks: np.ndarray, aggregate: str = "max",
                      chunk: int = 65536) -> tuple[np.ndarray, list[str]]:
    """n x tasks: cosine similarity of each pool row to each task's dev rows, max (or mean) over those rows."""
    tasks = sorted(set(np.asarray(dev_tasks).tolist()))
    dev = _unit(dev)
    labels = np.asarray(dev_tasks)
    out = np.zeros((pool.shape[0], len(tasks)), dtype=np.float32)
    for start in range(0, pool.shape[0], chunk):
        sims = _unit(pool[start:start + chunk]) @ dev.T
        for k, task in enumerate(tasks):
            part = sims[:, labels == task]
            out[start:start + chunk, k] = part.max(axis=1) if aggregate == "max" else part.mean(axis=1)
    return out, tasks


def round_robin(scores: np.ndarray, budget: int) -> np.ndarray:
    """Tasks take turns (in column order), each taking its highest-scoring example not yet taken."""
    n, k = scores.shape
    orders = [np.argsort(-scores[:, t], kind="stable") for t in range(k)]
    cursor = [0] * k
    taken = np.zeros(n, dtype=bool)
    out: list[int] = []
    while len(out) < budget:
        t = len(out) % k if k else 0
        order = orders[t]
        while taken[order[cursor[t]]]:
            cursor[t] += 1
        j = int(order[cursor[t]])
        taken[j] = True
        out.append(j)
    return np.asarray(out, dtype=np.int64)


class RDSSelector(Selector):
    """RDS+: the pool examples most similar to the dev set in the proxy's representation space, round-robin.

    Signals: ``proxy_embedding`` (mean-pooled last hidden state of the proxy at its last checkpoint) and
    ``dev_embedding`` / ``dev_tasks`` (the dev set's, from the same pass). Each pool example's score for a
    task is its highest cosine similarity to that task's dev examples (``aggregate=mean``: the average);
    tasks then take turns picking their best remaining example until the budget is met, as RDS+ does for
    multi-task selection. Deviation: RDS+ pools with position-weighted means over a pretrained LM's hidden
    states; s2lbench's ``proxy_embedding`` is an unweighted mean over the trained proxy's tokens.
    """

    name = "rds"
    description = "RDS+: cosine similarity of proxy hidden states to the dev set's, round-robin over tasks"
    requires = (PROXY_EMBEDDING, DEV_EMBEDDING, DEV_TASKS)

    @dataclass(frozen=True)
    class Options:
        aggregate: Literal["max", "mean"] = field(default="max", metadata={
            "help": "a pool example's similarity to a task: max (default) or mean over the task's dev rows"})

    def select(self, ctx: SelectionContext) -> Selection:
        pool = np.asarray(ctx.signals.get(PROXY_EMBEDDING)).reshape(len(ctx.pool), -1)
        scores, tasks = task_similarities(pool, np.asarray(ctx.signals.get(DEV_EMBEDDING)),
                                          np.asarray(ctx.signals.get(DEV_TASKS)), self.options.aggregate)
        positions = round_robin(scores, ctx.budget)
        return Selection(positions, {"tasks": tasks, "aggregate": self.options.aggregate,
                                     "picked_similarity_mean": {t: float(scores[positions, k].mean())
                                                                for k, t in enumerate(tasks)},
                                     "pool_similarity_mean": {t: float(scores[:, k].mean())
                                                              for k, t in enumerate(tasks)}})


@hookimpl
def register_selectors(register):
    register(RDSSelector)
