"""Reference rows: answers computed from the training pool without training a model, scored by each task's own
evaluator, so a board shows what a trained model must beat.

A config asks for them by name (``references: [constant, nearest-copy]``); each becomes a row ``ref-NAME`` of
every target's tables, computed once per run (no seeds: the answers are deterministic).

- ``constant``: every test item answered with the pool's most frequent output (ties: the first in pool order).
  On data where one answer dominates (normal radiology impressions) this is a strong floor.
- ``nearest-copy``: each test item answered with the output of the pool example whose prompt (instruction and
  input) shares the most distinct words with the item's (ties: the first in pool order); a retrieval floor.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

from s2lbench.evaluation.evaluator import EvalItem
from s2lbench.pool.records import Pool

#: the row a reference is shown as (selectors may not use the prefix; see ``is_reference_row``)
REFERENCE_PREFIX = "ref-"
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> set[str]:
    """Distinct lower-cased words (letters and digits) of a text."""
    return set(_WORD.findall(text.lower()))


def most_frequent_output(pool: Pool, items: Sequence[EvalItem]) -> list[str]:
    counts = Counter(ex.output for ex in pool)
    top = max(counts.values())
    answer = next(ex.output for ex in pool if counts[ex.output] == top)  # first in pool order among the tied
    return [answer] * len(items)


def nearest_input_copy(pool: Pool, items: Sequence[EvalItem]) -> list[str]:
    examples = list(pool)
    index: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        for word in words(f"{ex.instruction} {ex.input}"):
            index.setdefault(word, []).append(i)
    outputs = []
    for item in items:
        shared: Counter[int] = Counter()
        for word in words(f"{item.instruction} {item.input}"):
            shared.update(index.get(word, ()))
        best = max(shared.values(), default=0)
        nearest = min((i for i, n in shared.items() if n == best), default=0)
        outputs.append(examples[nearest].output)
    return outputs


REFERENCES: dict[str, Callable[[Pool, Sequence[EvalItem]], list[str]]] = {
    "constant": most_frequent_output,
    "nearest-copy": nearest_input_copy,
}


def is_untrained_reference(row: str) -> bool:
    """A row computed without training (``ref-NAME``)."""
    return row.startswith(REFERENCE_PREFIX)


def reference_row(name: str) -> str:
    return REFERENCE_PREFIX + name


def reference_outputs(name: str, pool: Pool, items: Sequence[EvalItem]) -> list[str]:
    if len(pool) == 0:
        raise ValueError(f"reference {name!r}: the pool is empty")
    return REFERENCES[name](pool, items)
