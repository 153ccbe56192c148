"""The S2L paper's six math test sets (MAmmoTH's layout): GSM8K, MATH, NumGLUE, SVAMP, DeepMind, SimulEq.

``load(data_dir)`` reads MAmmoTH's files from ``data_dir`` or ``data_dir/eval`` (``gsm8k.jsonl``,
``math.jsonl`` or ``MATH.json``, ``numglue.json``, ``svamp.json`` or ``SVAMP.json``, ``deepmind.json``,
``simuleq.json``). ``load("hf://")`` loads the set from its Hugging Face hub id instead, where one exists
(GSM8K, MATH, SVAMP). Grading is exact match as MAmmoTH v1 defines it (``s2lbench.evaluation.grading``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

from s2lbench import hookimpl
from s2lbench.common.files import read_json_rows
from s2lbench.errors import DataError
from s2lbench.evaluation import ACCURACY, EvalItem, Evaluator, SampleResult
from s2lbench.evaluation.grading import (
    DEFAULT_GRADING,
    MathGold,
    delete_extra_zero,
    grade,
    last_boxed,
    math_gold,
)
from s2lbench.evaluation.grading.sandbox import pot_to_text

log = logging.getLogger(__name__)

#: MAmmoTH v1's stop strings for open-ended math generation
MAMMOTH_STOP = ("### Instruction", "Instruction", "Response", "Question", "USER", "ASSISTANT")
POT_SUFFIX = " Let's write a program."
HUB_PREFIX = "hf://"


@dataclass(frozen=True)
class MathOptions:
    #: "mammoth-v1" reproduces MAmmoTH v1 exactly; "s2lbench" fixes its plain errors (see docs/evaluation.md)
    grading: Literal["mammoth-v1", "s2lbench"] = DEFAULT_GRADING
    #: "cot": the question as is; "pot": MAmmoTH's " Let's write a program." appended; "hybrid": PoT first and,
    #: where the program fails or prints nothing (no answer extracted), the question re-asked without the suffix
    #: (MAmmoTH's ``--stem_flan_type pot_prompt --cot_backup``). In every mode an output containing ``print(``
    #: is executed in the sandbox and graded as "The answer is <stdout>", as v1 does.
    prompting: Literal["cot", "pot", "hybrid"] = "cot"
    #: strip Markdown code fences from a program before running it (the stored v1 code does not; see docs)
    strip_fences: bool = True


@lru_cache(maxsize=8192)
def _program_text(output: str, strip_fences: bool, module_name: str) -> str:
    return pot_to_text(output, strip_fences=strip_fences, module_name=module_name)


#: what a test file's fields may hold: questions are text, golds text or a number (SVAMP, NumGLUE, SimulEq)
TEXT = (str,)
GOLD = (str, int, float)


def _field(row: Any, key: str, path: Path, index: int, kinds: tuple[type, ...] = GOLD) -> Any:
    if not isinstance(row, dict):
        raise DataError(f"item {index} is a {type(row).__name__}, not an object", path=path)
    if key not in row or row[key] is None:
        raise DataError(f"item {index} has no {key!r}", path=path, field=key)
    value = row[key]
    if not isinstance(value, kinds) or isinstance(value, bool):
        expected = {TEXT: "a string", GOLD: "a string or a number"}.get(kinds, " or ".join(k.__name__ for k in kinds))
        raise DataError(f"item {index}: {key!r} must be {expected}, got {type(value).__name__} {value!r:.60}",
                        path=path, field=key)
    return value


class MathEvaluator(Evaluator):
    """Shared behaviour of the six sets: a file, a row parser, an answer style, exact-match accuracy."""

    metrics = (ACCURACY,)
    template = "alpaca"
    #: MAmmoTH's protocol: ``run_open.py --model_max_length 1500`` (README), which its transformers path passes
    #: as max_new_tokens (its vLLM path caps at 1024)
    max_new_tokens = 1500
    stop = MAMMOTH_STOP
    Options = MathOptions
    in_domain: ClassVar[bool] = False
    style: ClassVar[str]
    files: ClassVar[tuple[str, ...]]
    hub_id: ClassVar[str | None] = None

    def find_file(self, data_dir: Path) -> Path:
        data_dir = Path(data_dir)
        for folder in (data_dir, data_dir / "eval"):
            for name in self.files:
                if (folder / name).is_file():
                    return folder / name
        raise DataError(f"no {self.name} test file ({' or '.join(self.files)}) in {data_dir} or {data_dir / 'eval'}",
                        path=data_dir)

    def load(self, data_dir: Path | str) -> list[EvalItem]:
        if str(data_dir).startswith(HUB_PREFIX):
            rows = self.hub_rows()
            path = Path(str(data_dir))
        else:
            path = self.find_file(Path(data_dir))
            rows = read_json_rows(path)
        if not rows:
            raise DataError(f"the {self.name} test file has no items", path=path)
        for i, row in enumerate(rows):  # before any parse_row, which may look inside a row
            if not isinstance(row, dict):
                raise DataError(f"item {i} is a {type(row).__name__}, not an object", path=path)
        items = [self.parse_row(i, row, path) for i, row in enumerate(rows)]
        log.info("%s: %d items from %s", self.name, len(items), path)
        return items

    def parse_row(self, index: int, row: dict[str, Any], path: Path) -> EvalItem:
        """One item from a row; the default reads MAmmoTH's plain ``question`` / ``answer`` layout."""
        return EvalItem(index, _field(row, "question", path, index, TEXT), str(_field(row, "answer", path, index)))

    def hub_rows(self) -> list[dict[str, Any]]:
        raise DataError(f"{self.name} has no Hugging Face hub copy in MAmmoTH's form; pass the folder holding "
                        f"{' or '.join(self.files)}", path=HUB_PREFIX)

    def prompt(self, item: EvalItem) -> str:
        """The first attempt's prompt: with the PoT suffix under "pot" and "hybrid"."""
        if self.options.prompting in ("pot", "hybrid"):
            item = EvalItem(item.index, item.instruction + POT_SUFFIX, item.reference, item.input, item.meta)
        return super().prompt(item)

    def _graded(self, item: EvalItem, output: str):
        module_name = "utils" if self.options.grading == "mammoth-v1" else "__main__"
        text = _program_text(output, self.options.strip_fences, module_name) if "print(" in output else output
        return grade(self.style, text, item.reference, self.options.grading,
                     multiple_choice=bool(item.meta.get("multiple_choice")))

    def backup_prompt(self, item: EvalItem, output: str) -> str | None:
        """Hybrid decoding: the chain-of-thought prompt when the PoT attempt gave no answer, else None."""
        if self.options.prompting != "hybrid" or self._graded(item, output).extracted != "":
            return None
        return super().prompt(item)

    def score(self, item: EvalItem, output: str, backup: str | None = None) -> SampleResult:
        graded = self._graded(item, output)
        used_backup = backup is not None and self.options.prompting == "hybrid" and graded.extracted == ""
        if used_backup:
            graded = self._graded(item, backup)
        return SampleResult(index=item.index, prompt=self.prompt(item), output=output, reference=item.reference,
                            scores={"accuracy": float(graded.correct)}, extracted=graded.extracted,
                            backup_output=backup if used_backup else None)


