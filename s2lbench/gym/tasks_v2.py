"""Gym v2 task families: worked steps made of small non-negative digit facts, short enough to learn per FLOP.

What changed from v1 (``tasks.py``, kept as it was so v1 stays reproducible):

- subtraction borrows *before* it subtracts (``12-5=7, write 7, borrow 1``): no negative intermediates, so
  every step is a single-digit fact of the kind a pre-trained base already knows;
- a carry of 0 is not written (``4+8=12`` instead of ``4+8+0=12``) and the final line reads the written
  digits back (``Digits 6 3 2.``): fewer tokens per row, and the final answer is a copy, not a recall;
- each in-domain skill the out-of-domain sets compose is taught on its own (a + b, a - b, a + b + c,
  number words, several phrasings and stories), so an out-of-domain set asks for a new *combination*,
  not a skill the pool never shows.

The MathInstruct shape stays: many sources of very different sizes, chain-of-thought and program-of-thought
answers (the PoT rows still carry no worked steps), difficulty levels by operand digits.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from s2lbench.gym.tasks import NAMES, WORDS, Problem, random_number

ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_words(n: int) -> str:
    """English words for 0 <= n < 10000 ("three hundred forty-seven")."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else "-" + ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    rest = n % 1000
    return number_words(n // 1000) + " thousand" + ("" if rest == 0 else " " + number_words(rest))


def addition_steps(a: int, b: int) -> list[str]:
    """Right-to-left digit sums: '7+5=12, write 2, carry 1.'; a zero carry is not written."""
    da, db = str(a)[::-1], str(b)[::-1]
    carry, lines, written = 0, [], []
    for i in range(max(len(da), len(db))):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        s = x + y + carry
        terms = f"{x}+{y}" + (f"+{carry}" if carry else "")
        lines.append(f"{terms}={s}, write {s % 10}" + (", carry 1." if s >= 10 else "."))
        written.append(s % 10)
        carry = s // 10
    if carry:
        lines.append("write 1.")
        written.append(1)
    lines.append("Digits " + " ".join(str(d) for d in reversed(written)) + ".")
    return lines


def subtraction_steps(a: int, b: int) -> list[str]:
    """Right-to-left differences for a >= b, borrowing before subtracting: every fact is non-negative."""
    da, db = str(a)[::-1], str(b)[::-1]
    borrow, lines, written = 0, [], []
    for i in range(len(da)):
        digit, y = int(da[i]), int(db[i]) if i < len(db) else 0
        pre, x, out = "", digit, 0
        if borrow and digit == 0:  # borrow through a zero: it becomes 10 - 1 = 9 and passes the borrow on
            pre, x, out = "10-1=9, ", 9, 1
        elif borrow:
            pre, x = f"{digit}-1={digit - 1}, ", digit - 1
        if x < y:
            lines.append(f"{pre}{x + 10}-{y}={x + 10 - y}, write {x + 10 - y}, borrow 1.")
            written.append(x + 10 - y)
            out = 1
        else:
            lines.append(f"{pre}{x}-{y}={x - y}, write {x - y}" + (", borrow 1." if out else "."))
            written.append(x - y)
        borrow = out
    while len(written) > 1 and written[-1] == 0:
        written.pop()
    lines.append("Digits " + " ".join(str(d) for d in reversed(written)) + ".")
    return lines


def multiplication_steps(a: int, m: int) -> list[str]:
    carry, lines, written = 0, [], []
    for ch in str(a)[::-1]:
        p = int(ch) * m + carry
        terms = f"{ch}*{m}" + (f"+{carry}" if carry else "")
        lines.append(f"{terms}={p}, write {p % 10}" + (f", carry {p // 10}." if p >= 10 else "."))
        written.append(p % 10)
        carry = p // 10
    if carry:
        lines.append(f"write {carry}.")
        written.append(carry)
    lines.append("Digits " + " ".join(str(d) for d in reversed(written)) + ".")
    return lines


def operands(rng: random.Random, level: int) -> tuple[int, int]:
    return random_number(rng, level), random_number(rng, rng.randint(max(1, level - 1), level))


ADD_PHRASES = ("What is {a} + {b}?", "What is {a} plus {b}?")
SUB_PHRASES = ("What is {a} - {b}?", "What is {a} minus {b}?")


def arith_add(rng: random.Random, level: int, phrases: tuple[str, ...] = ADD_PHRASES) -> Problem:
    a, b = operands(rng, level)
    return Problem(rng.choice(phrases).format(a=a, b=b), [f"Add {a} and {b}.", *addition_steps(a, b)],
                   str(a + b), level)


def arith_sub(rng: random.Random, level: int, phrases: tuple[str, ...] = SUB_PHRASES) -> Problem:
    a, b = sorted(operands(rng, level), reverse=True)
    return Problem(rng.choice(phrases).format(a=a, b=b), [f"Subtract {b} from {a}.", *subtraction_steps(a, b)],
                   str(a - b), level)


def arith_mul(rng: random.Random, level: int) -> Problem:
    a, m = random_number(rng, max(1, level - 1)), rng.randint(2, 9)
    return Problem(f"What is {a} * {m}?", [f"Multiply {a} by {m}.", *multiplication_steps(a, m)], str(a * m), level)


ITEMS = ("apples", "books", "coins", "pens", "cards", "stones", "shells", "stamps", "cups", "balls")
STORIES_ADD = (
    "{n} has {a} {item}. {n} gets {b} more {item}. How many {item} does {n} have now?",
    "A box holds {a} {item}. Someone puts in {b} more {item}. How many {item} are in the box?",
    "{n} finds {a} {item} and then {b} {item}. How many {item} did {n} find?",
)
STORIES_SUB = (
    "{n} has {a} {item}. {n} gives away {b} {item}. How many {item} does {n} have left?",
    "A shelf holds {a} {item}. {b} {item} are taken away. How many {item} remain?",
    "{n} had {a} {item} and lost {b} of them. How many {item} does {n} have?",
)


def _story(rng: random.Random, templates: tuple[str, ...], a: int, b: int) -> str:
    return rng.choice(templates).format(n=rng.choice(NAMES), item=rng.choice(ITEMS), a=a, b=b)


def word_add(rng: random.Random, level: int, stories: tuple[str, ...] = STORIES_ADD) -> Problem:
    a, b = operands(rng, level)
    return Problem(_story(rng, stories, a, b), [f"Add {a} and {b}.", *addition_steps(a, b)], str(a + b), level)


def word_sub(rng: random.Random, level: int, stories: tuple[str, ...] = STORIES_SUB) -> Problem:
    a, b = sorted(operands(rng, level), reverse=True)
    return Problem(_story(rng, stories, a, b), [f"Subtract {b} from {a}.", *subtraction_steps(a, b)],
                   str(a - b), level)


def add_program(rng: random.Random, level: int) -> Problem:
    """Program of thought, as in v1: no worked steps, only the printed value."""
    a, b = operands(rng, level)
    steps = ["```python", f"a = {a}", f"b = {b}", "print(a + b)", "```", f"The program prints {a + b}."]
    return Problem(f"Write a program to compute {a} + {b}.", steps, str(a + b), level)


def sub_program(rng: random.Random, level: int) -> Problem:
    a, b = sorted(operands(rng, level), reverse=True)
    steps = ["```python", f"a = {a}", f"b = {b}", "print(a - b)", "```", f"The program prints {a - b}."]
    return Problem(f"Write a program to compute {a} - {b}.", steps, str(a - b), level)


def sum_three(rng: random.Random, level: int) -> Problem:
    a, b, c = (random_number(rng, max(1, level - 1)) for _ in range(3))
    steps = [f"Add {a} and {b}.", *addition_steps(a, b), f"Add {a + b} and {c}.", *addition_steps(a + b, c)]
    return Problem(f"What is {a} + {b} + {c}?", steps, str(a + b + c), level)


def words_to_digits(rng: random.Random, level: int) -> Problem:
    n = random_number(rng, level)
    return Problem(f"Write {number_words(n)} in digits.", [f"{number_words(n)} is {n}."], str(n), level)


def compare(rng: random.Random, level: int) -> Problem:
    a, b = random_number(rng, level), random_number(rng, level)
    while b == a:
        b = random_number(rng, level)
    steps = []
    for place, (x, y) in enumerate(zip(str(a).zfill(level), str(b).zfill(level), strict=True)):
        sign = "=" if x == y else ("<" if x < y else ">")
        steps.append(f"Digit {place + 1}: {x} {sign} {y}.")
        if sign != "=":
            break
    steps.append(f"So {max(a, b)} is larger.")
    return Problem(f"Which is larger, {a} or {b}?", steps, str(max(a, b)), level)


def count_letters(rng: random.Random, level: int) -> Problem:
    word = rng.choice(WORDS) + ("" if level < 2 else rng.choice(WORDS)[: level + 1])
    steps = [" ".join(f"{ch}({i + 1})" for i, ch in enumerate(word)) + "."]
    return Problem(f"How many letters are in the word '{word}'?", steps, str(len(word)), level)


#: source name -> (generator, share). Largest / smallest = 14x; CoT arithmetic first, then stories, PoT, others.
SOURCES: dict[str, tuple[Callable[[random.Random, int], Problem], float]] = {
    "arith_add_cot": (arith_add, 0.22),
    "arith_sub_cot": (arith_sub, 0.16),
    "word_add_cot": (word_add, 0.12),
    "word_sub_cot": (word_sub, 0.10),
    "add_pot": (add_program, 0.08),
    "arith_mul_cot": (arith_mul, 0.08),
    "sum_three_cot": (sum_three, 0.07),
    "compare_cot": (compare, 0.05),
    "sub_pot": (sub_program, 0.04),
    "number_words": (words_to_digits, 0.04),
    "count_cot": (count_letters, 0.016),
}
