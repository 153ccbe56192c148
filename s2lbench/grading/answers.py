"""Answer extraction and comparison for the math sets, faithful to MAmmoTH v1 with an opt-in corrected mode.

``grading="mammoth-v1"`` reproduces v1's ``answer_clean`` / ``extract_math_answer`` / ``compare_two_numbers``
exactly, including its known defects. ``grading="s2lbench"`` fixes the ones that are plainly wrong:

1. numeric golds are zero-normalised like predictions (DeepMind's "7.0" can match "7");
2. non-numeric golds (DeepMind's "[3, 5]", "-20*x"; NumGLUE's "August") are compared to the answer text
   (after the trigger, spaces and a trailing period removed; case-insensitive whole word for word golds);
3. NumGLUE letter choices are read only for multiple-choice questions and only as capital letters in the
   original text, so the article "a" is no longer read as choice A;
4. MATH answers lose surrounding ``$`` signs before normalising ("The answer is $5$").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from s2lbench.grading.normalize import NUMBER_PATTERN, delete_extra_zero, last_boxed, strip_latex
from s2lbench.grading.safe_eval import safe_arithmetic

Grading = Literal["mammoth-v1", "s2lbench"]
GRADINGS: tuple[str, ...] = ("mammoth-v1", "s2lbench")
DEFAULT_GRADING: Grading = "mammoth-v1"
TRIGGERS: tuple[str, ...] = ("####", "The answer is")
NUMERIC_SETS = ("gsm8k", "svamp", "deepmind", "simuleq", "gym")
STYLES = (*NUMERIC_SETS, "numglue", "math")
_TRIGGER_SPLIT = re.compile("|".join(re.escape(t) for t in TRIGGERS))


@dataclass(frozen=True)
class MathGold:
    """MATH's gold as v1 holds it: the normalised answer string and, where it parses, its number."""

    text: str
    number: int | float | None = None


@dataclass(frozen=True)
class Graded:
    extracted: str
    correct: bool


def _check_grading(grading: str) -> None:
    if grading not in GRADINGS:
        raise ValueError(f"unknown grading {grading!r}; choose one of {', '.join(GRADINGS)}")


def answer_segment(output: str) -> tuple[str, bool]:
    """v1's first steps: cut run-on few-shot turns, keep the text after the last trigger (and say if one was found)."""
    text = output.strip("\n")
    if any(text.count(t) > 1 for t in TRIGGERS):
        text = text.split("\n\n")[0]
    parts = _TRIGGER_SPLIT.split(text)
    found = len(parts) > 1
    if found:
        text = parts[-1]
    return text.strip("\n").rstrip(".").rstrip("/").strip(" "), found


def numeric_candidates(text: str) -> list[str]:
    text = text.replace(",", "")
    return [delete_extra_zero(s) for s in NUMBER_PATTERN.findall(text)]


def _choose(candidates: list[str], found_trigger: bool) -> str:
    if not candidates:
        return ""
    chosen = candidates[0] if found_trigger else candidates[-1]
    return chosen.rstrip(".").rstrip("/")


def extract_answer(style: str, output: str, grading: Grading = DEFAULT_GRADING, *,
                   multiple_choice: bool = False) -> str:
    """The answer string v1 would compare (``style`` names the set's cleaning rule: gsm8k, numglue, math...)."""
    _check_grading(grading)
    if style == "math":
        return extract_math_answer(output, grading)
    if style not in STYLES:
        raise ValueError(f"unknown answer style {style!r}; known: {', '.join(STYLES)}")
    text, found = answer_segment(output)
    if "=" in text:
        text = text.split("=")[-1]
    if style == "numglue":
        if grading == "mammoth-v1":
            letters = re.findall(r"\b(A|B|C|D|E)\b", text.upper())
        else:
            letters = re.findall(r"(?<![\w'])\(?([A-E])\)?(?![\w'])", text) if multiple_choice else []
        if letters:
            return _choose(letters, found)
    return _choose(numeric_candidates(text), found)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text).rstrip(".").strip("$")


