"""The experiment config: one YAML file describes a whole grid (pool, proxy, signals, selectors, budgets,
seeds, targets, evaluation). Validated against these dataclasses; unknown keys are errors with a
"did you mean"; ``--set a.b=value`` overrides any key.

Stage-specific blocks (``proxy.train``, ``targets[].train``, ``signals.options``, ``evaluation.generation``,
``pool.gym``) are validated against the dataclass of the component that consumes them when the
experiment is loaded, so a typo fails before any work starts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s2lbench.common.fingerprint import config_hash
from s2lbench.common.typed import apply_overrides, check_keywords, from_dict, load_yaml, suggest
from s2lbench.errors import ConfigError, PluginError
from s2lbench.evaluation.references import REFERENCE_PREFIX, REFERENCES
from s2lbench.generation import GenerationConfig
from s2lbench.grid.pool_base import PoolBaseRecipe, pool_base_name
from s2lbench.gym import GymConfig
from s2lbench.gym.evaluators import gym_evaluators
from s2lbench.plugin_manager import get_hooks
from s2lbench.results.store import FULL
from s2lbench.selection import parse_options
from s2lbench.signals.devsets import DevConfig
from s2lbench.signals.signal_pass import compute_signals
from s2lbench.training.trainer import TrainConfig


@dataclass(frozen=True)
class PoolConfig:
    #: "gym" (build the embedded benchmark), a local .jsonl/.json/.csv file, or hf://owner/name[:split]
    path: str = "gym"
    preset: str | None = None
    columns: dict[str, str] | None = None
    #: GymConfig fields when path is "gym" (e.g. pool_size, seed, defects)
    gym: dict[str, Any] = field(default_factory=dict)
    #: clinical pools: "indiana" or "mimic" build the findings -> impression training split at run time
    clinical: str | None = None


@dataclass(frozen=True)
class ProxyConfig:
    model: str = "gym-proxy"
    tokenizer: str | None = None
    #: TrainConfig fields (schedule, total_steps, learning_rate, save_every / n_checkpoints, ...)
    train: dict[str, Any] = field(default_factory=dict)
    #: bring your own proxy: a folder of HF checkpoints (checkpoint-*/), used instead of training one
    run_dir: str | None = None
    #: bring your own loss matrix (.npy/.pt, examples x checkpoints); skips proxy training and the signal pass
    trajectories: str | None = None


@dataclass(frozen=True)
class SignalsConfig:
    #: keyword options of s2lbench.signals.signal_pass.compute_signals (batch size, max_length, dtype, ...)
    options: dict[str, Any] = field(default_factory=dict)
    #: encoder for the text_embedding signal: "minilm", a hub id or a local path
    text_encoder: str = "minilm"


@dataclass(frozen=True)
class SelectorSpec:
    name: str
    #: the row name in tables (defaults to the name); lets one selector appear with two option sets
    label: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    #: the row of another selector whose selection compute (proxy training + signal pass + selection FLOPs, as
    #: recorded) this row's fine-tune gets as extra optimizer steps on the target: a random baseline at equal
    #: total compute (Yin & Rush, "Compute-constrained data selection", ICLR 2025). See docs/leaderboards.md.
    compute_matched: str | None = None
    #: train this row's proxy with another seed (a second proxy run and signal pass), so a board can tell
    #: selection noise from proxy noise; None: the config's proxy as it is
    proxy_seed: int | None = None
    #: the seeds this row runs (e.g. more for the baselines than for the rest); None: the config's ``seeds``
    seeds: list[int] | None = None

    def __post_init__(self):
        if self.seeds is not None:
            if not self.seeds:
                raise ValueError(f"selector {self.row!r}: seeds is empty; give at least one, or leave it out")
            _refuse_duplicates(f"selector {self.row!r}: seeds", self.seeds)

    @property
    def row(self) -> str:
        return self.label or self.name

    def hashed(self, *, for_cell: bool = False) -> dict[str, Any]:
        """The spec as cell and experiment hashes see it: keys added later (``compute_matched``, ``proxy_seed``,
        ``seeds``) only where they are set, so every row without them keeps the hash it had before they existed.
        A cell is never keyed on its row's ``seeds`` (adding seeds to a row keeps its finished cells)."""
        spec = dataclasses.asdict(self)
        for key in ("compute_matched", "proxy_seed", "seeds"):
            if spec[key] is None or (for_cell and key == "seeds"):
                del spec[key]
        return spec


