"""The gym's six-set test protocol: 2 in-domain sets and 4 out-of-domain sets, graded by exact final answer.

In-domain sets draw from the pool's own clean generators (held out, deduplicated against the pool, like
GSM8K/MATH test splits against MathInstruct). Out-of-domain sets change what a model must generalize over:
larger numbers, a composition of operations, new phrasing, and new word-problem stories.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from s2lbench.gym import tasks
from s2lbench.gym.tasks import Problem


def ood_bignum(rng: random.Random, level: int) -> Problem:
    a, b = tasks.random_number(rng, 4), tasks.random_number(rng, rng.randint(3, 4))
    return Problem(f"What is {a} + {b}?", [], str(a + b), 4)


def ood_compose(rng: random.Random, level: int) -> Problem:
    a, b = tasks.operands(rng, level)
    c = rng.randint(0, a + b)
    return Problem(f"What is {a} + {b} - {c}?", [], str(a + b - c), level)


PHRASINGS = ("Compute the sum of {a} and {b}.", "Add {a} and {b}.", "Find {a} plus {b}.",
             "Calculate the difference {a} minus {b}.", "Take {b} away from {a}.")


def ood_phrasing(rng: random.Random, level: int) -> Problem:
    a, b = tasks.operands(rng, level)
    a, b = max(a, b), min(a, b)
    template = rng.choice(PHRASINGS)
    answer = a + b if template in PHRASINGS[:3] else a - b
    return Problem(template.format(a=a, b=b), [], str(answer), level)


NEW_STORIES_ADD = ("A train carries {a} people. At the next stop {b} more people get on. "
                   "How many people are on the train?",
                   "A farm has {a} cows and {b} sheep. How many animals does the farm have?")
NEW_STORIES_SUB = ("A tank holds {a} liters of water. {b} liters leak out. How many liters are left?",
                   "A shop had {a} shirts and sold {b} of them. How many shirts are unsold?")


def ood_story(rng: random.Random, level: int) -> Problem:
    if rng.random() < 0.5:
        return tasks.word_add(rng, level, stories=NEW_STORIES_ADD)
    return tasks.word_sub(rng, level, stories=NEW_STORIES_SUB)


def mixture(*generators: Callable[[random.Random, int], Problem]) -> Callable[[random.Random, int], Problem]:
    def draw(rng: random.Random, level: int) -> Problem:
        return rng.choice(generators)(rng, level)
    return draw


@dataclass(frozen=True)
class TestSetSpec:
    name: str
    in_domain: bool
    generator: Callable[[random.Random, int], Problem]
    description: str


TEST_SETS: tuple[TestSetSpec, ...] = (
    TestSetSpec("gym_arith", True, mixture(tasks.arith_add, tasks.arith_sub, tasks.arith_mul),
                "held-out bare arithmetic (addition, subtraction, multiplication) from the pool's templates"),
    TestSetSpec("gym_word", True, mixture(tasks.word_add, tasks.word_sub),
                "held-out word problems from the pool's story templates"),
    TestSetSpec("ood_bignum", False, ood_bignum, "4-digit addition (the pool stops at 3 digits)"),
    TestSetSpec("ood_compose", False, ood_compose, "a + b - c: a composition the pool never shows"),
    TestSetSpec("ood_phrasing", False, ood_phrasing, "addition/subtraction asked in phrasings the pool never uses"),
    TestSetSpec("ood_story", False, ood_story, "word problems with story templates the pool never uses"),
)
