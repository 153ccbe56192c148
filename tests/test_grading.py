"""Grading on hand-written model outputs: every answer style MAmmoTH v1 handles, right and wrong, both modes."""

from __future__ import annotations

import pytest

from s2lbench.evaluation.grading import (
    MathGold,
    compare_numbers,
    delete_extra_zero,
    extract_answer,
    extract_math_answer,
    grade,
    math_gold,
    parse_number,
    strip_latex,
)

V1, FIXED = "mammoth-v1", "s2lbench"


@pytest.mark.parametrize("raw, expected", [("18.00", "18"), ("3.50", "3.5"), ("-2.0", "-2"), ("0.0", "0"),
                                           ("3/4", "3/4"), ("007", "7"), ("abc", "abc")])
def test_zero_normaliser(raw, expected):
    assert delete_extra_zero(raw) == expected


@pytest.mark.parametrize("output, gold, correct", [
    ("She sells 9 eggs at $2 each, so 9 * 2 = 18. The answer is 18.", "18", True),
    ("9 * 2 = 18 dollars.\n#### 18", "18", True),
    ("The answer is 1,200.00", "1200", True),
    ("9 * 2 = 18. The answer is 17.", "18", False),
    # no trigger: the last number of the whole output counts
    ("First 3 + 4 = 7, then 7 * 2 = 14", "14", True),
    ("First 3 + 4 = 7, then 7 * 2 = 14 eggs, minus 1", "14", False),
    # with a trigger the FIRST number after it counts
    ("The answer is 15 and 9", "15", True),
    ("The answer is 15 and 9", "9", False),
    # text after the last '=' only
    ("The answer is x = 5", "5", True),
    ("no number at all", "5", False),
])
def test_numeric_sets(output, gold, correct):
    for style in ("gsm8k", "svamp", "simuleq"):
        assert grade(style, output, gold, V1).correct is correct
        assert grade(style, output, gold, FIXED).correct is correct


def test_run_on_few_shot_turns_are_cut_at_the_first_blank_line():
    output = "3 + 4 = 7. The answer is 7.\n\nQuestion: what is 1+1? The answer is 2."
    assert extract_answer("gsm8k", output) == "7"


def test_deepmind_dot_zero_gold_fails_in_v1_and_matches_when_corrected():
    assert grade("deepmind", "The answer is 7.", "7.0", V1).correct is False
    assert grade("deepmind", "The answer is 7.", "7.0", FIXED).correct is True
    assert grade("deepmind", "The answer is 8.", "7.0", FIXED).correct is False


def test_deepmind_non_numeric_golds_only_match_when_corrected():
    assert grade("deepmind", "The prime factors are 3 and 5. The answer is [3, 5].", "[3, 5]", V1).correct is False
    assert grade("deepmind", "The prime factors are 3 and 5. The answer is [3, 5].", "[3, 5]", FIXED).correct
    assert not grade("deepmind", "The answer is [3, 7].", "[3, 5]", FIXED).correct
    assert grade("deepmind", "The answer is -20*x.", "-20*x", FIXED).correct
    assert not grade("deepmind", "The answer is -20*y.", "-20*x", FIXED).correct


def test_numglue_letter_choices():
    q_out = "The tree offers more friction, so the answer is B. The answer is B"
    assert grade("numglue", q_out, "B", V1, multiple_choice=True).correct
    assert grade("numglue", q_out, "B", FIXED, multiple_choice=True).correct
    assert not grade("numglue", "The answer is (A)", "B", FIXED, multiple_choice=True).correct
    assert grade("numglue", "The answer is (B)", "B", FIXED, multiple_choice=True).correct


def test_numglue_article_a_is_read_as_choice_a_only_by_v1():
    output = "He buys a box of 12 and eats 4, leaving 8"
    assert extract_answer("numglue", output, V1) == "A"
    assert grade("numglue", output, "8", V1).correct is False
    assert grade("numglue", output, "8", FIXED).correct is True


