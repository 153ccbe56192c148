"""Gym v2 test sets: 2 in-domain, 5 out-of-domain, each a new combination of skills the pool teaches apart.

- ``ood_phrasing``: addition / subtraction asked in phrasings the pool never uses;
- ``ood_story``: word problems in story templates the pool never uses (their words are in the pre-training
  corpus, as a pre-trained model would know them);
- ``ood_compose``: ``a + b - c`` (the pool has ``a + b + c`` and ``a - b``, never both operations);
- ``ood_words``: arithmetic on numbers written as words (the pool converts words to digits and adds digits,
  never both in one problem);
- ``ood_bignum``: 4-digit addition (the pool stops at 3 digits): length generalization.
"""

from __future__ import annotations

import random

from s2lbench.gym import tasks_v2 as t
from s2lbench.gym.tasks import Problem, random_number
from s2lbench.gym.testsets import NEW_STORIES_ADD, NEW_STORIES_SUB, TestSetSpec, mixture

PHRASINGS_ADD = ("Compute the sum of {a} and {b}.", "Find the total of {a} and {b}.", "Add {b} to {a}.")
PHRASINGS_SUB = ("Take {b} away from {a}.", "Compute the difference of {a} and {b}.", "Find {a} less {b}.")


def ood_phrasing(rng: random.Random, level: int) -> Problem:
    if rng.random() < 0.5:
        return t.arith_add(rng, level, phrases=PHRASINGS_ADD)
    return t.arith_sub(rng, level, phrases=PHRASINGS_SUB)


def ood_story(rng: random.Random, level: int) -> Problem:
    if rng.random() < 0.5:
        return t.word_add(rng, level, stories=NEW_STORIES_ADD)
    return t.word_sub(rng, level, stories=NEW_STORIES_SUB)


def ood_compose(rng: random.Random, level: int) -> Problem:
    a, b = t.operands(rng, max(1, level - 1))
    c = rng.randint(0, a + b)
    return Problem(f"What is {a} + {b} - {c}?", [], str(a + b - c), level)


def ood_words(rng: random.Random, level: int) -> Problem:
    a, b = t.operands(rng, min(level, 2))
    if rng.random() < 0.5:
        return Problem(f"What is {t.number_words(a)} plus {t.number_words(b)}?", [], str(a + b), level)
    a, b = max(a, b), min(a, b)
    return Problem(f"What is {t.number_words(a)} minus {t.number_words(b)}?", [], str(a - b), level)


def ood_bignum(rng: random.Random, level: int) -> Problem:
    a, b = random_number(rng, 4), random_number(rng, rng.randint(3, 4))
    return Problem(f"What is {a} + {b}?", [], str(a + b), 4)


TEST_SETS: tuple[TestSetSpec, ...] = (
    TestSetSpec("gym_arith", True, mixture(t.arith_add, t.arith_sub, t.arith_mul),
                "held-out bare arithmetic (+, -, x one digit) from the pool's templates"),
    TestSetSpec("gym_word", True, mixture(t.word_add, t.word_sub), "held-out word problems from the pool's stories"),
    TestSetSpec("ood_phrasing", False, ood_phrasing, "addition/subtraction in phrasings the pool never uses"),
    TestSetSpec("ood_story", False, ood_story, "word problems with story templates the pool never uses"),
    TestSetSpec("ood_compose", False, ood_compose, "a + b - c: both operations in one problem, never in the pool"),
    TestSetSpec("ood_words", False, ood_words, "arithmetic on numbers written as words"),
    TestSetSpec("ood_bignum", False, ood_bignum, "4-digit addition (the pool stops at 3 digits)"),
)
