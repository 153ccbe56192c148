"""The gym's task families: each draws one clean (instruction, worked answer, final answer) triple.

Answers spell out digit-level steps (chain of thought) because the granularity of the steps decides what
tiny models can learn: a 0.8M-parameter GPT-NeoX learns 3-digit addition from per-digit steps but not from
"a + b = c" alone. The program-of-thought family deliberately gives no steps, like MathInstruct's PoT rows
whose programs a small model cannot execute in its head.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    instruction: str
    steps: list[str]  # worked lines before the final line
    answer: str
    difficulty: int


def _digits_for(level: int) -> int:
    return {1: 1, 2: 2, 3: 3}.get(level, level)


def random_number(rng: random.Random, n_digits: int) -> int:
    if n_digits <= 1:
        return rng.randint(0, 9)
    return rng.randint(10 ** (n_digits - 1), 10**n_digits - 1)


def addition_steps(a: int, b: int) -> list[str]:
    """Right-to-left digit sums with carries: '7+5+0=12, write 2 carry 1.'"""
    da, db = str(a)[::-1], str(b)[::-1]
    carry, lines = 0, []
    for i in range(max(len(da), len(db))):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        s = x + y + carry
        lines.append(f"{x}+{y}+{carry}={s}, write {s % 10} carry {s // 10}.")
        carry = s // 10
    if carry:
        lines.append(f"write {carry}.")
    return lines


def subtraction_steps(a: int, b: int) -> list[str]:
    """Right-to-left digit differences with borrows, for a >= b."""
    da, db = str(a)[::-1], str(b)[::-1]
    borrow, lines = 0, []
    for i in range(len(da)):
        x = int(da[i])
        y = int(db[i]) if i < len(db) else 0
        d = x - y - borrow
        new_borrow = 1 if d < 0 else 0
        lines.append(f"{x}-{y}-{borrow}={d}, write {d + 10 * new_borrow} borrow {new_borrow}.")
        borrow = new_borrow
    return lines


def multiplication_steps(a: int, m: int) -> list[str]:
    """Multi-digit times one digit, right to left with carries."""
    carry, lines = 0, []
    for ch in str(a)[::-1]:
        p = int(ch) * m + carry
        lines.append(f"{ch}*{m}+{carry}={p}, write {p % 10} carry {p // 10}.")
        carry = p // 10
    if carry:
        lines.append(f"write {carry}.")
    return lines


def operands(rng: random.Random, level: int) -> tuple[int, int]:
    n = _digits_for(level)
    return random_number(rng, n), random_number(rng, rng.randint(max(1, n - 1), n))


def arith_add(rng: random.Random, level: int) -> Problem:
    a, b = operands(rng, level)
    steps = ["Add digit by digit from the right.", *addition_steps(a, b), f"So {a} + {b} = {a + b}."]
    return Problem(f"What is {a} + {b}?", steps, str(a + b), level)


def arith_sub(rng: random.Random, level: int) -> Problem:
    a, b = operands(rng, level)
    a, b = max(a, b), min(a, b)
    steps = ["Subtract digit by digit from the right.", *subtraction_steps(a, b), f"So {a} - {b} = {a - b}."]
    return Problem(f"What is {a} - {b}?", steps, str(a - b), level)


def arith_mul(rng: random.Random, level: int) -> Problem:
    a, m = random_number(rng, max(1, _digits_for(level) - 1) + 1), rng.randint(2, 9)
    steps = ["Multiply digit by digit from the right.", *multiplication_steps(a, m), f"So {a} * {m} = {a * m}."]
    return Problem(f"What is {a} * {m}?", steps, str(a * m), level)


NAMES = ("Tom", "Mia", "Sam", "Ana", "Leo", "Zoe", "Ben", "Ivy")
ITEMS = ("apples", "books", "coins", "pens", "cards", "stones", "shells", "stamps")
STORIES_ADD = (
    "{n} has {a} {item}. {n} gets {b} more {item}. How many {item} does {n} have now?",
    "A box holds {a} {item}. Someone puts in {b} more {item}. How many {item} are in the box?",
)
STORIES_SUB = (
    "{n} has {a} {item}. {n} gives away {b} {item}. How many {item} does {n} have left?",
    "A shelf holds {a} {item}. {b} {item} are taken away. How many {item} remain?",
)


def word_add(rng: random.Random, level: int, stories: tuple[str, ...] = STORIES_ADD) -> Problem:
    a, b = operands(rng, level)
    text = rng.choice(stories).format(n=rng.choice(NAMES), item=rng.choice(ITEMS), a=a, b=b)
    steps = [f"We add {a} and {b}.", *addition_steps(a, b), f"So {a} + {b} = {a + b}."]
    return Problem(text, steps, str(a + b), level)


def word_sub(rng: random.Random, level: int, stories: tuple[str, ...] = STORIES_SUB) -> Problem:
    a, b = operands(rng, level)
    a, b = max(a, b), min(a, b)
    text = rng.choice(stories).format(n=rng.choice(NAMES), item=rng.choice(ITEMS), a=a, b=b)
    steps = [f"We subtract {b} from {a}.", *subtraction_steps(a, b), f"So {a} - {b} = {a - b}."]
    return Problem(text, steps, str(a - b), level)


def add_program(rng: random.Random, level: int) -> Problem:
    """Program of thought: the program carries no worked steps, only the final printed value."""
    a, b = operands(rng, level)
    steps = ["```python", f"a = {a}", f"b = {b}", "print(a + b)", "```", f"The program prints {a + b}."]
    return Problem(f"Write a program to compute {a} + {b}.", steps, str(a + b), level)


def compare(rng: random.Random, level: int) -> Problem:
    n = _digits_for(level)
    a, b = random_number(rng, n), random_number(rng, n)
    while b == a:
        b = random_number(rng, n)
    steps = []
    for place, (x, y) in enumerate(zip(str(a).zfill(n), str(b).zfill(n), strict=True)):
        sign = "=" if x == y else ("<" if x < y else ">")
        steps.append(f"Digit {place + 1}: {x} {sign} {y}.")
        if sign != "=":
            break
    bigger = max(a, b)
    steps.append(f"So {bigger} is larger.")
    return Problem(f"Which is larger, {a} or {b}?", steps, str(bigger), level)


WORDS = ("apple", "banana", "cherry", "grape", "lemon", "mango", "melon", "peach", "plum", "kiwi",
         "orange", "papaya", "guava", "lime", "berry", "date", "fig", "olive", "pear", "quince")


def count_letters(rng: random.Random, level: int) -> Problem:
    word = rng.choice(WORDS) + ("" if level < 2 else rng.choice(WORDS)[: level + 1])
    steps = [" ".join(f"{ch}({i + 1})" for i, ch in enumerate(word)) + "."]
    return Problem(f"How many letters are in the word '{word}'?", steps, str(len(word)), level)


def sum_three(rng: random.Random, level: int) -> Problem:
    n = max(1, _digits_for(level) - 1)
    a, b, c = (random_number(rng, n) for _ in range(3))
    steps = [f"First {a} + {b}.", *addition_steps(a, b), f"So {a} + {b} = {a + b}.",
             f"Then {a + b} + {c}.", *addition_steps(a + b, c), f"So {a + b} + {c} = {a + b + c}."]
    return Problem(f"What is {a} + {b} + {c}?", steps, str(a + b + c), level)


#: source name -> (generator, share of the pool). Shares mimic MathInstruct's skew: the largest source is
#: more than 10x the smallest; two thirds chain-of-thought arithmetic, the rest word problems, PoT, and others.
SOURCES: dict[str, tuple[Callable[[random.Random, int], Problem], float]] = {
    "arith_add_cot": (arith_add, 0.28),
    "arith_sub_cot": (arith_sub, 0.14),
    "word_add_cot": (word_add, 0.14),
    "add_pot": (add_program, 0.12),
    "word_sub_cot": (word_sub, 0.09),
    "arith_mul_cot": (arith_mul, 0.09),
    "compare_cot": (compare, 0.06),
    "sum_three_cot": (sum_three, 0.05),
    "count_cot": (count_letters, 0.025),
}


def render_answer(problem: Problem) -> str:
    return "\n".join([*problem.steps, f"The answer is {problem.answer}."])
