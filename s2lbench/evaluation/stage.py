"""Evaluation of one fine-tuned model: for each task, generate (cached, with the evaluator's backup pass
where it asks for one), then score every sample and aggregate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import s2lbench.generation as generation
from s2lbench.common.typed import from_dict
from s2lbench.evaluation.evaluator import Evaluator, SampleResult
from s2lbench.generation.hybrid import generate_with_backup


@dataclass(frozen=True)
class TaskPlan:
    """One test set of the run: its configured evaluator, where it reads its data, and whether it is
    in-domain (None: undeclared)."""

    name: str
    evaluator: Evaluator
    data_dir: Path
    in_domain: bool | None


@dataclass(frozen=True)
class TaskResult:
    plan: TaskPlan
    n_items: int
    aggregate: dict[str, float]
    samples: list[SampleResult]


def evaluate_task(model_dir: Path, plan: TaskPlan, generations_dir: Path, *, limit: int | None = None,
                  decoding: dict[str, Any] | None = None) -> TaskResult:
    """``decoding``: the run's generation settings, over the evaluator's own max_new_tokens and stop strings."""
    evaluator = plan.evaluator
    items = evaluator.load(plan.data_dir)
    if limit:
        items = items[:limit]
    gen = {"max_new_tokens": evaluator.max_new_tokens, "stop": list(evaluator.stop), **(decoding or {})}
    gen_config = from_dict(generation.GenerationConfig, gen, where="evaluation.generation")

    def run_pass(prompts: list[str], variant: str) -> list[str]:
        # through the module: a test (or a user) may swap the cache for a fake
        return generation.cached_generate(model_dir, plan.name, prompts, gen_config, generations_dir, variant)

    outputs, backups = generate_with_backup(evaluator, items, run_pass)
    # evaluators that override evaluate() without a backups argument never ask for a backup
    aggregate, samples = evaluator.evaluate(items, outputs, backups) if backups else evaluator.evaluate(items, outputs)
    return TaskResult(plan, len(items), aggregate, list(samples))