def grade(style: str, output: str, gold: str | MathGold, grading: Grading = DEFAULT_GRADING, *,
          multiple_choice: bool = False) -> Graded:
    """Extract the answer from raw model output and compare it with the gold, as ``grading`` says."""
    _check_grading(grading)
    if style == "math":
        if not isinstance(gold, MathGold):
            gold = math_gold(str(gold))
        extracted = extract_math_answer(output, grading)
        return Graded(extracted, compare_math(extracted, gold))
    gold_text = str(gold)
    extracted = extract_answer(style, output, grading, multiple_choice=multiple_choice)
    if grading == "mammoth-v1":
        return Graded(extracted, extracted == gold_text)
    gold_text = gold_text.strip()
    if _is_number(gold_text):
        return Graded(extracted, extracted == delete_extra_zero(gold_text))
    if re.fullmatch(r"[A-E]", gold_text) and style == "numglue":
        return Graded(extracted, extracted == gold_text)
    # a non-numeric gold: compare the answer text itself
    segment, _ = answer_segment(output)
    if re.fullmatch(r"[A-Za-z]+", gold_text):
        hit = re.search(rf"\b{re.escape(gold_text)}\b", segment, flags=re.IGNORECASE)
        return Graded(gold_text if hit else segment, hit is not None)
    return Graded(_squash(segment), _squash(segment) == _squash(gold_text))


# ---- MATH -------------------------------------------------------------------------------------------------


def extract_math_answer(output: str, grading: Grading = DEFAULT_GRADING) -> str:
    """v1's MATH extractor: after the last "The answer is" (either case), else the last \\boxed{}, else the last number."""
    text = output.strip("\n")
    if any(text.count(t) > 1 for t in TRIGGERS):
        text = text.split("\n\n")[0]
    if "The answer is " in text:
        pred = text.split("The answer is ")[-1].strip()
    elif "the answer is " in text:
        pred = text.split("the answer is ")[-1].strip()
    elif "boxed" in text:
        pred = strip_latex(last_boxed(text) or "")
    else:
        numbers = re.findall(r"-?\d*\.?\d+", text)
        pred = numbers[-1] if numbers else ""
    if grading == "s2lbench":
        pred = pred.strip().rstrip(".").strip().strip("$").strip()
    if pred.endswith("."):
        pred = pred[:-1]
    if pred.endswith("/"):
        pred = pred[:-1]
    pred = strip_latex(pred)
    if "boxed" in pred:
        pred = strip_latex(last_boxed(pred) or "")
    return pred


def parse_number(text: str) -> float | None:
    """v1's ``number_it``: \\frac{a}{b} -> a/b, commas dropped, float() or else an arithmetic expression."""
    if "frac" in text:
        text = re.sub(r"\\frac\{([^{}]+)\}\{([^{}]+)\}", r"(\1)/(\2)", text)
    elif "," in text:
        text = text.replace(",", "")
    try:
        return float(text)
    except ValueError:
        return safe_arithmetic(text)


def math_gold(raw_answer: str) -> MathGold:
    """v1's MATH gold pair from a raw boxed answer: normalised text, and an int or float where it parses."""
    text = strip_latex(raw_answer)
    number = parse_number(text)
    if number is not None and (math.isnan(number) or math.isinf(number)):
        number = None
    if number is not None and number.is_integer() and "." not in text:
        number = int(number)
    return MathGold(text, number)


def compare_numbers(prediction: float, gold: int | float) -> bool:
    """v1's rule: an int gold needs round(prediction) == gold; a float gold accepts ±4% relative."""
    if math.isnan(prediction) or math.isinf(prediction):
        return False
    if isinstance(gold, int):
        return round(prediction) == gold
    return abs(prediction - gold) <= 0.04 * abs(gold)


def compare_math(extracted: str, gold: MathGold) -> bool:
    if extracted == gold.text:
        return True
    if gold.number is None:
        return False
    prediction = parse_number(extracted)
    return prediction is not None and compare_numbers(prediction, gold.number)
