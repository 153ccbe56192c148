"""Dev sets for the targeted selectors (LESS, RDS+): a few examples per evaluation task, never test items.

A dev set is a ``Pool`` whose examples' ``source`` is the task they stand for, so a signal pass can embed
it or take its gradients like any pool, and selectors group it by task. Where each task's dev set comes
from (``dev:`` in an experiment config, ``DevConfig``):

- gym tasks: ``s2lbench.gym.build.generate_dev_sets`` draws ``size`` problems per gym test set from that
  test set's generator, disjoint from the pool and from every test set;
- math tasks (gsm8k, math, svamp, ...): one shared held-out slice of GSM8K *train*, the last ``size`` rows
  of ``train/gsm8k_train.jsonl`` in the data folder (question -> worked answer), never a test item. MathInstruct
  contains GSM8K-train-derived rows, so these dev examples may resemble pool rows; that is LESS's setting too
  (its dev sets are few-shot examples from the tasks' own training splits);
- any task: ``dev.path``, a JSONL file of ``{"task", "instruction", "output"}`` rows (``input`` optional).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from s2lbench.common.files import iter_jsonl
from s2lbench.errors import DataError
from s2lbench.gym.build import generate_dev_sets
from s2lbench.pool.records import Pool, SFTExample

GSM8K_TRAIN = "train/gsm8k_train.jsonl"
MATH_TASKS = frozenset({"gsm8k", "math", "numglue", "svamp", "deepmind", "simuleq", "aqua", "mathqa", "sat",
                        "mmlu-math"})


@dataclass(frozen=True)
class DevConfig:
    #: dev examples per task (LESS uses a handful of few-shot examples per task; RDS+ likewise)
    size: int = 50
    #: seed of the gym's dev draw (math tasks use a fixed slice and ignore it)
    seed: int = 0
    #: a JSONL of {"task", "instruction", "output"} rows used instead of the built-in dev splits
    path: str | None = None
    #: the GSM8K train file for math tasks, relative to the data folder
    gsm8k_train: str = GSM8K_TRAIN

    def __post_init__(self):
        if self.size < 1:
            raise ValueError("dev.size must be >= 1")


def read_dev_file(path: str | Path) -> Pool:
    path = Path(path)
    if not path.exists():
        raise DataError("dev set file not found", path=path)
    examples = []
    for line_no, row in iter_jsonl(path, "dev set file"):
        missing = [k for k in ("task", "instruction", "output") if not isinstance(row.get(k), str)]
        if missing:
            raise DataError(f"dev row needs string field(s) {', '.join(missing)}", path=path, line=line_no)
        examples.append(SFTExample(id=f"dev-{len(examples):05d}", instruction=row["instruction"],
                                   input=row.get("input", "") or "", output=row["output"], source=row["task"]))
    if not examples:
        raise DataError("dev set file has no rows", path=path)
    return Pool(examples, name="dev")


def gsm8k_dev_slice(data_dir: Path, size: int, relative: str = GSM8K_TRAIN) -> list[SFTExample]:
    """The last ``size`` rows of GSM8K train as (question -> worked answer) examples."""
    path = Path(data_dir) / relative
    if not path.exists():
        raise DataError(f"math dev sets are a held-out slice of GSM8K train; {relative} is missing", path=path)
    rows = list(iter_jsonl(path, "GSM8K train"))
    if len(rows) < size:
        raise DataError(f"GSM8K train has {len(rows)} rows, fewer than dev.size = {size}", path=path)
    out = []
    for line_no, row in rows[-size:]:
        try:
            out.append(SFTExample(id=f"gsm8k-train-{line_no}", instruction=row["question"], output=row["answer"]))
        except KeyError as e:
            raise DataError(f"not a GSM8K row (no {e})", path=path, line=line_no) from None
    return out


def build_dev_set(tasks: list[str], config: DevConfig, *, data_dir: Path, gym_dir: Path | None = None,
                  gym_config=None, pool: Pool | None = None) -> Pool:
    """The dev set of ``tasks`` (names as the runner plans them: gym set names, or evaluator names)."""
    if config.path:
        dev = read_dev_file(config.path)
        unknown = sorted(set(dev.sources) - set(tasks))
        if unknown:
            raise DataError(f"dev rows name task(s) {', '.join(unknown)} that the run does not evaluate "
                            f"({', '.join(tasks)})", path=config.path)
        return dev
    examples: list[SFTExample] = []
    gym_sets = None
    for task in tasks:
        if task in MATH_TASKS:
            rows = gsm8k_dev_slice(data_dir, config.size, config.gsm8k_train)
        else:
            if gym_config is None or pool is None:
                raise DataError(f"no built-in dev split for task {task!r}; give dev.path (a JSONL of task, "
                                "instruction, output rows)")
            if gym_sets is None:
                gym_sets = generate_dev_sets(gym_config, pool, config.size, config.seed)
            name = task if task in gym_sets else task.removeprefix("gym-")  # the runner plans "gym-<set>"
            if name not in gym_sets:
                raise DataError(f"no gym dev split for task {task!r}; the gym has {', '.join(gym_sets)}")
            rows = [SFTExample(id=f"{name}-dev-{i}", instruction=r["instruction"], output=r["output"])
                    for i, r in enumerate(gym_sets[name])]
        examples += [SFTExample(id=f"dev-{task}-{i:04d}", instruction=ex.instruction, input=ex.input,
                                output=ex.output, source=task) for i, ex in enumerate(rows)]
    return Pool(examples, name="dev")
