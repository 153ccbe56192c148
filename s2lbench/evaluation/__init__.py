"""Evaluation: the ``Evaluator`` contract a plugin implements, and grading (``s2lbench.evaluation.grading``).

Public (a plugin may import these): ``Evaluator``, ``Metric``, ``EvalItem``, ``SampleResult``, and ``ACCURACY``
(exact match of an extracted final answer, the metric the math and gym evaluators share).
"""

from s2lbench.evaluation.evaluator import ACCURACY, EvalItem, Evaluator, Metric, SampleResult

__all__ = ["ACCURACY", "EvalItem", "Evaluator", "Metric", "SampleResult"]
