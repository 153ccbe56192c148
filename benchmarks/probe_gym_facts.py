"""Probe what a gym model knows of the digit facts the worked steps compose, and where its arithmetic fails.

1. **Fact recall**, context-free: greedy completion of every single-digit fact the worked steps use, in the
   corpus's spaced notation (``9 + 4 = ``) and in the steps' compact one (``9+4=``): sums without and with a
   carry, sums of two digits plus one (the carry step), teen minus digit (the borrow step), products.
2. **Test accuracy by kind** (with ``--tests``, a gym's ``tests/`` folder): ``gym_arith`` exact match split by
   operation, carry or borrow, and one- or two-digit second operand; each model's first wrong answers shown.

Printed as one table per model, e.g. for a committed base against two fine-tunes of it:

    python benchmarks/probe_gym_facts.py s2lbench/gym/pretrained/gym-target-l-long \\
        WORKDIR/target_full_seed0-KEY/final WORKDIR/target_full_seed1-KEY/final --tests WORKDIR/gym/tests

(``WORKDIR``: a ``bench_gym_calibration.py --workdir``; each run's folder is its ``run_dir`` in the figures.)

Read-only: loads each folder's weights and tokenizer, writes nothing.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

PAIRS = [(a, b) for a in range(10) for b in range(10)]

#: fact kind -> (operands, answer); the kinds the v2 worked steps compose
FACTS = {
    "a+b, no carry": ([(a, "+", b) for a, b in PAIRS if a + b < 10], lambda a, b: a + b),
    "a+b, carry": ([(a, "+", b) for a, b in PAIRS if a + b >= 10], lambda a, b: a + b),
    "a+b+1 (carry step)": ([(a, "+", b) for a, b in PAIRS], lambda a, b: a + b + 1),
    "teen-b (borrow step)": ([(a + b, "-", b) for a, b in PAIRS if a + b >= 10], lambda a, b: a - b),
    "a*b": ([(a, "*", b) for a, b in PAIRS], lambda a, b: a * b),
}
NOTATIONS = {"spaced": "{a} {op} {b} = ", "compact": "{a}{op}{b}="}
PROBLEM = re.compile(r"(\d+) (\+|-|plus|minus) (\d+)")


def answered(completion: str, gold: int) -> bool:
    """The completion starts with the gold number and no further digit (``13.`` yes, ``134`` no)."""
    text = completion.strip()
    return bool(re.match(rf"{gold}(?!\d)", text))


def fact_recall(model, tokenizer) -> dict[str, dict[str, float]]:
    """kind -> notation -> share of facts completed correctly."""
    from s2lbench.gym.score import greedy_completions

    table: dict[str, dict[str, float]] = {}
    for kind, (operands, answer) in FACTS.items():
        plus_one = kind.startswith("a+b+1")
        table[kind] = {}
        for notation, form in NOTATIONS.items():
            prompts = [form.format(a=a, op=op, b=b) for a, op, b in operands]
            if plus_one:
                prompts = [p.replace(" = ", " + 1 = ") if notation == "spaced" else p.replace("=", "+1=")
                           for p in prompts]
            golds = [answer(a, b) for a, _, b in operands]
            completions = greedy_completions(model, tokenizer, prompts, max_new_tokens=4, desc=kind)
            table[kind][notation] = sum(answered(c, g) for c, g in zip(completions, golds, strict=True)) / len(golds)
    return table


def problem_kind(instruction: str) -> str:
    """``+ carry, 2-digit`` and the like for a gym_arith instruction; ``other`` when it is no sum or difference."""
    found = PROBLEM.search(instruction)
    if not found:
        return "other"
    a, op, b = int(found.group(1)), {"plus": "+", "minus": "-"}.get(found.group(2), found.group(2)), int(found.group(3))
    width = "2-digit" if b >= 10 else "1-digit"
    if op == "+":
        return f"+ {'carry' if a % 10 + b % 10 >= 10 else 'no carry'}, {width}"
    return f"- {'borrow' if a % 10 < b % 10 else 'no borrow'}, {width}"


def accuracy_by_kind(model, tokenizer, rows: list[dict], template: str) -> tuple[dict[str, tuple[int, int]], list]:
    """gym_arith rows right per problem kind (as ``exact_match`` grades them) and the wrong ones."""
    from s2lbench.gym.score import final_answer, greedy_answers

    texts = greedy_answers(model, tokenizer, rows, template=template)
    counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    wrong = []
    for text, row in zip(texts, rows, strict=True):
        kind = problem_kind(row["instruction"])
        ok = final_answer(text) == row["answer"]
        counts[kind][0] += ok
        counts[kind][1] += 1
        if not ok:
            wrong.append((row["instruction"], row["answer"], text))
    return {k: (v[0], v[1]) for k, v in sorted(counts.items())}, wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="model folders (weights and tokenizer)")
    parser.add_argument("--tests", type=Path, help="a gym's tests/ folder: also split gym_arith by kind")
    parser.add_argument("--rows", type=int, default=200, help="gym_arith rows scored (default 200, the grids')")
    parser.add_argument("--template", default="qa", help="prompt template (the v2 gym's: qa)")
    parser.add_argument("--show-wrong", type=int, default=3, help="wrong answers printed per model")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from s2lbench.errors import DataError
    from s2lbench.gym.score import read_test_set

    torch.set_num_threads(args.threads)
    rows = None
    if args.tests:
        path = args.tests / "gym_arith.jsonl"
        if not path.is_file():
            raise SystemExit(f"{path}: no gym_arith test set there (--tests takes a gym's tests/ folder)")
        rows = read_test_set(path)[: args.rows]
    for folder in args.models:
        if not (folder / "config.json").is_file():
            raise SystemExit(f"{folder}: not a model folder (no config.json)")
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
        except (OSError, ValueError, DataError) as e:
            raise SystemExit(f"{folder}: cannot load it: {e}") from None
        print(f"\n{folder}")
        print(f"  {'fact kind':<22} " + " ".join(f"{n:>8}" for n in NOTATIONS))
        for kind, by_notation in fact_recall(model, tokenizer).items():
            print(f"  {kind:<22} " + " ".join(f"{100 * v:>7.0f}%" for v in by_notation.values()))
        if rows is not None:
            counts, wrong = accuracy_by_kind(model, tokenizer, rows, args.template)
            total = sum(c for c, _ in counts.values()), sum(n for _, n in counts.values())
            print(f"  gym_arith exact match {total[0]}/{total[1]} = {100 * total[0] / total[1]:.1f}%: "
                  + ", ".join(f"{kind} {c}/{n}" for kind, (c, n) in counts.items()))
            for instruction, gold, text in wrong[: args.show_wrong]:
                print(f"    wrong: {instruction} (gold {gold}): {text.strip()!r}")


if __name__ == "__main__":
    main()
