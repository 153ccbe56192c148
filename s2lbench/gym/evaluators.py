"""The gym's test sets as one evaluator family: ``gym`` parametrised by ``Options.set``.

The gym build folder (``s2lbench gym build --out DIR``) holds ``tests/<set>.jsonl`` with rows
``{"instruction", "answer"}`` and ``gym.json`` listing the sets with an in-domain flag. Which sets exist is
only known once a gym is built, so a single ``gym`` class is registered and the set is an option
(``--option set=NAME``); ``gym_evaluators(gym_dir)`` returns one configured evaluator per listed set.
Grading: the final answer is extracted with MAmmoTH's numeric rule and compared by exact match after the
same zero-normalisation on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from s2lbench.common.files import read_json, read_json_rows
from s2lbench.common.typed import from_dict
from s2lbench.errors import ConfigError, DataError
from s2lbench.evaluation import ACCURACY, EvalItem, Evaluator, SampleResult
from s2lbench.evaluation.grading import DEFAULT_GRADING, delete_extra_zero, grade
from s2lbench.pool.prompts import NEXT_PROMPT, TEMPLATES


@dataclass(frozen=True)
class GymSet:
    name: str
    in_domain: bool


def _as_set(entry: Any, where: Path) -> GymSet:
    if isinstance(entry, str):
        return GymSet(entry, False)
    if isinstance(entry, dict) and isinstance(entry.get("name"), str):
        flag = entry.get("in_domain", entry.get("domain") == "in")
        return GymSet(entry["name"], bool(flag))
    raise DataError(f"cannot read test-set entry {entry!r}", path=where)


def gym_template(gym_dir: Path | str) -> str:
    """The prompt template the gym's rows are trained with (gym.json "template"; builds before it: alpaca)."""
    manifest = Path(gym_dir) / "gym.json"
    data = read_json(manifest, "gym manifest") if manifest.is_file() else {}
    template = data.get("template", "alpaca") if isinstance(data, dict) else "alpaca"
    if template not in TEMPLATES:
        raise DataError(f"unknown prompt template {template!r} (known: {', '.join(TEMPLATES)})", path=manifest)
    return template


def gym_test_sets(gym_dir: Path | str) -> list[GymSet]:
    """The sets ``gym.json`` lists (under "test_sets", "tests" or "sets": a list of {"name", "in_domain"}
    or a mapping name -> {"in_domain": ...}). ``gym build`` writes gym.json last, so a folder without it is
    an incomplete (interrupted) build and is refused."""
    gym_dir = Path(gym_dir)
    manifest = gym_dir / "gym.json"
    if not gym_dir.is_dir():
        raise DataError("gym folder not found (build one with `s2lbench gym build --out DIR`)", path=gym_dir)
    if not manifest.is_file():
        raise DataError("no gym.json: not a complete gym build folder (interrupted?); rebuild it with "
                        "`s2lbench gym build --out DIR`", path=gym_dir)
    data = read_json(manifest, "gym manifest")
    listing = next((data[k] for k in ("test_sets", "tests", "sets") if isinstance(data, dict) and k in data), data)
    if isinstance(listing, dict):
        return [GymSet(name, bool(v.get("in_domain")) if isinstance(v, dict) else bool(v))
                for name, v in listing.items()]
    if isinstance(listing, list):
        return [_as_set(entry, manifest) for entry in listing]
    raise DataError("expected a list of test sets under 'test_sets'", path=manifest)


@dataclass(frozen=True)
class GymOptions:
    set: str = ""
    grading: Literal["mammoth-v1", "s2lbench"] = DEFAULT_GRADING


class GymEvaluator(Evaluator):
    name = "gym"
    description = "a gym test set (Options.set), exact match on the final answer"
    metrics = (ACCURACY,)
    template = "alpaca"
    max_new_tokens = 256
    stop = ("### Instruction",)
    Options = GymOptions

    def __init__(self, options: GymOptions | None = None):
        super().__init__(options)
        #: from gym.json once a set is loaded (or set by ``gym_evaluators``); None while unknown
        self.in_domain: bool | None = None

    def load(self, data_dir: Path | str) -> list[EvalItem]:
        data_dir = Path(data_dir)
        sets = gym_test_sets(data_dir)
        names = [s.name for s in sets]
        if not self.options.set:
            raise ConfigError(f"gym: choose a test set with option set=NAME; {data_dir} has: {', '.join(names)}")
        if Path(self.options.set).name != self.options.set or self.options.set.startswith("."):
            raise ConfigError(f"gym: option set={self.options.set!r} must be a test-set name (one of "
                              f"{', '.join(names)}), not a path")
        path = data_dir / "tests" / f"{self.options.set}.jsonl"
        if self.options.set not in names:
            raise DataError(f"no test set {self.options.set!r} in gym.json (sets: {', '.join(names)})",
                            path=data_dir / "gym.json")
        if not path.is_file():
            raise DataError(f"no test set {self.options.set!r} (sets: {', '.join(names)})", path=path)
        self.in_domain = next(s.in_domain for s in sets if s.name == self.options.set) \
            if self.options.set in names else None
        self._use_template(gym_template(data_dir))
        items = []
        for i, row in enumerate(read_json_rows(path)):
            if not isinstance(row, dict) or "instruction" not in row or "answer" not in row:
                raise DataError("expected an object with 'instruction' and 'answer'", path=path, line=i + 1)
            items.append(EvalItem(i, str(row["instruction"]), delete_extra_zero(str(row["answer"]).strip()),
                                  str(row.get("input", ""))))
        return items

    def _use_template(self, template: str) -> None:
        # the gym's rows are prompted as gym.json says; the class default stays alpaca for older builds
        self.template, self.stop = template, (NEXT_PROMPT[template],)

    def score(self, item: EvalItem, output: str) -> SampleResult:
        graded = grade("gym", output, item.reference, self.options.grading)
        return SampleResult(index=item.index, prompt=self.prompt(item), output=output, reference=item.reference,
                            scores={"accuracy": float(graded.correct)}, extracted=graded.extracted)


def gym_evaluators(gym_dir: Path | str, grading: str = DEFAULT_GRADING) -> dict[str, tuple[GymEvaluator, bool]]:
    """One configured evaluator per test set of a built gym: ``{"gym-<set>": (evaluator, in_domain)}``."""
    grading = from_dict(GymOptions, {"grading": grading}, where="gym").grading  # a value outside the Literal is named
    family = {}
    template = gym_template(gym_dir)
    for s in gym_test_sets(gym_dir):
        evaluator = GymEvaluator(GymOptions(set=s.name, grading=grading))
        evaluator.in_domain = s.in_domain
        evaluator._use_template(template)
        family[f"gym-{s.name}"] = (evaluator, s.in_domain)
    return family
