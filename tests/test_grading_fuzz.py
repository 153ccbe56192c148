"""No model output may fail a set: thousands of generated outputs (huge numbers, unicode, code, LaTeX, empty,
nested braces, run-on turns) through every evaluator's scoring, in both gradings. Seeded; a few seconds."""

from __future__ import annotations

import random

import pytest
from s2lbench.evaluators.math_tasks import MATH_TASKS, MathOptions
from s2lbench.evaluators.radiology import IndianaRadiology, RadiologyOptions

from s2lbench.evaluation import EvalItem
from s2lbench.evaluation.grading import math_gold
from s2lbench.gym.evaluators import GymEvaluator, GymOptions

PIECES = ["The answer is", "the answer is ", "####", "\\boxed{", "\\boxed", "}", "{", "$", "\\frac", "\\frac{1}{",
          "\\dfrac12", "\\sqrt", "\\text{ cm}", "\\left(", "\\right)", "=", "/", ".", ",", "-", "^", "**", "e",
          "10**400", "9**9**9", "1e999", "nan", "inf", "-0", "0.", ".5", "9" * 400, "3/4", "(1, 2)", "[3, 5]",
          "A", "(B)", "a", "Answer Choices:", "\n", "\n\n", " ", "\t", "### Instruction", "x =", "\\%", "\\$",
          "é", "٣", "𝟘", "\u200b", "\ud800", "\x00", "中文", "🙂", "\\", "\\\\", "'", '"', "()", "__import__('os')",
          "math.factorial(10**9)", "1<<10**9", "(" * 60, ")" * 60, "{" * 40, "}" * 40, "def f():", "return 1"]
PROGRAMS = ["print(math.floor(1400.2))", "```python\nprint(6*7)\n```", "print(1/0)", "while True:\n    pass",
            "print('x' * 10**6)", "print(10**400)", "import os\nprint(os.listdir('/'))", "print()", "exit()",
            "print('\\ud800')"]
GOLDS = ["5", "7.0", "-3", "A", "August", "[3, 5]", "-20*x", "583.3333", "0", "1000000"]
MATH_GOLDS = ["5", "\\frac{1}{2}", "x^2+1", "\\sqrt{3}", "(1,2)", "10**400", "\\text{(A)}", "0.5", ""]


def _outputs(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    outputs = ["", " ", "\n\n", "\n\nThe answer is 5"]
    for _ in range(n):
        outputs.append("".join(rng.choice(PIECES) + rng.choice(["", " ", str(rng.randint(-10**6, 10**6))])
                               for _ in range(rng.randint(1, 12))))
    return outputs


@pytest.mark.parametrize("grading", ["mammoth-v1", "s2lbench"])
def test_no_output_fails_a_math_or_gym_set(grading):
    outputs = _outputs(2500)
    for cls in MATH_TASKS:
        evaluator = cls(MathOptions(grading=grading, prompting="hybrid"))
        golds = [math_gold(g, grading) for g in MATH_GOLDS] if cls.name == "math" else GOLDS
        items = [EvalItem(i, "q", golds[i % len(golds)], meta={"multiple_choice": i % 2 == 0})
                 for i in range(len(outputs))]
        # program execution costs a subprocess each: fuzz it on the program list, the rest without "print("
        texts = [o.replace("print(", "print (") for o in outputs]
        scores, samples = evaluator.evaluate(items, texts)
        assert len(samples) == len(items) and 0.0 <= scores["accuracy"] <= 1.0
        for item, out in zip(items[: len(PROGRAMS)], PROGRAMS, strict=True):
            sample = evaluator.score(item, out, backup="The answer is 5")
            assert sample.scores["accuracy"] in (0.0, 1.0)
            assert evaluator.backup_prompt(item, out) is None or "### Response:" in evaluator.backup_prompt(item, out)
    gym = GymEvaluator(GymOptions(set="x", grading=grading))
    items = [EvalItem(i, "q", GOLDS[i % len(GOLDS)]) for i in range(len(outputs))]
    scores, _ = gym.evaluate(items, outputs)
    assert 0.0 <= scores["accuracy"] <= 1.0


def test_no_output_fails_the_radiology_set():
    outputs = _outputs(300, seed=1)
    evaluator = IndianaRadiology(RadiologyOptions(bertscore=False))
    items = [EvalItem(i, "Summarize", "No acute cardiopulmonary abnormality.", "findings") for i in range(len(outputs))]
    scores, samples = evaluator.evaluate(items, outputs)
    assert len(samples) == len(outputs) and 0.0 <= scores["rouge_l"] <= 1.0 and scores["bleu"] >= 0.0