def test_numglue_numbers_and_words():
    assert grade("numglue", "The answer is 4.17", "4.17", V1).correct
    assert not grade("numglue", "The answer is 4.2", "4.17", V1).correct
    assert not grade("numglue", "The answer is August", "August", V1).correct  # v1 cannot extract words
    assert grade("numglue", "The answer is August.", "August", FIXED).correct
    assert not grade("numglue", "The answer is July.", "August", FIXED).correct


@pytest.mark.parametrize("raw, expected", [
    ("\\dfrac{1}{2}", "\\frac{1}{2}"), ("0.5", "\\frac{1}{2}"), ("3/4", "\\frac{3}{4}"), ("\\frac34", "\\frac{3}{4}"),
    ("x = 5", "5"), ("\\left( 3, 4 \\right)", "(3,4)"), ("90^\\circ", "90"), ("10\\text{ cm}", "10"),
    ("\\sqrt3", "\\sqrt{3}"), (".5", "\\frac{1}{2}"), ("\\$5", "5"), ("50\\%", "50"),
])
def test_math_latex_normaliser(raw, expected):
    assert strip_latex(raw) == expected


def test_math_gold_is_text_and_number():
    assert math_gold("2") == MathGold("2", 2)
    gold = math_gold("\\frac{1}{4}")
    assert gold.text == "\\frac{1}{4}" and gold.number == pytest.approx(0.25) and isinstance(gold.number, float)
    assert math_gold("x^2+1").number is None


@pytest.mark.parametrize("output, raw_gold, correct", [
    ("so the graph has $\\boxed{2}$ vertical asymptotes.", "2", True),
    ("so the graph has $\\boxed{3}$ vertical asymptotes.", "2", False),
    ("The sum is $\\boxed{\\dfrac{1}{4}}$.", "\\frac{1}{4}", True),
    ("The answer is \\frac{1}{4}", "\\frac{1}{4}", True),
    ("Nested: $\\boxed{\\frac{\\sqrt{3}}{2}}$", "\\frac{\\sqrt{3}}{2}", True),
    ("The answer is 0.255", "\\frac{1}{4}", True),     # float gold: within 4 %
    ("The answer is 0.27", "\\frac{1}{4}", False),     # 8 % off
    ("The answer is 2.4", "2", True),                  # int gold: round(prediction) == gold
    ("The answer is 2.6", "2", False),
    ("we get 17 and then 42", "42", True),              # no trigger, no box: last number
    ("The answer is (3, 4)", "(3,4)", True),
    ("The answer is x^2+2", "x^2+1", False),
])
def test_math_answers(output, raw_gold, correct):
    assert grade("math", output, math_gold(raw_gold), V1).correct is correct


def test_math_dollar_wrapped_answer_only_matches_when_corrected():
    assert extract_math_answer("The answer is $5$.", V1) == "$5$"
    assert grade("math", "The answer is $5$.", math_gold("5"), V1).correct is False
    assert grade("math", "The answer is $5$.", math_gold("5"), FIXED).correct is True


def test_numeric_comparison_rules():
    assert compare_numbers(2.49, 2) and not compare_numbers(2.51, 2)
    assert compare_numbers(1.03, 1.0) and not compare_numbers(1.05, 1.0)
    assert not compare_numbers(float("nan"), 1.0)


def test_number_parsing_never_calls_eval():
    assert parse_number("\\frac{3}{4}") == pytest.approx(0.75)
    assert parse_number("1,000") == 1000
    assert parse_number("(1+2)*3") == 9
    assert parse_number("2**3") == 8
    assert parse_number("__import__('os').system('true')") is None
    assert parse_number("9**99999999") is None


def test_unknown_grading_and_style_are_rejected():
    with pytest.raises(ValueError, match="grading"):
        grade("gsm8k", "1", "1", "strict")
    with pytest.raises(ValueError, match="style"):
        extract_answer("aqua", "1")