class GSM8K(MathEvaluator):
    name = "gsm8k"
    description = "GSM8K test (1,319 grade-school word problems); gold after '####'"
    style = "gsm8k"
    files = ("gsm8k.jsonl", "gsm8k.json")
    in_domain = True
    hub_id = "openai/gsm8k"

    def parse_row(self, index, row, path):
        answer = _field(row, "answer", path, index, TEXT)
        gold = delete_extra_zero(answer.split("#### ")[-1].replace(",", "").strip())
        return EvalItem(index, _field(row, "question", path, index, TEXT).strip(), gold)

    def hub_rows(self):
        from datasets import load_dataset

        return list(load_dataset(self.hub_id, "main", split="test"))


class MATH(MathEvaluator):
    name = "math"
    description = "MATH test (5,000 competition problems); boxed answers, LaTeX-normalised, numeric fallback"
    style = "math"
    files = ("math.jsonl", "MATH.json")
    in_domain = True
    hub_id = "EleutherAI/hendrycks_math"
    subjects = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra", "number_theory",
                "prealgebra", "precalculus")

    def parse_row(self, index, row, path):
        if "problem" in row:  # the Hendrycks layout: raw boxed answer (or the solution to take it from)
            raw = row.get("answer")
            if raw is None:
                raw = last_boxed(_field(row, "solution", path, index, TEXT))
            question = _field(row, "problem", path, index, TEXT)
            meta = {k: row[k] for k in ("subject", "level", "type", "unique_id") if k in row}
            return EvalItem(index, str(question), math_gold(str(raw), self.options.grading), meta=meta)
        answer = _field(row, "answer", path, index, (list, *GOLD))  # MAmmoTH's MATH.json: [normalised string, number or null]
        if not isinstance(answer, list) or len(answer) != 2:
            raise DataError(f"item {index}: MATH gold must be a [string, number] pair", path=path, field="answer")
        number = answer[1] if isinstance(answer[1], (int, float)) and not isinstance(answer[1], bool) else None
        return EvalItem(index, _field(row, "question", path, index, TEXT), MathGold(str(answer[0]), number))

    def hub_rows(self):
        from datasets import load_dataset

        rows = []
        for subject in self.subjects:
            rows.extend(load_dataset(self.hub_id, subject, split="test"))
        return rows


