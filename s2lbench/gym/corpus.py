"""The gym's pre-training corpus: what a pre-trained LM knows before SFT, generated in code.

Numbers and their words (up to the out-of-domain sets' 4 digits), digits by place, counting, successors, single-digit
arithmetic facts in plain notation and in words (and, with ``compact_facts``, in compact notation too: ``9+4=13.``,
``7+3+1=11.``, as arithmetic is usually written), comparisons, plain sentences in the stories' vocabulary
(the pool's and the unseen stories' nouns and verbs), and short code. It never uses the pool's instruction
templates ("What is ...?", the story templates), its worked-step formats ("7+5=12, write 2, carry 1.",
"Digits ...", "The answer is ...") or its program-of-thought layout; ``tests/test_gym_corpus.py`` checks
that, and that no test or dev instruction occurs in it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from s2lbench.errors import ConfigError
from s2lbench.gym.tasks import NAMES, WORDS
from s2lbench.gym.tasks_v2 import ITEMS, number_words

#: nouns of the stories the pool never uses (testsets_v2): a pre-trained model knows these words
WORLD_NOUNS = ("train", "farm", "tank", "shop", "stop", "box", "shelf", "table", "road", "house", "garden")
WORLD_ITEMS = ("people", "cows", "sheep", "animals", "liters", "shirts", "birds", "trees", "cars", "hats")
VERBS = ("sees", "buys", "sells", "carries", "finds", "counts", "keeps", "gets", "gives away", "loses", "takes")
PLACES = ("at the farm", "in the shop", "on the train", "near the tank", "in the garden", "by the road",
          "in the box", "on the shelf")
WORD_OPS = {"+": ("plus", "and", "added to"), "-": ("minus", "take away", "less"), "*": ("times",)}


@dataclass(frozen=True)
class CorpusConfig:
    documents: int = 6000
    #: sentences per document (a document is one training text; documents are packed into blocks)
    min_lines: int = 4
    max_lines: int = 10
    seed: int = 0
    #: also write the single-digit facts in compact notation (``9+4=13.``, ``17-8=9.``, ``6*7=42.``) and sums of two
    #: digits plus one (``7+3+1=11.``). The worked steps compose exactly these facts; a base that saw them only
    #: spaced (``9 + 4 = 13.``: other tokens) knew ~90 % of them that way and none compactly, so SFT had to learn
    #: them again (docs/gym.md, "The compact-facts corpus"). Off by default: every earlier base keeps its recipe.
    compact_facts: bool = False

    def __post_init__(self):
        if self.documents < 1 or not 1 <= self.min_lines <= self.max_lines:
            raise ConfigError(f"corpus: documents {self.documents} and lines {self.min_lines}-{self.max_lines} "
                              "must be positive and ordered")


def _num(rng: random.Random) -> int:
    digits = rng.choices((1, 2, 3, 4), weights=(0.2, 0.35, 0.3, 0.15))[0]
    return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)


def _number_word(rng: random.Random) -> str:
    n = _num(rng)
    return rng.choice((f"{n} is {number_words(n)}.", f"{number_words(n)} is written {n}.",
                       f"The number {number_words(n)} has {len(str(n))} digits."))


PLACE_NAMES = ("ones", "tens", "hundreds", "thousands")


def _digits(rng: random.Random) -> str:
    """Digits by place (what copying a number digit by digit rests on), in plain sentences."""
    n = _num(rng)
    text = str(n)
    place = rng.randrange(len(text))
    return rng.choice((
        f"The last digit of {n} is {text[-1]}.",
        f"The digits of {n} are {', '.join(text)}." if len(text) > 1 else f"{n} has one digit.",
        f"In {n} the {PLACE_NAMES[place]} digit is {text[::-1][place]}.",
        f"{n} again is {n}.",
    ))


def _counting(rng: random.Random) -> str:
    n = _num(rng)
    k = rng.randint(3, 6)
    return rng.choice((", ".join(str(n + i) for i in range(k)) + ".", f"After {n} comes {n + 1}.",
                       f"Before {n + 1} comes {n}.", ", ".join(number_words(min(n, 99) + i) for i in range(k)) + "."))


def _digit_fact(rng: random.Random, ops: str) -> tuple[int, str, int, int]:
    """(x, op, y, value) of a single-digit fact, op drawn from ``ops``; a difference is the inverse of a sum fact
    (0-18 minus 0-9, never negative: what a borrow step needs)."""
    op = rng.choice(ops)
    x, y = rng.randint(0, 9), rng.randint(0, 9)
    if op == "-":
        x = x + y
    return x, op, y, {"+": x + y, "-": x - y, "*": x * y}[op]


def _fact(rng: random.Random) -> str:
    x, op, y, value = _digit_fact(rng, "++--*")
    if rng.random() < 0.5:
        return rng.choice((f"{x} {op} {y} = {value}.", f"{x} {rng.choice(WORD_OPS[op])} {y} is {value}."))
    return f"{number_words(x)} {rng.choice(WORD_OPS[op])} {number_words(y)} is {number_words(value)}."


def _compact_fact(rng: random.Random) -> str:
    """A single-digit fact in compact notation, or a sum of two digits plus one; a line of its own, never
    followed by the worked steps' ``, write`` (tests/test_gym_v2.py checks the corpus for those)."""
    x, op, y, value = _digit_fact(rng, "+++--*")
    if op == "+" and rng.random() < 1 / 3:
        return f"{x}+{y}+1={value + 1}."
    return f"{x}{op}{y}={value}."


