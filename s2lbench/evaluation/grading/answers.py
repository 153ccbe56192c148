"""Answer extraction and comparison for the math sets: MAmmoTH v1 exactly, or s2lbench's corrected mode.

``grading="mammoth-v1"`` reproduces v1's ``answer_clean`` / ``extract_math_answer`` / ``_strip_string`` /
``number_it`` / ``compare_two_numbers`` exactly, quirks included (each is listed, with a test, in
docs/evaluation.md). ``grading="s2lbench"`` keeps v1's rules but fixes the ones that are plainly wrong:

1. numeric golds are zero-normalised like predictions (DeepMind's "7.0" can match "7");
2. non-numeric golds (DeepMind's "[3, 5]", "-20*x"; NumGLUE's "August") are compared to the answer text
   (after the trigger, spaces and a trailing period removed; case-insensitive whole word for word golds);
3. NumGLUE letter choices are read only for multiple-choice questions and only as capital letters in the
   original text, so the article "a" is no longer read as choice A;
4. MATH answers lose surrounding ``$`` signs before normalising ("The answer is $5$");
5. leading newlines are stripped before the blank-line cut (v1 extracts nothing from "\n\nThe answer is 5"
   when a trigger repeats), and the cut also applies to MATH;
6. ``\frac{a}{b}`` is read as (a)/(b), not a/b, when a MATH answer is read as a number.

Neither mode can raise on a model output: anything unreadable is simply not a match.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from s2lbench.evaluation.grading.normalize import (
    NUMBER_PATTERN,
    delete_extra_zero,
    last_boxed,
    strip_latex,
    strip_string_v1,
)
from s2lbench.evaluation.grading.safe_eval import NotANumber, python_value

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


def _cut_run_on(text: str) -> str:
    """v1's few-shot guard: when a trigger occurs twice, keep only the text before the first blank line."""
    if any(text.count(t) > 1 for t in TRIGGERS):
        return text.split("\n\n")[0]
    return text


def answer_segment(output: str, grading: Grading = "s2lbench", style: str = "") -> tuple[str, bool]:
    """v1's first steps: cut run-on few-shot turns, keep the text after the last trigger (and say if one was
    found). v1 cuts the raw output, so an output opening with a blank line keeps nothing; s2lbench strips
    leading and trailing newlines first. The gym (not a MAmmoTH set) always strips, as it always has."""
    raw = grading == "mammoth-v1" and style != "gym"
    text = output if raw else output.strip("\n")
    text = _cut_run_on(text)
    parts = _TRIGGER_SPLIT.split(text)
    found = len(parts) > 1
    if found:
        text = parts[-1]
    if grading == "mammoth-v1":
        return text, found
    return text.strip("\n").rstrip(".").rstrip("/").strip(" "), found


def numeric_candidates(text: str) -> list[str]:
    text = text.replace(",", "")
    return [delete_extra_zero(s) for s in NUMBER_PATTERN.findall(text)]


def _choose(candidates: list[str], found_trigger: bool) -> str:
    if not candidates:
        return ""
    chosen = candidates[0] if found_trigger else candidates[-1]
    if chosen.endswith("."):  # v1 drops one trailing '.', then one trailing '/'
        chosen = chosen[:-1]
    if chosen.endswith("/"):
        chosen = chosen[:-1]
    return chosen


def extract_answer(style: str, output: str, grading: Grading = DEFAULT_GRADING, *,
                   multiple_choice: bool = False) -> str:
    """The answer string v1 would compare (``style`` names the set's cleaning rule: gsm8k, numglue, math...)."""
    _check_grading(grading)
    if style == "math":
        return extract_math_answer(output, grading)
    if style not in STYLES:
        raise ValueError(f"unknown answer style {style!r}; known: {', '.join(STYLES)}")
    text, found = answer_segment(output, grading, style)
    if "=" in text:
        text = text.split("=")[-1].strip()
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
            gold = math_gold(str(gold), grading)
        extracted = extract_math_answer(output, grading)
        return Graded(extracted, compare_math(extracted, gold, grading))
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


def _boxed_answer(text: str, strip) -> str | None:
    """v1: the last \\boxed content, normalised; "" when "boxed" ends the text (v1 returns "" at once)."""
    content = last_boxed(text)
    return None if content is None else strip(content) if content else ""


