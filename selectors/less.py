"""LESS (Xia et al., ICML 2024): select the training examples whose gradients align with a dev set's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from s2lbench import hookimpl
from s2lbench.errors import DataError
from s2lbench.selection import Selection, SelectionContext, Selector
from s2lbench.signals.signalset import CHECKPOINT_LR, DEV_GRADIENTS, DEV_TASKS, GRADIENTS


def less_scores(features: np.ndarray, dev_features: np.ndarray, dev_tasks: np.ndarray, lrs: np.ndarray,
                chunk: int = 65536) -> tuple[np.ndarray, list[str]]:
    """n x tasks influence: sum over checkpoints of (lr / sum lr) x mean over the task's dev rows of
    <train feature, dev feature> -- princeton-nlp/LESS ``matching.py`` (features are unit vectors, so each
    dot product is a cosine). The mean over dev rows is a dot with their mean, computed in chunks of rows."""
    tasks = sorted(set(np.asarray(dev_tasks).tolist()))
    weights = np.asarray(lrs, dtype=np.float64)
    weights = weights / weights.sum()
    n, t, _ = features.shape
    scores = np.zeros((n, len(tasks)), dtype=np.float64)
    for c in range(t):
        dev = np.asarray(dev_features[:, c], dtype=np.float32)
        means = np.stack([dev[np.asarray(dev_tasks) == task].mean(axis=0) for task in tasks], axis=1)
        for start in range(0, n, chunk):
            block = np.asarray(features[start:start + chunk, c], dtype=np.float32)
            scores[start:start + chunk] += weights[c] * (block @ means)
    return scores, tasks


class LESSSelector(Selector):
    """Top ``budget`` by LESS influence, max over tasks.

    Signals (one signal pass with ``gradients`` and a dev set; see docs/signals.md): ``gradients`` (n x T_g x
    dim unit vectors: per-example gradients at T_g proxy checkpoints, Adam-normalised with the checkpoint's
    optimizer moments, Rademacher-projected, L2-normalised), ``dev_gradients`` (the dev set's, plain
    gradients), ``dev_tasks`` and ``checkpoint_lr`` (the learning rate at each checkpoint: LESS's checkpoint
    weights). Influence for a task = sum_c lr_c / sum(lr) x mean over the task's dev examples of the cosine
    similarity at checkpoint c; an example's score is its maximum over tasks (LESS takes the max over a
    benchmark's subtasks; here every evaluation task is one). ``aggregate=mean`` averages over tasks instead.
    """

    name = "less"
    description = "LESS: proxy gradient features most similar to a dev set's (Adam-normalised, projected)"
    requires = (GRADIENTS, DEV_GRADIENTS, DEV_TASKS, CHECKPOINT_LR)

    @dataclass(frozen=True)
    class Options:
        aggregate: Literal["max", "mean"] = field(default="max", metadata={
            "help": "combine the per-task influences by max (LESS) or mean"})

    def select(self, ctx: SelectionContext) -> Selection:
        features = ctx.signals.get(GRADIENTS)
        dev = ctx.signals.get(DEV_GRADIENTS)
        if features.ndim != 3 or dev.ndim != 3 or features.shape[1:] != dev.shape[1:]:
            raise DataError(f"gradient features {features.shape} and dev features {dev.shape} do not match "
                            "(expected n x T x dim and m x T x dim)")
        per_task, tasks = less_scores(features, dev, np.asarray(ctx.signals.get(DEV_TASKS)),
                                      np.asarray(ctx.signals.get(CHECKPOINT_LR)))
        scores = per_task.max(axis=1) if self.options.aggregate == "max" else per_task.mean(axis=1)
        positions = np.argsort(-scores, kind="stable")[: ctx.budget]
        best = np.bincount(per_task[positions].argmax(axis=1), minlength=len(tasks))
        return Selection(positions, {"tasks": tasks, "aggregate": self.options.aggregate,
                                     "checkpoints": int(features.shape[1]), "dim": int(features.shape[2]),
                                     "picks_by_best_task": dict(zip(tasks, best.tolist(), strict=True)),
                                     "picked_score_min": float(scores[positions].min()),
                                     "pool_score_mean": float(scores.mean())})


@hookimpl
def register_selectors(register):
    register(LESSSelector)