@dataclass(frozen=True)
class TargetConfig:
    name: str
    model: str
    tokenizer: str | None = None
    train: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluationConfig:
    tasks: list[str] = field(default_factory=list)
    #: where task data lives (default: $S2LBENCH_DATA_DIR or ./data; gym tasks read the gym build folder)
    data_dir: str | None = None
    #: GenerationConfig fields (backend, max_new_tokens, batch_size, ...)
    generation: dict[str, Any] = field(default_factory=dict)
    #: per-task evaluator options, e.g. {gsm8k: {grading: mammoth-v1}}
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: evaluate only the first N items of each task (quick runs); None = all
    limit: int | None = None
    #: task -> in-domain (true) or out-of-domain (false) for leaderboards that split them; a task not named
    #: here takes its evaluator's default (the S2L paper's Table 1 for the math sets: GSM8K, MATH, NumGLUE in)
    in_domain: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self):
        _refuse_duplicates("tasks", self.tasks)
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit: {self.limit} must be >= 1 (or null for every item)")


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    targets: list[TargetConfig]
    selectors: list[SelectorSpec]
    budgets: list[float]
    evaluation: EvaluationConfig
    seeds: list[int] = field(default_factory=lambda: [0])
    pool: PoolConfig = field(default_factory=PoolConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    signals: SignalsConfig = field(default_factory=SignalsConfig)
    #: dev sets for targeted selectors (less, rds): size per task, seed, or a JSONL (s2lbench/signals/devsets.py)
    dev: DevConfig = field(default_factory=DevConfig)
    #: also fine-tune each target on the whole pool (the reference row)
    full_reference: bool = True
    #: rows computed without training, scored like the cells (s2lbench/evaluation/references.py): "constant"
    #: (the pool's most frequent output), "nearest-copy" (the output of the pool example sharing most words)
    references: list[str] = field(default_factory=list)
    #: how ``pool-base:NAME`` models are pre-trained on the pool's inputs (s2lbench/grid/pool_base.py); None:
    #: the defaults, where a model names one
    pool_base: PoolBaseRecipe | None = None
    executor: str = "local"
    #: the executor's own options (``ray``: address, cpus/gpus per task; ``slurm``: partition, gpus, time, ...)
    executor_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if not self.targets:
            raise ValueError("targets: at least one target is needed")
        rows = [s.row for s in self.selectors]
        if len(set(rows)) != len(rows):
            raise ValueError(f"selectors: duplicate row names {rows}; give one a 'label'")
        if not self.selectors and not self.full_reference and not self.references:
            raise ValueError("nothing to run: no selectors, no references and full_reference is false")
        if any(s.proxy_seed is not None for s in self.selectors) and (self.proxy.trajectories or self.proxy.run_dir):
            raise ValueError("selectors[].proxy_seed trains a second proxy; it cannot apply to a given "
                             "proxy.trajectories or proxy.run_dir")
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError(f"targets: duplicate names {names}")
        self._check_names()
        self._check_grid_axes()

    def _check_names(self) -> None:
        _check_name_part("name", self.name)
        for i, target in enumerate(self.targets):
            _check_name_part(f"targets[{i}].name", target.name)
        for i, spec in enumerate(self.selectors):
            _check_name_part(f"selectors[{i}].{'label' if spec.label else 'name'}", spec.row)
            if spec.row == FULL:
                raise ValueError(f"selectors[{i}]: the row name {FULL!r} is the full-data reference's; "
                                 "give the selector another 'label'")
            if spec.row.startswith(REFERENCE_PREFIX):
                raise ValueError(f"selectors[{i}]: row names starting {REFERENCE_PREFIX!r} are reference rows'; "
                                 "give the selector another 'label'")
        _refuse_duplicates("references", self.references)
        for i, name in enumerate(self.references):
            if name not in REFERENCES:
                raise ValueError(f"references[{i}]: unknown reference {name!r}{suggest(name, list(REFERENCES))}; "
                                 f"known: {', '.join(REFERENCES)}")
        self._check_compute_matched()

    def _check_compute_matched(self) -> None:
        rows = {spec.row: spec for spec in self.selectors}
        for i, spec in enumerate(self.selectors):
            named = spec.compute_matched
            if named is None:
                continue
            if named not in rows or named == spec.row:
                others = [r for r in rows if r != spec.row]
                raise ValueError(f"selectors[{i}].compute_matched: {named!r} is not another row of this grid "
                                 f"(rows: {', '.join(others) or 'none'})")
            if rows[named].compute_matched is not None:
                raise ValueError(f"selectors[{i}].compute_matched: {named!r} is itself compute-matched; name a "
                                 "row that selects with its own compute")

    def _check_grid_axes(self) -> None:
        if not self.seeds:
            raise ValueError("seeds: empty; give at least one seed (each seed is one run of every cell)")
        if self.selectors and not self.budgets:
            raise ValueError("budgets: empty; give at least one budget for the selectors (a count or a fraction)")
        _refuse_duplicates("budgets", self.budgets, budget_label)


def budget_label(budget: float) -> str:
    """A budget as cell ids and tables spell it: a count (``400``) or a fraction of the pool (``10%``)."""
    return f"{budget:g}" if budget > 1 else f"{budget * 100:g}%"


@dataclass(frozen=True)
class GridCell:
    """One cell of a grid as its config spells it, before the pool is loaded (budgets as written)."""
    cell_id: str
    target: TargetConfig
    seed: int
    selector: SelectorSpec | None  # None: the full-data reference
    budget: float | None  # None: the whole pool

    @property
    def row(self) -> str:
        return self.selector.row if self.selector else FULL


def grid_cells(config: ExperimentConfig) -> list[GridCell]:
    """Every cell of the grid, in the order a run computes them: per target, seed by seed, the full reference
    first, then each selector at each budget (so a grid stopped part-way has whole seeds, reference included).
    A row with its own ``seeds`` runs at those (seeds beyond the config's come after, without the reference)."""
    out = []
    row_seeds = [spec.seeds for spec in config.selectors if spec.seeds is not None]
    seeds = list(dict.fromkeys([*config.seeds, *(seed for listed in row_seeds for seed in listed)]))
    for target in config.targets:
        for seed in seeds:
            if config.full_reference and seed in config.seeds:
                out.append(GridCell(f"{target.name}__{FULL}__100%__s{seed}", target, seed, None, None))
            for spec in config.selectors:
                if seed not in (config.seeds if spec.seeds is None else spec.seeds):
                    continue
                for budget in config.budgets:
                    out.append(GridCell(f"{target.name}__{spec.row}__{budget_label(budget)}__s{seed}", target,
                                        seed, spec, budget))
    return out


def _hashed_evaluation(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The evaluation block as hashed: keys added later are left out while they hold their default, so a
    results folder made before them is still recognised as done."""
    return {k: v for k, v in evaluation.items() if not (k == "in_domain" and not v)}


def experiment_hash(config: ExperimentConfig) -> str:
    """The whole experiment's hash, recorded in the run folder's config.json."""
    # where cells run does not change what they compute: every executor hashes as `local` did before
    # executors had options, so existing configs keep their hashes
    hashed = {k: v for k, v in dataclasses.asdict(config).items()
              if k != "executor_options" and not (k in ("references", "pool_base") and not v)}
    return config_hash({**hashed, "executor": "local", "evaluation": _hashed_evaluation(hashed["evaluation"]),
                        "selectors": [spec.hashed() for spec in config.selectors]})


def cell_hash(config: ExperimentConfig, selector: SelectorSpec | None, budget: int, seed: int, target: TargetConfig,
              selector_version: dict[str, int] | None = None, reads_dev: bool = False) -> str:
    """What a finished cell is recognised by: everything in the config that can change its scores.
    ``selector_version``: ``{"selector_version": N}`` for a selector whose picks changed, else empty;
    ``reads_dev``: the selector reads the dev set, so the dev block changes its subset."""
    spec = {"pool": dataclasses.asdict(config.pool), "proxy": dataclasses.asdict(config.proxy),
            "signals": dataclasses.asdict(config.signals),
            "evaluation": _hashed_evaluation(dataclasses.asdict(config.evaluation)),
            "selector": selector.hashed(for_cell=True) if selector else FULL,
            "budget": budget, "seed": seed, "target": dataclasses.asdict(target), **(selector_version or {})}
    if reads_dev:
        spec["dev"] = dataclasses.asdict(config.dev)
    recipe = pool_base_recipe(config)
    if recipe is not None:  # only where a model starts from a pool base: every other config keeps its hashes
        spec["pool_base"] = dataclasses.asdict(recipe)
    return config_hash(spec)


def pool_base_recipe(config: ExperimentConfig) -> PoolBaseRecipe | None:
    """The recipe of the config's ``pool-base:NAME`` models (its ``pool_base`` block, else the defaults); None
    when no model starts from a pool base."""
    models = [config.proxy.model, *(t.model for t in config.targets)]
    if not any(pool_base_name(m) for m in models):
        return None
    return config.pool_base or PoolBaseRecipe()


def reference_cell_id(target: TargetConfig, row: str, seed: int) -> str:
    """A reference row's cell: no budget (nothing is trained), one seed (its answers are deterministic)."""
    return f"{target.name}__{row}__0__s{seed}"


def reference_cell_hash(config: ExperimentConfig, name: str) -> str:
    """What a reference cell's scores depend on: the pool, the evaluation and the reference's name."""
    return config_hash({"pool": dataclasses.asdict(config.pool),
                        "evaluation": _hashed_evaluation(dataclasses.asdict(config.evaluation)), "reference": name})


def chosen_by(cell_id: str, only: list[str] | None) -> bool:
    """``--only``: a cell is run when its id contains one of the patterns (every cell when there are none)."""
    return not only or any(pattern in cell_id for pattern in only)


def _check_name_part(where: str, name: str) -> None:
    """Target names and selector rows make up cell ids (``target__row__budget__sSEED``), which name files."""
    if not name.strip():
        raise ValueError(f"{where}: empty; give a name")
    if "/" in name or "\\" in name:
        raise ValueError(f"{where}: {name!r} contains a path separator; it names folders of the results")
    if "__" in name:
        raise ValueError(f"{where}: {name!r} contains '__', which separates the parts of a cell id")


def _refuse_duplicates(where: str, values: list[Any], label: Any = str) -> None:
    seen: dict[str, int] = {}
    for i, value in enumerate(values):
        key = label(value)
        if key in seen:
            raise ValueError(f"{where}[{i}]: {value!r} repeats {where}[{seen[key]}]")
        seen[key] = i


def _normalise(data: dict[str, Any]) -> dict[str, Any]:
    """Allow the short forms `selectors: [s2l, random]` and `budgets: [0.1, "30000"]`."""
    data = dict(data)
    if isinstance(data.get("selectors"), list):
        data["selectors"] = [{"name": s} if isinstance(s, str) else s for s in data["selectors"]]
    return data


def parse_experiment(data: dict[str, Any], origin: str = "config", hooks: Any = None) -> ExperimentConfig:
    try:
        config = from_dict(ExperimentConfig, _normalise(data))
    except ConfigError as e:
        raise ConfigError(f"{origin}: {e}") from None
    validate_components(config, origin, hooks)
    return config


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    data = apply_overrides(load_yaml(path), overrides or [])
    return parse_experiment(data, origin=str(path))


def validate_components(config: ExperimentConfig, origin: str, hooks: Any = None) -> None:
    """Check every stage block against its component's own dataclass, and every name against the plugins."""
    def named(lookup, where):
        try:
            return lookup()
        except PluginError as e:
            raise ConfigError(f"{origin}: {where}: {e}") from None

    def check(cls, data, where):
        try:
            from_dict(cls, data, where=where)
        except ConfigError as e:
            raise ConfigError(f"{origin}: {e}") from None

    check(TrainConfig, {"model": config.proxy.model, **config.proxy.train}, "proxy.train")
    for i, target in enumerate(config.targets):
        check(TrainConfig, {"model": target.model, **target.train}, f"targets[{i}].train")
    check(GenerationConfig, config.evaluation.generation, "evaluation.generation")
    if config.pool.path == "gym":
        check(GymConfig, config.pool.gym, "pool.gym")
    try:
        check_keywords(compute_signals, config.signals.options, "signals.options", skip=SIGNALS_SET_BY_THE_RUNNER)
    except ConfigError as e:
        raise ConfigError(f"{origin}: {e}") from None
    hooks = hooks or get_hooks()
    for i, spec in enumerate(config.selectors):
        selector = named(lambda spec=spec: hooks.selector(spec.name), f"selectors[{i}].name")
        try:
            parse_options(selector, spec.options)
        except ConfigError as e:
            raise ConfigError(f"{origin}: {e}") from None
    executors = hooks.executors()
    if config.executor in executors:  # an unknown name is the preflight's to report, with the other problems
        try:
            executors[config.executor].obj.parse_options(config.executor_options)
        except ConfigError as e:
            raise ConfigError(f"{origin}: {e}") from None
    for i, task in enumerate(config.evaluation.tasks):
        # gym sets ("gym" = all of them, "gym-<set>" = one) are only known once the gym is built
        named(lambda task=task: hooks.evaluator("gym" if task.startswith("gym-") else task), f"evaluation.tasks[{i}]")
    try:
        check_task_keyed_blocks(config.evaluation, hooks)
    except ConfigError as e:
        raise ConfigError(f"{origin}: {e}") from None


#: compute_signals arguments the runner passes itself (a config setting them would be overridden or clash)
SIGNALS_SET_BY_THE_RUNNER = ("pool", "checkpoints", "out_dir", "dev", "progress")


def check_task_keyed_blocks(evaluation: EvaluationConfig, hooks: Any) -> None:
    """``task_options`` and ``in_domain`` name tasks of ``tasks`` (a typo would be ignored silently), and each
    task's options fit its evaluator."""
    gym_sets = any(t == "gym" or t.startswith("gym-") for t in evaluation.tasks)
    for block in ("task_options", "in_domain"):
        for task in getattr(evaluation, block):
            if task not in evaluation.tasks and not (block == "in_domain" and gym_sets and task.startswith("gym-")):
                raise ConfigError(f"unknown key 'evaluation.{block}.{task}': not one of evaluation.tasks"
                                  f"{suggest(task, list(evaluation.tasks))}")
    for task, options in evaluation.task_options.items():
        where = f"evaluation.task_options.{task}"
        if task == "gym" or task.startswith("gym-"):
            check_keywords(gym_evaluators, options, where, skip=("gym_dir",))
        else:
            cls = hooks.evaluator(task)
            from_dict(cls.Options, options, where=where)