def extract_math_answer(output: str, grading: Grading = DEFAULT_GRADING) -> str:
    """v1's MATH extractor: after the last "The answer is" (either case), else the last \\boxed{}, else the
    last number. v1 applies it to the raw output (no strip, no blank-line cut); s2lbench strips newlines and
    cuts run-on turns first, as it does for the other sets."""
    v1 = grading == "mammoth-v1"
    strip = strip_string_v1 if v1 else strip_latex
    text = output if v1 else _cut_run_on(output.strip("\n"))
    if v1 and not text:
        return ""
    if "The answer is " in text:
        pred = text.split("The answer is ")[-1].strip()
    elif "the answer is " in text:
        pred = text.split("the answer is ")[-1].strip()
    elif "boxed" in text:
        boxed = _boxed_answer(text, strip)
        if not boxed and text.split("boxed")[-1] == "":
            return ""
        pred = boxed or ""
    else:
        numbers = re.findall(r"-?\d*\.?\d+", text)
        pred = numbers[-1] if numbers else ""
    if not v1:
        pred = pred.strip().rstrip(".").strip().strip("$").strip()
    if pred.endswith("."):
        pred = pred[:-1]
    if pred.endswith("/"):
        pred = pred[:-1]
    pred = strip(pred)
    if "boxed" in pred:
        if pred.split("boxed")[-1] == "":
            return ""
        pred = _boxed_answer(pred, strip) or ""
    return pred


def _floatify(value) -> int | float | None:
    """v1's ``floatify``: float(value); an integral value comes back as an int (``round``), else None."""
    try:
        number = float(value)
        return round(number) if number.is_integer() else number
    except (TypeError, ValueError, OverflowError):
        return None


def number_it(text: str, grading: Grading = DEFAULT_GRADING) -> int | float | None:
    """v1's ``number_it``: ``\\frac{a}{b}`` -> ``a/b`` (v1; s2lbench writes ``(a)/(b)``) evaluated, else
    commas dropped; then float(), else the text evaluated as Python (a tuple or list gives its first item).
    v1 calls ``eval``; we evaluate a safe subset (``s2lbench.evaluation.grading.safe_eval``). Never raises."""
    if "frac" in text:
        replacement = r"\1/\2" if grading == "mammoth-v1" else r"(\1)/(\2)"
        text = re.sub(r"\\frac\{([^{}]+)\}\{([^{}]+)\}", replacement, text)
        try:
            text = str(python_value(text))
        except (NotANumber, ValueError):
            pass
    elif "," in text:
        text = text.replace(",", "")
    number = _floatify(text)
    if number is not None:
        return number
    try:
        value = python_value(text)
        if isinstance(value, (list, tuple)):
            value = value[0]
    except (NotANumber, ValueError, IndexError):
        return None
    return _floatify(value)


def parse_number(text: str, grading: Grading = "s2lbench") -> float | None:
    """A MATH answer as a float (``number_it``), or None."""
    number = number_it(text, grading)
    return None if number is None else float(number)


def math_gold(raw_answer: str, grading: Grading = DEFAULT_GRADING) -> MathGold:
    """v1's MATH gold pair from a raw boxed answer: normalised text, and an int or float where it parses."""
    text = (strip_string_v1 if grading == "mammoth-v1" else strip_latex)(str(raw_answer))
    number = number_it(text, grading)
    if isinstance(number, float) and (math.isnan(number) or math.isinf(number)):
        number = None
    if number is not None and float(number).is_integer() and "." not in text:
        number = int(number)
    elif number is not None:
        number = float(number)
    return MathGold(text, number)


def compare_numbers(prediction: float, gold: int | float) -> bool:
    """v1's rule: an int gold needs round(prediction) == gold; a float gold accepts ±4% relative. Never raises."""
    try:
        if math.isnan(prediction):
            return False
        if isinstance(gold, int):
            return round(prediction) == gold
        return gold - abs(gold) * 0.04 <= prediction <= gold + abs(gold) * 0.04
    except (TypeError, ValueError, OverflowError):
        return False


def compare_math(extracted: str, gold: MathGold, grading: Grading = DEFAULT_GRADING) -> bool:
    if extracted == gold.text:
        return True
    if gold.number is None:
        return False
    prediction = number_it(extracted, grading)
    return prediction is not None and compare_numbers(prediction, gold.number)