class NumGLUE(MathEvaluator):
    name = "numglue"
    description = "NumGLUE (1,042 items: numbers, A/B choices, a few words)"
    style = "numglue"
    in_domain = True  # MathInstruct trains on NumGLUE; S2L's Table 1 and MAmmoTH count it in-domain
    files = ("numglue.json",)

    def parse_row(self, index, row, path):
        question = _field(row, "question", path, index, TEXT)
        return EvalItem(index, question, str(_field(row, "answer", path, index)),
                        meta={"type": row.get("type"), "multiple_choice": "Answer Choices" in question})


class SVAMP(MathEvaluator):
    name = "svamp"
    description = "SVAMP (1,000 one-unknown word problems); question = Body + ' ' + Question"
    style = "svamp"
    files = ("svamp.json", "SVAMP.json")
    hub_id = "ChilleD/SVAMP"

    def parse_row(self, index, row, path):
        question = (_field(row, "Body", path, index, TEXT).strip() + " "
                    + _field(row, "Question", path, index, TEXT).strip())
        gold = str(_field(row, "Answer", path, index))
        if gold.endswith(".0"):
            gold = gold[:-2]
        return EvalItem(index, question, delete_extra_zero(gold), meta={"id": row.get("ID")})

    def hub_rows(self):
        from datasets import load_dataset

        return list(load_dataset(self.hub_id, split="train")) + list(load_dataset(self.hub_id, split="test"))


class DeepMind(MathEvaluator):
    name = "deepmind"
    description = "DeepMind Mathematics (1,000 items, MAmmoTH's sample)"
    style = "deepmind"
    files = ("deepmind.json",)


class SimulEq(MathEvaluator):
    name = "simuleq"
    description = "SimulEq (514 simultaneous-equation word problems; one numeric gold each)"
    style = "simuleq"
    files = ("simuleq.json",)


MATH_TASKS = (GSM8K, MATH, NumGLUE, SVAMP, DeepMind, SimulEq)


@hookimpl
def register_evaluators(register):
    for task in MATH_TASKS:
        register(task)
