"""Grading for the math sets: MAmmoTH v1 answer extraction, normalisers, comparison; a program-of-thought sandbox."""

from s2lbench.evaluation.grading.answers import (
    DEFAULT_GRADING,
    GRADINGS,
    TRIGGERS,
    Graded,
    Grading,
    MathGold,
    compare_math,
    compare_numbers,
    extract_answer,
    extract_math_answer,
    grade,
    math_gold,
    parse_number,
)
from s2lbench.evaluation.grading.normalize import delete_extra_zero, last_boxed, strip_latex

__all__ = ["DEFAULT_GRADING", "GRADINGS", "TRIGGERS", "Graded", "Grading", "MathGold", "compare_math",
           "compare_numbers", "delete_extra_zero", "extract_answer", "extract_math_answer", "grade", "last_boxed",
           "math_gold", "parse_number", "strip_latex"]
