"""How often ``--grading mammoth-v1`` agrees with MAmmoTH v1's own grading code, output by output.

    python benchmarks/bench_grading_v1_agreement.py --v1 PATH/TO/math_eval/utils.py [--data-dir ../shared/data]

v1's code is not shipped: point ``--v1`` at a copy of its ``math_eval/utils.py`` (public: e.g.
seamoke/Human-Think-Language or efficiency-learning/UniPROT). Only its pure functions are loaded
(``answer_clean``, ``extract_math_answer``, ``number_it``, ``compare_both_string_and_number_format`` and what
they call); its heavy imports (torch, transformers, openai, wolframalpha) are skipped.

The outputs: for every test item of the six sets, model-like answers built from its gold (correct, off by
one, with commas, trailing zeros, boxed, dollars, "x = ...", fractions, LaTeX, run-on few-shot turns,
leading blank lines, the article "a") plus seeded random outputs from the fuzz pieces. Programs are not
executed (v1 runs them with multiprocessing; ours in the sandbox): graded text only. Prints, per set, how
many outputs were compared and the share where both the extracted answer and the verdict agree, and lists
up to five disagreements; the last line is ``agreement <fraction>``. v1 ``eval``s answers, so an answer it
would hang on is given one second (SIGALRM) and left out.
"""

from __future__ import annotations

import argparse
import ast
import random
import signal
import sys
import types
import warnings
from pathlib import Path

SETS = ("gsm8k", "math", "numglue", "svamp", "deepmind", "simuleq")
V1_FUNCTIONS = ("delete_extra_zero", "_fix_fracs", "_fix_a_slash_b", "_remove_right_units", "_fix_sqrt",
                "_strip_string", "extract_math_answer", "answer_clean", "within_eps", "floatify", "number_it",
                "compare_two_numbers", "compare_both_string_and_number_format")


def load_v1(path: Path) -> types.ModuleType:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    body = ["import re, math, json, os\nfrom math import sqrt\nfrom functools import lru_cache\n"]
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in V1_FUNCTIONS:
            start = node.lineno - 1 - len(node.decorator_list)
            body.append("".join(lines[start:node.end_lineno]) + "\n")
    module = types.ModuleType("utils")
    exec(compile("".join(body), str(path), "exec"), module.__dict__)
    missing = [f for f in V1_FUNCTIONS if f not in module.__dict__]
    if missing:
        sys.exit(f"{path}: no {', '.join(missing)}: not MAmmoTH v1's math_eval/utils.py")
    return module


def outputs_for(gold: str, rng: random.Random) -> list[str]:
    wrong = str(int(gold) + 1) if gold.lstrip("-").isdigit() else gold + "1"
    with_commas = f"{int(gold):,}" if gold.lstrip("-").isdigit() else gold
    return [f"Let's compute. 3 + 4 = 7. The answer is {gold}.", f"The answer is {wrong}.",
            f"So the total is {with_commas} dollars. The answer is {with_commas}", f"#### {gold}",
            f"The answer is {gold}.00", f"x = {gold}", f"The answer is $\\boxed{{{gold}}}$.",
            f"Thus $\\boxed{{{gold}}}$", f"The answer is ${gold}$.", f"He buys a box. {gold}",
            f"\n\nThe answer is {gold}.\n\n### Instruction:\nNext. The answer is {wrong}.",
            f"The answer is {gold}.\n\nQuestion: more? The answer is {wrong}.",
            f"The answer is {gold}.\n\nNext. The answer is {wrong}.", f"The answer is \\frac{{{gold}}}{{1}}",
            f"The answer is {gold} and {wrong}", f"{gold} = {wrong}", "The answer is (A).", "I don't know.", "",
            f"The answer is {gold}/", f"the answer is {gold}", f"The answer is {rng.randint(0, 50)}/{rng.randint(1, 9)}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--v1", type=Path, required=True, help="MAmmoTH v1's math_eval/utils.py")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--per-set", type=int, default=150, help="test items per set (default 150)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_grading_fuzz import _outputs

    from s2lbench.evaluation.grading import extract_answer, grade
    from s2lbench.plugin_manager import get_hooks

    v1 = load_v1(args.v1)
    rng = random.Random(args.seed)
    hooks = get_hooks()
    fuzz = _outputs(300, seed=args.seed)

    def on_alarm(signum, frame):
        raise TimeoutError

    signal.signal(signal.SIGALRM, on_alarm)
    warnings.simplefilter("ignore", SyntaxWarning)  # v1 evals answers such as "1e5x"
    total = agree_total = 0
    for name in SETS:
        items = hooks.evaluator(name)().load(args.data_dir)
        items = rng.sample(items, min(args.per_set, len(items)))
        compared = agreed = hung = 0
        disagreements = []
        for item in items:
            gold = item.reference
            gold_text = gold.text if name == "math" else str(gold)
            for output in outputs_for(gold_text, rng) + rng.sample(fuzz, 5):
                signal.alarm(1)
                try:
                    ours = grade(name, output, gold, "mammoth-v1")
                    theirs_answer = v1.answer_clean(name, ("####", "The answer is"), output)
                    if name == "math":
                        theirs_ok = v1.compare_both_string_and_number_format(theirs_answer, gold.text, gold.number)
                    else:
                        theirs_ok = theirs_answer == gold_text
                except TimeoutError:
                    hung += 1
                    continue
                except Exception as e:  # v1 itself raising on an output counts as a disagreement
                    theirs_answer, theirs_ok = f"<v1 raised {type(e).__name__}>", None
                finally:
                    signal.alarm(0)
                compared += 1
                ours_answer = extract_answer(name, output, "mammoth-v1") if name != "math" else ours.extracted
                if ours_answer == theirs_answer and ours.correct == theirs_ok:
                    agreed += 1
                elif len(disagreements) < 5:
                    disagreements.append((output[:80], ours_answer, ours.correct, theirs_answer, theirs_ok))
        total += compared
        agree_total += agreed
        print(f"{name:<9} {compared:>6} outputs  agreement {agreed / max(1, compared):.4f}"
              + (f"  ({hung} left out: v1 hangs)" if hung else ""))
        for row in disagreements:
            print(f"    {row[0]!r}: ours {row[1]!r} {row[2]}, v1 {row[3]!r} {row[4]}")
    print(f"agreement {agree_total / max(1, total):.4f}")


if __name__ == "__main__":
    main()