def _comparison(rng: random.Random) -> str:
    a, b = _num(rng), _num(rng)
    if a == b:
        return f"{a} is equal to {b}."
    big, small = max(a, b), min(a, b)
    return rng.choice((f"{big} is more than {small}.", f"{small} is less than {big}.", f"{big} > {small}.",
                       f"The larger of {small} and {big} is {big}."))


def _sentence(rng: random.Random) -> str:
    who = rng.choice(NAMES + ("A man", "A girl", "The farmer", "The driver"))
    thing = rng.choice(ITEMS + WORLD_ITEMS)
    count = rng.choice((str(rng.randint(2, 60)), number_words(rng.randint(2, 20)), "some", "many", "a few"))
    return rng.choice((
        f"{who} {rng.choice(VERBS)} {count} {thing} {rng.choice(PLACES)}.",
        f"There are {count} {thing} {rng.choice(PLACES)}.",
        f"The {rng.choice(WORLD_NOUNS)} has {count} {thing}.",
        f"{who} likes {rng.choice(WORDS)}s and {thing}.",
        f"{who} went to the {rng.choice(WORLD_NOUNS)} with {count} {thing}.",
    ))


def _code(rng: random.Random) -> str:
    x, y = rng.randint(0, 99), rng.randint(0, 99)
    name = rng.choice(("total", "count", "n", "x", "items", "price"))
    return rng.choice((
        f"{name} = {x}\n{name} = {name} + {y}\n# {name} is now {x + y}",
        f"def double({name}):\n    return 2 * {name}\n# double({x}) is {2 * x}",
        f"for i in range({rng.randint(2, 5)}):\n    {name} = {name} + 1",
        f"if {x} > {y}:\n    {name} = {x}\nelse:\n    {name} = {y}\n# {name} is {max(x, y)}",
    ))


KINDS = ((_number_word, 0.15), (_digits, 0.15), (_counting, 0.1), (_fact, 0.25), (_comparison, 0.1),
         (_sentence, 0.15), (_code, 0.1))


def pretraining_corpus(config: CorpusConfig | None = None) -> list[str]:
    """``config.documents`` texts of mixed lines; deterministic in ``config``."""
    config = config or CorpusConfig()
    rng = random.Random(f"gym-corpus-{config.seed}")
    kinds = KINDS + (((_compact_fact, 0.15),) if config.compact_facts else ())
    makers, weights = zip(*kinds, strict=True)
    docs = []
    for _ in range(config.documents):
        lines = [rng.choices(makers, weights=weights)[0](rng)
                 for _ in range(rng.randint(config.min_lines, config.max_lines))]
        docs.append("\n".join(lines))
    return docs
