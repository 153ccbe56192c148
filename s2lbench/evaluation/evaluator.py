"""The evaluator contract: a task that loads its test items, builds prompts, scores outputs, aggregates.

Metrics declare ``higher_is_better`` (what a leaderboard needs to bold the best) and how they aggregate:
``mean`` over per-example scores, or ``corpus`` where the evaluator computes the figure from all samples
at once (BLEU). Results always carry the per-example samples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from s2lbench.pool.prompts import render_prompt


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool = True
    aggregation: Literal["mean", "corpus"] = "mean"
    description: str = ""


@dataclass(frozen=True)
class EvalItem:
    """One test example: the prompt fields, the gold reference, anything else the grader needs."""

    index: int
    instruction: str
    reference: Any
    input: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class SampleResult:
    index: int
    prompt: str
    output: str
    reference: Any
    scores: dict[str, float]
    extracted: Any = None
    #: the second attempt's output where the evaluator asked for one (hybrid decoding) and graded it
    backup_output: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Evaluator:
    """Base class for evaluation tasks. Subclass, set the class attributes, implement ``load`` and ``score``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    metrics: ClassVar[tuple[Metric, ...]] = ()
    template: ClassVar[str] = "alpaca"
    max_new_tokens: ClassVar[int] = 512
    stop: ClassVar[tuple[str, ...]] = ()

    @dataclass(frozen=True)
    class Options:
        pass

    def __init__(self, options: Any = None):
        self.options = options if options is not None else self.Options()

    def load(self, data_dir: Path) -> list[EvalItem]:
        raise NotImplementedError

    def prompt(self, item: EvalItem) -> str:
        return render_prompt(self.template, instruction=item.instruction, input=item.input)

    def score(self, item: EvalItem, output: str) -> SampleResult:
        raise NotImplementedError

    def backup_prompt(self, item: EvalItem, output: str) -> str | None:
        """A second attempt's prompt when the first output needs one (hybrid decoding), else None."""
        return None

    def aggregate(self, samples: Sequence[SampleResult]) -> dict[str, float]:
        """Mean of each ``mean`` metric; override for ``corpus`` metrics."""
        out: dict[str, float] = {}
        for metric in self.metrics:
            if metric.aggregation == "mean":
                values = [s.scores[metric.name] for s in samples if metric.name in s.scores]
                out[metric.name] = sum(values) / len(values) if values else float("nan")
        return out

    def evaluate(self, items: Sequence[EvalItem], outputs: Sequence[str],
                 backups: dict[int, str] | None = None) -> tuple[dict[str, float], list[SampleResult]]:
        """Score every output; ``backups`` maps a position in ``items`` to its second attempt's output."""
        if len(items) != len(outputs):
            raise ValueError(f"{self.name}: {len(items)} items but {len(outputs)} outputs")
        samples = [self.score(item, out, backups[i]) if backups and i in backups else self.score(item, out)
                   for i, (item, out) in enumerate(zip(items, outputs, strict=True))]
        return self.aggregate(samples), samples

    @classmethod
    def metric(cls, name: str) -> Metric:
        for m in cls.metrics:
            if m.name == name:
                return m
        raise KeyError(f"{cls.name} has no metric {name!r}")


ACCURACY = Metric("accuracy", higher_is_better=True, aggregation="mean",
                  description="exact match of the extracted final answer")
