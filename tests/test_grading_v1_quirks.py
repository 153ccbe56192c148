"""Each MAmmoTH v1 quirk that ``--grading mammoth-v1`` reproduces, pinned on a hand-written case, beside
what ``--grading s2lbench`` does instead (docs/evaluation.md lists them)."""

from __future__ import annotations

import pytest

from s2lbench.evaluation.grading import MathGold, delete_extra_zero, extract_answer, grade, math_gold
from s2lbench.evaluation.grading.answers import number_it
from s2lbench.evaluation.grading.normalize import strip_latex, strip_string_v1

V1, FIXED = "mammoth-v1", "s2lbench"


def test_blank_line_cut_without_stripping_leading_newlines():
    # a trigger occurs twice, so v1 keeps the text before the first blank line: here, nothing
    output = "\n\nThe answer is 5.\n\n### Instruction: more. The answer is 7."
    assert extract_answer("gsm8k", output, V1) == ""
    assert extract_answer("gsm8k", output, FIXED) == "5"


def test_no_blank_line_cut_on_math():
    # v1 applies extract_math_answer to the raw output: the last "The answer is" wins, even in a run-on turn
    output = "The answer is 3.\n\nNext problem. The answer is 4."
    assert grade("math", output, math_gold("4"), V1).correct is True
    assert grade("math", output, math_gold("3"), FIXED).correct is True
    assert grade("math", output, math_gold("3"), V1).correct is False


def test_frac_read_unparenthesised_as_a_number():
    assert number_it("\\frac{4+4}{2}", V1) == 6       # 4+4/2
    assert number_it("\\frac{4+4}{2}", FIXED) == 4    # (4+4)/(2)
    assert number_it("2\\frac{1}{2}", V1) == 10.5     # "21/2"
    gold = MathGold("4", 4)
    assert grade("math", "The answer is \\frac{4+4}{2}", gold, V1).correct is False
    assert grade("math", "The answer is \\frac{4+4}{2}", gold, FIXED).correct is True


def test_caret_is_xor_when_read_as_python():
    # v1 evals the answer: 2^3 is XOR (1), and a float gold takes ±4 %
    assert number_it("2^3", V1) == 1
    assert grade("math", "The answer is 2^3", MathGold("8", 8), V1).correct is False


def test_no_half_rewrite_in_v1_normaliser():
    # v1's utils.py has Hendrycks' "0.5 -> \frac{1}{2}" commented out
    assert strip_string_v1("0.5") == "0.5"
    assert strip_latex("0.5") == "\\frac{1}{2}"


def test_no_outer_strip_or_period_drop_in_v1_normaliser():
    assert strip_string_v1("5.") == "5."
    assert strip_latex(" 5. ") == "5"


def test_frac_at_the_very_end_kept_in_v1():
    assert strip_string_v1("1+\\frac") == "1+\\frac"


def test_article_a_read_as_choice_a():
    output = "He buys a box of 12 and eats 4, so 8 are left."
    assert extract_answer("numglue", output, V1) == "A"
    assert extract_answer("numglue", output, FIXED) == "8"


def test_first_candidate_after_trigger_last_without():
    assert extract_answer("simuleq", "The answer is 15 and 9", V1) == "15"
    assert extract_answer("simuleq", "x is 15 and y is 9", V1) == "9"


def test_equals_sign_keeps_the_last_side():
    assert extract_answer("gsm8k", "The answer is 3 + 4 = 7 apples", V1) == "7"


def test_zero_normaliser_mangles_twenty_digit_numbers():
    # str(float) gives "1e+20"; v1 strips its trailing zero -> "1e+2" -> 100.0
    assert delete_extra_zero("100000000000000000000") == "100.0"
    assert delete_extra_zero("18.00") == "18" and delete_extra_zero("3/4") == "3/4"


def test_numeric_gold_not_normalised_in_v1():
    assert grade("deepmind", "The answer is 7", "7.0", V1).correct is False
    assert grade("deepmind", "The answer is 7", "7.0", FIXED).correct is True


def test_math_boxed_without_brace_reads_to_the_dollar():
    assert grade("math", "so $\\boxed 5$ is it", math_gold("5"), V1).extracted == "5"


def test_math_dollars_kept_in_v1():
    assert grade("math", "The answer is $5$.", math_gold("5"), V1).correct is False
    assert grade("math", "The answer is $5$.", math_gold("5"), FIXED).correct is True


def test_int_gold_rounds_float_gold_four_percent():
    assert grade("math", "The answer is 4.6", MathGold("5", 5), V1).correct is True
    assert grade("math", "The answer is 1.04", MathGold("1.0", 1.0), V1).correct is True
    assert grade("math", "The answer is 1.05", MathGold("1.0", 1.0), V1).correct is False


def test_python_literals_read_as_v1_eval_would():
    assert number_it("(3, 4)", V1) is None   # commas are dropped first: "(3 4)" is not Python
    assert number_it("[3]", V1) == 3          # a list gives its first element
    assert number_it("'7'", V1) == 7
    assert number_it("math.sqrt(16)", V1) == 4
    assert number_it("__import__('os')", V1) is None


@pytest.mark.parametrize("output", ["The answer is 10**400", "The answer is 9**9**9**9", "The answer is 1e999",
                                    "The answer is -1e999*0", "The answer is " + "9" * 5000,
                                    "The answer is math.factorial(10**6)", "The answer is (1<<10**9)",
                                    "The answer is \\frac{10**400}{3}", "The answer is " + "(" * 300 + "1" + ")" * 300])
@pytest.mark.parametrize("grading", [V1, FIXED])
def test_huge_or_hostile_numbers_never_raise(output, grading):
    result = grade("math", output, MathGold("5", 5), grading)
    assert result.correct is False
