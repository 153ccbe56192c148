"""Hybrid decoding (MAmmoTH's PoT first, CoT backup): which items are re-asked, with which prompt, which answer
counts, and the generation cache keeping the passes apart."""

from __future__ import annotations

from s2lbench.evaluators.math_tasks import GSM8K, POT_SUFFIX, MathOptions

from s2lbench.evaluation import EvalItem
from s2lbench.generation import GenerationConfig
from s2lbench.generation.cache import cache_path, cached_generate_with
from s2lbench.generation.hybrid import generate_with_backup, prompting_variant

ITEMS = [EvalItem(0, "Two plus two?", "4"), EvalItem(1, "Three times three?", "9"),
         EvalItem(2, "Ten minus one?", "9"), EvalItem(3, "One plus one?", "2")]
FIRST = ["print(2 + 2)",                     # a program that prints: kept
         "print(1/0)",                       # a program that raises: re-asked
         "I cannot write this program.",     # no program, no number: re-asked
         "x = 2\nprint()"]                   # a program that prints nothing: re-asked
BACKUP = {"Three times three?": "3 * 3 = 9. The answer is 9.", "Ten minus one?": "The answer is 8.",
          "One plus one?": "The answer is 2."}


def _fake_generate(calls):
    def generate(prompts, variant):
        calls.append((variant, prompts))
        if variant == "hybrid":
            return [FIRST[[it.instruction + POT_SUFFIX in p for it in ITEMS].index(True)] for p in prompts]
        return [next(v for q, v in BACKUP.items() if q in p) for p in prompts]
    return generate


def test_hybrid_reasks_failed_programs_without_the_pot_suffix():
    evaluator = GSM8K(MathOptions(prompting="hybrid"))
    calls = []
    outputs, backups = generate_with_backup(evaluator, ITEMS, _fake_generate(calls))
    assert [v for v, _ in calls] == ["hybrid", "hybrid-backup"]
    assert all(POT_SUFFIX in p for p in calls[0][1])
    assert len(calls[1][1]) == 3 and not any(POT_SUFFIX in p for p in calls[1][1])
    assert sorted(backups) == [1, 2, 3]
    scores, samples = evaluator.evaluate(ITEMS, outputs, backups)
    assert [s.extracted for s in samples] == ["4", "9", "8", "2"]
    assert scores["accuracy"] == 0.75
    assert samples[0].backup_output is None and samples[1].backup_output == BACKUP["Three times three?"]


def test_pot_without_backup_keeps_the_empty_answer():
    evaluator = GSM8K(MathOptions(prompting="pot"))
    calls = []
    outputs, backups = generate_with_backup(evaluator, ITEMS,
                                            lambda ps, v: calls.append(v) or [FIRST[i] for i in range(len(ps))])
    assert calls == ["pot"] and backups == {}
    _, samples = evaluator.evaluate(ITEMS, outputs)
    assert [s.extracted for s in samples] == ["4", "", "", ""]


def test_cot_output_with_a_program_is_executed_as_v1_does():
    sample = GSM8K(MathOptions(prompting="cot")).score(ITEMS[0], "print(math.floor(4.2))")
    assert sample.extracted == "4"


def test_cache_keys_distinguish_prompting_modes(tmp_path):
    cfg = GenerationConfig(max_new_tokens=8)
    paths = {v: cache_path(tmp_path, "some/model", "gsm8k", cfg, v) for v in ("", "pot", "hybrid", "hybrid-backup")}
    assert len(set(paths.values())) == 4
    assert prompting_variant(GSM8K(MathOptions(prompting="cot"))) == ""
    seen = []

    def gen(model, prompts, config):
        seen.append(list(prompts))
        return [p.upper() for p in prompts]

    assert cached_generate_with(gen, "m", "gsm8k", ["a"], cfg, tmp_path, "hybrid") == ["A"]
    assert cached_generate_with(gen, "m", "gsm8k", ["a"], cfg, tmp_path, "hybrid") == ["A"]
    assert cached_generate_with(gen, "m", "gsm8k", ["a"], cfg, tmp_path, "hybrid-backup") == ["A"]
    assert seen == [["a"], ["a"]]  # the second call was cached; the backup variant has its own file
