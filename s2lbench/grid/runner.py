"""The runner: one experiment config -> every (selector x budget x seed x target) cell trained, evaluated, stored.

It calls each stage of the data path in order; what a stage is keyed on and what it computes live with the
stage (``gym/stage.py``, ``training/stage.py``, ``signals/stage.py``, ``selection/stage.py``,
``evaluation/stage.py``), and every stage's output is a content-addressed folder (``stages.py``):

    pool -> proxy (train with checkpoints) -> signals (one pass per checkpoint) [-> text-embedding]
         -> selection (per selector x budget x seed) -> finetune (per target x subset x seed)
         -> generation + evaluation (cached per model x task x decoding) -> scores (results store)

Cells share what they can (one proxy and one signal pass for all selectors; one fine-tune per distinct
subset), nothing finished is recomputed, and a failing cell is recorded and the grid goes on.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import traceback
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from s2lbench.common import console, settings
from s2lbench.common.atomic import write_json
from s2lbench.common.fingerprint import file_fingerprint, ids_hash
from s2lbench.common.provenance import git_commit, package_versions
from s2lbench.common.typed import from_dict
from s2lbench.errors import ConfigError, S2LBenchError
from s2lbench.evaluation.references import reference_outputs, reference_row
from s2lbench.evaluation.stage import TaskPlan, TaskResult, evaluate_task
from s2lbench.executors.base import CellTask, Grid
from s2lbench.executors.isolation import run_isolated
from s2lbench.grid import pool_base, pool_tokenizer
from s2lbench.grid.experiment import (
    ExperimentConfig,
    SelectorSpec,
    TargetConfig,
    cell_hash,
    chosen_by,
    experiment_hash,
    grid_cells,
    pool_base_recipe,
    reference_cell_hash,
    reference_cell_id,
)
from s2lbench.grid.stages import StageStore
from s2lbench.gym import stage as gym_stage
from s2lbench.gym.bases import base_model_name
from s2lbench.gym.build import GymConfig
from s2lbench.gym.defects import PLANTED_DEFECTS, PlantedDefects, read_defects
from s2lbench.gym.evaluators import gym_evaluators
from s2lbench.plugin_manager import Hooks, get_hooks
from s2lbench.pool.loaders import load_local, load_pool
from s2lbench.pool.radiology import INDIANA_FILE, radiology_train_pool
from s2lbench.pool.records import Pool
from s2lbench.results.store import Cell, CellBusy, ResultRow, ResultsStore, record_invocation
from s2lbench.selection import parse_options, resolve_budget
from s2lbench.selection import stage as selection_stage
from s2lbench.signals import stage as signals_stage
from s2lbench.signals.devsets import build_dev_set
from s2lbench.signals.gradients import keep_adam_state
from s2lbench.signals.signalset import GRADIENTS, LOSS, TEXT_EMBEDDING, SignalSet
from s2lbench.signals.stage import DEV_SIGNALS, PROXY_SIGNALS
from s2lbench.training import stage as training_stage
from s2lbench.training.trainer import TrainConfig, trained_environments

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CellSpec:
    cell_id: str
    row: str
    selector: SelectorSpec | None  # None: the full-data reference
    budget: int
    fraction: float
    seed: int
    target: TargetConfig


@dataclass
class RunSummary:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def cell_label(cell: CellSpec) -> str:
    """A cell as a user names it: ``target-l · s2l · 10% · seed 0``."""
    return f"{cell.target.name} · {cell.row} · {100 * cell.fraction:.3g}% · seed {cell.seed}"


class Runner:
    def __init__(self, config: ExperimentConfig, out_dir: str | Path, hooks: Hooks | None = None, *,
                 results: bool = True):
        """``results=False``: the data side only (pool, proxy, signals, selection; ``s2lbench subset``): no
        results store and no config.json in ``out_dir``, which then holds the stage cache alone."""
        self.config = config
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.hooks = hooks or get_hooks()
        self.stages = StageStore(self.out / "stages")
        #: the stage cache's path as spelled and as resolved: both may appear in stage specs (see _portable)
        self._stage_roots = tuple(dict.fromkeys((str(self.stages.root), str(self.stages.root.resolve()))))
        self.config_hash = experiment_hash(config)
        if results:
            self.store = ResultsStore(self.out)
            write_json(self.out / "config.json", {"config": dataclasses.asdict(config),
                                                  "config_hash": self.config_hash,
                                                  "versions": package_versions(), "git_commit": git_commit()})
        self._pool: Pool | None = None
        #: the built gym (pool.path: gym): its config, folder and stage key; set when the pool loads
        self._gym_config: GymConfig | None = None
        self._gym_dir: Path | None = None
        self._gym_key: str | None = None
        #: the built gym's planted defects (its defects.json), read once with the shared stages; False: none here
        self._planted: PlantedDefects | bool | None = None
        #: per proxy seed (None: the config's proxy; else a row's ``proxy_seed``), filled by signals():
        self._signals: dict[int | None, SignalSet] = {}
        self._tasks: list[TaskPlan] | None = None
        #: the proxy run whose checkpoints gave the proxy signals
        self._proxy_run_dirs: dict[int | None, Path] = {}
        #: signal name -> (key of what it was computed from, cost of computing it)
        self._signal_sources: dict[int | None, dict[str, tuple[str, dict[str, float]]]] = {}

    # --- 1. the pool ----------------------------------------------------------------------------------
    @property
    def pool(self) -> Pool:
        if self._pool is None:
            self._pool = self._load_pool()
        return self._pool

    @property
    def gym_dir(self) -> Path | None:
        """The built gym's folder (pool.path: gym), once the pool has loaded; else None."""
        return self._gym_dir

    def _load_pool(self) -> Pool:
        cfg = self.config.pool
        if cfg.path == "gym":
            gym_config = from_dict(GymConfig, cfg.gym, where="pool.gym")
            stage = self.stages.run(gym_stage.GYM, gym_stage.gym_spec(gym_config),
                                    partial(gym_stage.compute_gym, config=gym_config))
            self._gym_config = gym_config
            self._gym_dir, self._gym_key = stage.path / "gym", stage.key
            return load_local(stage.path / stage.meta["pool"], preset="s2lbench", name="gym")
        if cfg.clinical:
            # the training side of the same seeded findings -> impression split the radiology evaluator tests on
            if cfg.clinical not in ("indiana", "mimic"):
                raise S2LBenchError(f"pool.clinical: {cfg.clinical!r} is not 'indiana' or 'mimic'")
            split = self.config.evaluation.task_options.get(f"radiology-{cfg.clinical}", {})
            return radiology_train_pool(self.pool_path(), seed=split.get("seed", 0),
                                        test_size=split.get("test_size", 500), source=cfg.clinical)
        return load_pool(self.pool_path(), preset=cfg.preset, columns=cfg.columns)

    def pool_path(self) -> str:
        """The pool's file as the run reads it (relative paths may name a file in the data directory)."""
        cfg = self.config.pool
        if cfg.clinical == "indiana":
            return str(self.data_dir() / "clinical" / INDIANA_FILE)
        path = cfg.path
        if not path.startswith("hf://") and not Path(path).exists() and (self.data_dir() / path).exists():
            path = str(self.data_dir() / path)
        return path

    def data_dir(self) -> Path:
        return settings.data_dir(self.config.evaluation.data_dir)

    # --- 2. training: the config every model trains with, from a gym base where it names one ----------
    def train_config(self, model: str, tokenizer: str | None, train: dict[str, Any],
                     seed: int | None = None) -> TrainConfig:
        if self.config.pool.path == "gym":
            self.pool  # noqa: B018 -- builds the gym: its tokenizer, and the template its rows are prompted with
        template = self._gym_config.prompt_template if self._gym_config is not None else None
        return training_stage.train_config(model, self._default_tokenizer(tokenizer, train.get("template")), train,
                                           seed, template=template)

    def _default_tokenizer(self, tokenizer: str | None, template: str | None = None) -> str | None:
        """A model's tokenizer as configured (``pool-bpe:VOCAB``: the one trained on this pool), else the built
        gym's own."""
        if tokenizer is None and self._gym_dir is not None:
            return str(self._gym_dir / "tokenizer")
        vocab_size = pool_tokenizer.pool_tokenizer_size(tokenizer)
        if vocab_size is not None:
            template = template or TrainConfig.template
            stage = self.stages.run(pool_tokenizer.POOL_TOKENIZER,
                                    pool_tokenizer.pool_tokenizer_spec(self.pool, vocab_size, template),
                                    partial(pool_tokenizer.compute_pool_tokenizer, pool=self.pool,
                                            vocab_size=vocab_size, template=template))
            return str(stage.path / stage.meta["path"])
        return tokenizer

    def _base_spec(self, model: str, tokenizer: str | None = None) -> dict[str, Any] | None:
        """What a ``gym-base:NAME`` or ``pool-base:NAME`` model's base is keyed on; None for any other model."""
        pool_base_model = pool_base.pool_base_name(model)
        if pool_base_model is not None:
            if tokenizer is None:
                raise S2LBenchError(f"model {model!r}: a pool base needs the model's tokenizer")
            return pool_base.pool_base_spec(self.pool, pool_base_model, tokenizer, self._pool_base_recipe())
        name = base_model_name(model)
        if name is None:
            return None
        if self.pool is None or self._gym_dir is None:
            raise S2LBenchError(f"model {model!r}: gym bases need pool.path 'gym'")
        return gym_stage.base_spec(name, self._gym_config, self._gym_dir, self._gym_key)

    def _with_base(self, train_config: TrainConfig) -> TrainConfig:
        """``train_config`` with a ``gym-base:NAME`` or ``pool-base:NAME`` model replaced by the folder of its
        base stage (a gym base is shared by every run of its gym, or of every shared-tokenizer gym). Called only
        where training happens, so dry runs and cost estimates never pre-train."""
        base = self.base_stage(train_config.model, train_config.tokenizer)
        if base is None:
            return train_config
        kind, spec = base
        if kind == pool_base.POOL_BASE:
            compute = partial(pool_base.compute_pool_base, pool=self.pool,
                              name=pool_base.pool_base_name(train_config.model),
                              tokenizer_dir=train_config.tokenizer, recipe=self._pool_base_recipe())
        else:
            compute = partial(gym_stage.compute_base, name=base_model_name(train_config.model),
                              config=self._gym_config, gym_dir=self._gym_dir)
        stage = self.stages.run(kind, spec, compute)
        return dataclasses.replace(train_config, model=str(stage.path / stage.meta["path"]))

    def base_stage(self, model: str, tokenizer: str | None = None) -> tuple[str, dict[str, Any]] | None:
        """(stage kind, spec) of the base a ``gym-base:`` or ``pool-base:`` model starts from; None for any
        other model (``s2lbench cache gc`` keeps what this names)."""
        spec = self._base_spec(model, tokenizer)
        if spec is None:
            return None
        return (pool_base.POOL_BASE if pool_base.pool_base_name(model) else gym_stage.BASE), spec

    def _pool_base_recipe(self) -> pool_base.PoolBaseRecipe:
        """The config's pool-base recipe (asked only when some model starts from a pool base)."""
        recipe = pool_base_recipe(self.config)
        assert recipe is not None, "asked for a pool-base recipe where no model uses a pool base"
        return recipe

    def _portable(self, spec: Any) -> Any:
        """A stage spec with paths into this run's stage cache written relative to it, so that keys do not
        depend on where the output folder lives or how ``--out`` was spelled (a moved folder, or one sharing
        another's cache, still finds its finished stages)."""
        if isinstance(spec, dict):
            return {k: self._portable(v) for k, v in spec.items()}
        if isinstance(spec, list | tuple):
            return [self._portable(v) for v in spec]
        if isinstance(spec, str):
            for root in self._stage_roots:
                if spec == root or spec.startswith(root + "/"):
                    return "<stages>" + spec[len(root):]
        return spec

    def _train_proxy(self, needs_adam_state: bool = False,
                     seed: int | None = None) -> tuple[Path, str, dict[str, float]]:
        """The proxy trained on the whole pool (with ``seed`` instead of its config's, when given): (its run
        folder, its stage key, its cost)."""
        cfg = self.config.proxy
        config = self.train_config(cfg.model, cfg.tokenizer, cfg.train, seed)
        spec = training_stage.proxy_spec(self.pool, self._portable(dataclasses.asdict(config)),
                                         self._base_spec(config.model, config.tokenizer),
                                         keep_adam_state=needs_adam_state)
        # LESS normalises gradients with the Adam moments of every checkpoint it reads
        hook = keep_adam_state if needs_adam_state else None
        stage = self.stages.run(training_stage.PROXY, spec, lambda folder: training_stage.compute_proxy(
            folder, self.pool, self._with_base(config), eval_hook=hook, label=f"the proxy ({cfg.model})"))
        cost = {"proxy_seconds": stage.meta["seconds"], "proxy_flops": stage.meta.get("flops", 0.0)}
        return stage.path / "run", stage.key, cost

    # --- 3. signals -----------------------------------------------------------------------------------
    def _required(self, spec: SelectorSpec) -> set[str]:
        """The signals a selector reads with these options (an option may pick, e.g., which embedding)."""
        cls = self.hooks.selector(spec.name)
        return set(cls.required_signals(parse_options(cls, spec.options)))

    def needed_signals(self, proxy_seed: int | None = None) -> set[str]:
        """The signals the rows of one proxy (the config's, or the rows with this ``proxy_seed``) read."""
        needed: set[str] = set()
        for spec in self.config.selectors:
            if spec.proxy_seed == proxy_seed:
                needed |= self._required(spec)
        return needed

    def proxy_seeds(self) -> list[int | None]:
        """The proxies whose signals some row reads: None (the config's proxy) and each row's ``proxy_seed``."""
        seeds = dict.fromkeys(spec.proxy_seed for spec in self.config.selectors if self._required(spec))
        return sorted(seeds, key=lambda seed: (seed is not None, seed or 0))

    def signals(self, proxy_seed: int | None = None) -> SignalSet:
        """Every signal the grid's selectors read (those of ``proxy_seed``'s rows): from a bring-your-own
        matrix, or from the proxy (trained here or given as a run folder) through the signal pass, plus text
        embeddings."""
        if proxy_seed in self._signals:
            return self._signals[proxy_seed]
        needed = self.needed_signals(proxy_seed)
        arrays: dict[str, np.ndarray] = {}
        steps: list[int] = []
        proxy_cfg = self.config.proxy
        sources = self._signal_sources.setdefault(proxy_seed, {})
        if proxy_cfg.trajectories:
            byo = SignalSet.from_trajectories(proxy_cfg.trajectories).for_pool(len(self.pool))
            arrays[LOSS] = byo.get(LOSS)
            steps = byo.steps
            sources[LOSS] = (file_fingerprint(Path(proxy_cfg.trajectories)), {})
        elif needed & PROXY_SIGNALS:
            if proxy_cfg.run_dir:
                run_dir, proxy_key, proxy_cost = Path(proxy_cfg.run_dir), str(proxy_cfg.run_dir), {}
            else:
                run_dir, proxy_key, proxy_cost = self._train_proxy(needs_adam_state=GRADIENTS in needed,
                                                                   seed=proxy_seed)
            self._proxy_run_dirs[proxy_seed] = run_dir
            signals_dir, signals_cost, extra_seconds = self._signal_pass(run_dir, proxy_key, needed)
            loaded = SignalSet.from_dir(signals_dir)
            steps = loaded.steps
            for name in set(loaded.available()) & PROXY_SIGNALS:
                arrays[name] = loaded.get(name)
                sources[name] = (signals_dir.name, {**proxy_cost, **signals_cost,
                                                    **signals_stage.extra_cost(name, extra_seconds)})
        if TEXT_EMBEDDING in needed:
            arrays[TEXT_EMBEDDING], key, cost = self._text_embeddings()
            sources[TEXT_EMBEDDING] = (key, cost)
        self._signals[proxy_seed] = SignalSet(arrays, steps=steps)
        return self._signals[proxy_seed]

    def dev_set(self) -> Pool:
        """The dev set of the run's evaluation tasks (``dev:`` in the config; see s2lbench/signals/devsets.py)."""
        return build_dev_set([plan.name for plan in self.tasks()], self.config.dev, data_dir=self.data_dir(),
                             gym_dir=self._gym_dir, gym_config=self._gym_config, pool=self.pool)

    def _signal_pass(self, run_dir: Path, proxy_key: str,
                     needed: set[str]) -> tuple[Path, dict[str, float], dict[str, float]]:
        """The signal pass, with the optional signals (IFD, dev set, gradients) the grid's selectors need.
        Returns its folder, the base pass's cost and what each optional signal added."""
        options = signals_stage.signal_pass_options(self.config.signals.options, needed,
                                                    self._default_tokenizer(self.config.proxy.tokenizer,
                                                                            self.config.proxy.train.get("template")))
        dev = self.dev_set() if needed & DEV_SIGNALS else None
        spec = signals_stage.signal_pass_spec(self.pool, proxy_key, self._portable(options), needed, dev,
                                              dataclasses.asdict(self.config.dev))
        stage = self.stages.run(signals_stage.SIGNALS, spec, partial(
            signals_stage.compute_signal_pass, pool=self.pool, run_dir=run_dir, options=options, needed=needed,
            dev=dev))
        return (stage.path, *signals_stage.signal_costs(stage.meta, stage.path))

    def _text_embeddings(self) -> tuple[np.ndarray, str, dict[str, float]]:
        encoder = self.config.signals.text_encoder
        stage = self.stages.run(signals_stage.TEXT_EMBEDDINGS, signals_stage.text_embedding_spec(self.pool, encoder),
                                partial(signals_stage.compute_text_embedding, pool=self.pool, encoder=encoder))
        cost = {"embedding_seconds": stage.meta.get("seconds", 0.0)}
        return signals_stage.load_text_embedding(stage.path), stage.key, cost

    # --- the grid's cells and test sets ----------------------------------------------------------------
    def cells(self) -> list[CellSpec]:
        n = len(self.pool)
        out: list[CellSpec] = []
        for cell in grid_cells(self.config):
            count = n if cell.budget is None else resolve_budget(cell.budget, n)
            out.append(CellSpec(cell.cell_id, cell.row, cell.selector, count, count / n, cell.seed, cell.target))
        return out

    def gym_task_sets(self, task: str) -> dict[str, tuple[Any, bool]]:
        """The built gym's evaluators a task names: every set for ``gym``, one for ``gym-<set>``
        (``{"gym-<set>": (evaluator, in_domain)}``)."""
        if self._gym_dir is None:
            raise S2LBenchError(f"evaluation task {task!r} needs the gym pool (pool.path: gym)")
        try:
            family = gym_evaluators(self._gym_dir, **self.config.evaluation.task_options.get(task, {}))
        except ConfigError as e:
            raise ConfigError(f"evaluation.task_options.{task}: {e}") from None
        if task == "gym":
            return family
        if task not in family:
            raise S2LBenchError(f"evaluation.tasks: no gym test set {task!r}; the gym has {', '.join(family)}")
        return {task: family[task]}

    def task_data_dir(self, task: str) -> Path:
        """Where a task reads its test data: the data directory, except that a clinical evaluator of the pool's
        own source reads the pool's file (its test side is the other half of the pool's seeded split)."""
        clinical = self.config.pool.clinical
        if clinical and task == f"radiology-{clinical}" and not self.config.evaluation.task_options.get(task, {}).get("path"):
            return Path(self.pool_path())
        return self.data_dir()

    def tasks(self) -> list[TaskPlan]:
        if self._tasks is not None:
            return self._tasks
        _ = self.pool  # builds the gym when the pool is the gym, so its test sets are known
        in_domain = self.config.evaluation.in_domain
        plans: list[TaskPlan] = []
        for task in self.config.evaluation.tasks:
            options = self.config.evaluation.task_options.get(task, {})
            if task == "gym" or task.startswith("gym-"):
                plans += [TaskPlan(name, ev, self._gym_dir, in_domain.get(name, declared))
                          for name, (ev, declared) in self.gym_task_sets(task).items()]
            else:
                cls = self.hooks.evaluator(task)
                evaluator = cls(from_dict(cls.Options, options, where=f"evaluation.task_options.{task}"))
                plans.append(TaskPlan(task, evaluator, self.task_data_dir(task),
                                      in_domain.get(task, getattr(cls, "in_domain", None))))
        self._tasks = plans
        return plans

    # --- one cell, in data-path order ------------------------------------------------------------------
    def run_cell(self, cell: CellSpec) -> None:
        try:
            with self.store.cell_lock(cell.cell_id):
                self._run_cell_locked(cell)
        except CellBusy:
            log.warning("cell %s: another process is running it; skipped here", cell.cell_id)

    def _run_cell_locked(self, cell: CellSpec) -> None:
        existing = self.store.get_cell(cell.cell_id)
        if existing and existing.status == "done" and existing.config_hash == self._cell_hash(cell):
            log.info("cell %s: done already", cell.cell_id)
            return
        record = Cell(cell.cell_id, self.config.name, cell.row, cell.budget, cell.fraction, cell.seed,
                      cell.target.name, status="running", config_hash=self._cell_hash(cell),
                      pool_fingerprint=self.pool.fingerprint(), versions=package_versions(), git_commit=git_commit(),
                      started_at=time.time())
        self.store.upsert_cell(record)
        ids, diagnostics, selection_seconds = self.select(cell)            # signals -> selection
        model_dir, model_key, finetune_cost = self.finetune(cell, ids)      # target fine-tuning
        rows, eval_seconds = self.evaluate(cell, model_dir)                 # generation -> evaluation
        costs = self._signal_cost(cell.selector) if cell.selector else {}  # -> results store
        costs.update(finetune_cost, selection_seconds=selection_seconds, evaluation_seconds=round(eval_seconds, 3))
        record = dataclasses.replace(record, selected_ids_hash=ids_hash(ids), model_fingerprint=model_key,
                                     cost=costs, environment=self._environment(cell, model_dir), status="done",
                                     finished_at=time.time(), regime=self._regime(diagnostics, ids))
        write_json(self.out / "cells" / f"{cell.cell_id}.json",
                   {"cell": dataclasses.asdict(record), "diagnostics": diagnostics})
        self.store.add_results(rows)
        self.store.upsert_cell(record)

    def _regime(self, diagnostics: dict[str, Any], ids: list[str]) -> dict[str, Any]:
        """The cell's regime record: the selection's (none for the full reference), plus on a gym the share of
        the selected ids carrying each planted defect (``planted_defects``; the full reference's subset is the
        pool). Kept off the stage and the cell hash: a store recorded before it simply lacks the key."""
        regime = dict(diagnostics.get("regime") or {})
        planted = self.planted_defects()
        if planted is not None:
            regime[PLANTED_DEFECTS] = planted.record(ids)
        return regime

    def planted_defects(self) -> PlantedDefects | None:
        """The gym pool's planted defects (its build's defects.json), read once; None off the gym."""
        if self._planted is None:
            _ = self.pool  # a gym's folder is known once its pool has loaded
            path = self._gym_dir / "defects.json" if self._gym_dir is not None else None
            self._planted = False
            if path is not None and path.is_file():
                self._planted = PlantedDefects(read_defects(path)[0], self.pool.ids)
        return self._planted if isinstance(self._planted, PlantedDefects) else None

    def select(self, cell: CellSpec) -> tuple[list[str], dict[str, Any], float]:
        """(selected ids, diagnostics, selection seconds) for a cell; the full reference takes every id."""
        pool = self.pool
        if cell.selector is None:
            return pool.ids, {"source_mix": pool.source_counts()}, 0.0
        spec = cell.selector
        selector_cls = self.hooks.selector(spec.name)
        required = self._required(spec)
        signals = self.signals(spec.proxy_seed) if required else SignalSet()
        # keyed on the signals this selector reads only: adding another selector to the grid reuses this one
        sources = self._signal_sources.get(spec.proxy_seed, {})
        signal_keys = {name: sources[name][0] for name in sorted(required)} or None
        stage = self.stages.run(
            selection_stage.SELECTION,
            selection_stage.selection_spec(pool, signal_keys, selector_cls, spec.name, spec.options, cell.budget,
                                           cell.seed),
            partial(selection_stage.compute_selection, selector_cls=selector_cls, pool=pool, budget=cell.budget,
                    seed=cell.seed, signals=signals, options=spec.options))
        ids, diagnostics = selection_stage.read_selection(stage.path)
        diagnostics["selection_dir"] = str(stage.path.relative_to(self.out))
        return ids, diagnostics, float(stage.meta.get("seconds", 0.0))

    def finetune(self, cell: CellSpec, ids: list[str]) -> tuple[Path, str, dict[str, float]]:
        pool = self.pool
        subset = pool.subset(sorted(pool.position_of(i) for i in ids), name=f"{cell.row}-{cell.budget}")
        config = self.train_config(cell.target.model, cell.target.tokenizer, cell.target.train, cell.seed)
        label = f"target {cell.target.name} ({cell.target.model})"
        stage = self._finetune_stage(ids, subset, config, label)
        matched: dict[str, float] = {}
        if cell.selector is not None and cell.selector.compute_matched:
            # the fixed schedule's fine-tune of this subset (shared with the plain row) gives FLOPs per step
            config, matched = training_stage.compute_matched_config(
                config, len(subset), self._selection_flops(cell.selector.compute_matched),
                float(stage.meta.get("flops") or 0.0))
            stage = self._finetune_stage(ids, subset, config, label)
        cost = {"finetune_seconds": float(stage.meta.get("seconds") or 0.0),
                "finetune_flops": float(stage.meta.get("flops") or 0.0), **matched}
        return stage.path / stage.meta["model_dir"], stage.key, cost

    def _finetune_stage(self, ids: list[str], subset: Pool, config: TrainConfig, label: str):
        spec = training_stage.finetune_spec(self.pool, ids, self._portable(dataclasses.asdict(config)),
                                            self._base_spec(config.model, config.tokenizer))
        return self.stages.run(training_stage.FINETUNE, spec, lambda folder: training_stage.compute_finetune(
            folder, subset, self._with_base(config), label=label))

    def _selection_flops(self, row: str) -> float:
        """What the selection of grid row ``row`` cost in FLOPs, as recorded: its proxy training, signal pass
        and optional signals (stages that record seconds only, such as text embeddings, add nothing)."""
        spec = next(s for s in self.config.selectors if s.row == row)
        if self._required(spec):
            self.signals(spec.proxy_seed)
        return sum(float(v) for k, v in self._signal_cost(spec).items() if k.endswith("_flops"))

    def evaluate(self, cell: CellSpec, model_dir: Path) -> tuple[list[ResultRow], float]:
        rows: list[ResultRow] = []
        start = time.perf_counter()
        tasks = self.tasks()
        for plan in console.Bar(tasks, desc="evaluate", unit="test sets"):
            with console.stage("evaluation"):
                result = evaluate_task(model_dir, plan, self.out / "generations",
                                       limit=self.config.evaluation.limit, decoding=self.config.evaluation.generation)
            rows += self._result_rows(cell.cell_id, result)
        return rows, time.perf_counter() - start

    def _result_rows(self, cell_id: str, result: TaskResult) -> list[ResultRow]:
        """A task's scores as stored rows, its samples written beside them (for the paired tests)."""
        plan = result.plan
        rel = self.store.write_samples(cell_id, plan.name, (s.to_dict() for s in result.samples))
        return [ResultRow(cell_id, plan.name, metric.name, float(result.aggregate[metric.name]),
                          metric.higher_is_better, plan.in_domain, result.n_items, rel)
                for metric in plan.evaluator.metrics if metric.name in result.aggregate]

    # --- reference rows: answers computed from the pool without training -------------------------------
    def run_references(self, only: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
        """Score every reference of the config (``references:``) once per target: (cell ids done here, failed
        cell id -> error). Finished ones (same pool, evaluation and name) are kept."""
        done: list[str] = []
        failed: dict[str, str] = {}
        seed = self.config.seeds[0]
        for target in self.config.targets:
            for name in self.config.references:
                row = reference_row(name)
                cell_id = reference_cell_id(target, row, seed)
                config_hash = reference_cell_hash(self.config, name)
                existing = self.store.get_cell(cell_id)
                if not chosen_by(cell_id, only) or (existing and existing.status == "done"
                                                    and existing.config_hash == config_hash):
                    continue
                started = time.time()
                record = Cell(cell_id, self.config.name, row, 0, 0.0, seed, target.name, status="running",
                              config_hash=config_hash, pool_fingerprint=self.pool.fingerprint(),
                              versions=package_versions(), git_commit=git_commit(), started_at=started)
                self.store.upsert_cell(record)
                # in a child process, as the cells are: scoring (BERTScore's model) starts native thread pools,
                # after which this process could no longer fork the grid's cells
                error = run_isolated(self._score_reference, (record, name), self._isolation())
                if error is not None:  # recorded like a failed cell; the grid goes on
                    failed[cell_id] = error
                    log.error("reference %s failed: %s", cell_id, error)
                    stored = self.store.get_cell(cell_id)
                    if stored is None or stored.status != "failed":
                        self.store.set_status(cell_id, "failed", error)
                    continue
                done.append(cell_id)
        return done, failed

    def _score_reference(self, payload: tuple[Cell, str]) -> str | None:
        record, name = payload
        try:
            rows = self._reference_rows(record.cell_id, name)
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
            self.store.set_status(record.cell_id, "failed", error)
            return error
        self.store.add_results(rows)
        self.store.upsert_cell(dataclasses.replace(
            record, status="done", finished_at=time.time(),
            cost={"evaluation_seconds": round(time.time() - record.started_at, 3)}))
        return None

    def _isolation(self) -> str | None:
        """How work this process hands a child starts: the local executor's ``isolate`` option (None: auto)."""
        method = self.config.executor_options.get("isolate") if self.config.executor == "local" else None
        return None if method in (None, "auto") else method

    def _reference_rows(self, cell_id: str, name: str) -> list[ResultRow]:
        rows = []
        for plan in self.tasks():
            items = plan.evaluator.load(plan.data_dir)[: self.config.evaluation.limit]
            aggregate, samples = plan.evaluator.evaluate(items, reference_outputs(name, self.pool, items))
            rows += self._result_rows(cell_id, TaskResult(plan, len(items), aggregate, list(samples)))
        return rows

    def _environment(self, cell: CellSpec, model_dir: Path) -> dict[str, list[dict[str, Any]]]:
        """Where the cell's target trained and, when its subset came from proxy signals, where the proxy did:
        with ``bf16: auto`` those decide the precision, and so the numbers."""
        environment = {"finetune": trained_environments(model_dir.parent)}
        proxy_run_dir = self._proxy_run_dirs.get(cell.selector.proxy_seed) if cell.selector else None
        if cell.selector and self._required(cell.selector) & PROXY_SIGNALS and proxy_run_dir is not None:
            environment["proxy"] = trained_environments(proxy_run_dir)
        return environment

    def _signal_cost(self, spec: SelectorSpec) -> dict[str, float]:
        """What obtaining this selector's signals cost (proxy training, signal pass, embeddings), nothing more."""
        cost: dict[str, float] = {}
        sources = self._signal_sources.get(spec.proxy_seed, {})
        for name in self._required(spec):
            cost.update(sources[name][1])
        return cost

    def _cell_hash(self, cell: CellSpec) -> str:
        if cell.selector is None:
            return cell_hash(self.config, None, cell.budget, cell.seed, cell.target)
        return cell_hash(self.config, cell.selector, cell.budget, cell.seed, cell.target,
                         selection_stage.version_spec(self.hooks.selector(cell.selector.name)),
                         reads_dev=bool(self._required(cell.selector) & DEV_SIGNALS))

    # --- the grid ---------------------------------------------------------------------------------------
    def run(self, only: list[str] | None = None) -> RunSummary:
        """Run every cell (or those whose id contains one of ``only``); failures are recorded, not raised."""
        started = time.time()
        cells = [c for c in self.cells() if chosen_by(c.cell_id, only)]
        summary = RunSummary()
        summary.done, summary.failed = self.run_references(only)
        for cell in cells:
            self.store.add_pending(Cell(cell.cell_id, self.config.name, cell.row, cell.budget, cell.fraction,
                                        cell.seed, cell.target.name, config_hash=self._cell_hash(cell)))
        executor_cls = self.hooks.executor(self.config.executor)
        executor = executor_cls(executor_cls.parse_options(self.config.executor_options), self.out)
        grid = Grid([CellTask(cell.cell_id, cell) for cell in cells], self._run_one,
                    shared=self._shared_stages, cpu_stages=self._select_only)
        stopped_by = None
        try:
            with console.grid(len(cells)):
                for cell_id, error in executor.run(grid):
                    self._count(summary, cell_id, error)
        except BaseException as e:  # Ctrl-C, SIGTERM (a scheduler's time limit), a crash: the time still counts
            stopped_by = type(e).__name__
            raise
        finally:
            self._record_invocation(started, len(cells), summary, only, stopped_by)
        return summary

    def select_cells(self, only: list[str] | None = None) -> RunSummary:
        """Select the subset of every cell (or those whose id contains one of ``only``) and stop before any
        fine-tune (``s2lbench run --select-only``): the proxies, signals and selection stages a later ``run``
        reuses. Every subset can then be read (``s2lbench compare-subsets``) before the compute is spent, and
        what a resume on another machine needs is the selection stages, not the signals behind them. The
        time counts in the invocation log like any part of the grid."""
        started = time.time()
        cells = [c for c in self.cells() if chosen_by(c.cell_id, only) and c.selector is not None]
        summary = RunSummary()
        stopped_by = None
        try:
            shared_error = self._shared_stages()
            for cell in console.Bar(cells, desc="select", unit="cells"):
                with console.cell(cell.cell_id, cell_label(cell)):
                    error = shared_error or self._select_only(cell)
                if error:
                    summary.failed[cell.cell_id] = error
                else:
                    summary.done.append(cell.cell_id)
        except BaseException as e:
            stopped_by = type(e).__name__
            raise
        finally:
            self._record_invocation(started, len(cells), summary, only, stopped_by, select_only=True)
        return summary

    def _count(self, summary: RunSummary, cell_id: str, error: str | None) -> None:
        if error:
            summary.failed[cell_id] = error
            stored = self.store.get_cell(cell_id)
            if stored is None or stored.status != "failed":  # its process died before recording it
                self.store.set_status(cell_id, "failed", error)
        elif (stored := self.store.get_cell(cell_id)) and stored.status == "done":
            summary.done.append(cell_id)
        else:  # another process holds it
            summary.skipped.append(cell_id)
        console.cell_finished(cell_id, error, log)

    def _record_invocation(self, started: float, n_cells: int, summary: RunSummary, only: list[str] | None,
                           stopped_by: str | None = None, select_only: bool = False) -> None:
        """One line per ``run`` in the invocation log: a resumed grid counts each of its parts, an interrupted
        one included (its line names what stopped it in ``stopped_by``)."""
        finished = time.time()
        record_invocation(self.out, {
            "started": started, "finished": finished, "wall_seconds": round(finished - started, 1),
            "cells": n_cells, "done": len(summary.done), "failed": len(summary.failed),
            "skipped": len(summary.skipped), "only": only, "executor": self.config.executor,
            "cpu_count": os.cpu_count(), "stopped_by": stopped_by, **({"select_only": True} if select_only else {})})

    def _shared_stages(self) -> str | None:
        """Build what every cell shares (pool/gym, test sets, proxy, signals); the error, if any, is logged
        and each cell then meets it again and records it."""
        try:
            _ = self.pool
            self.planted_defects()  # read here, once: forked cells inherit it
            self.tasks()
            for proxy_seed in self.proxy_seeds():
                self.signals(proxy_seed)
            return None
        except Exception as e:
            log.error("shared stages failed: %s: %s", type(e).__name__, e)
            return f"{type(e).__name__}: {e}"

    def _select_only(self, cell: CellSpec) -> str | None:
        try:
            self.select(cell)
            return None
        except Exception as e:  # the cell's own run meets it again and records it
            log.error("cell %s: selection failed: %s: %s", cell.cell_id, type(e).__name__, e)
            return f"{type(e).__name__}: {e}"

    # --- pickling: executors ship bound methods of the runner to other processes ----------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(hooks=None, _pool=None, _gym_dir=None, _signals={}, _tasks=None, _signal_sources={},
                     _planted=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.hooks = get_hooks()  # a worker loads the plugins its own environment installs

    def _run_one(self, cell: CellSpec) -> str | None:
        try:
            with console.cell(cell.cell_id, cell_label(cell)):
                self.run_cell(cell)
            return None
        except Exception as e:  # one broken cell must not stop the grid; the store says what happened
            error = f"{type(e).__name__}: {e}"
            log.info("cell %s failed: %s", cell.cell_id, error)  # the grid's loop says so to the user
            log.debug("%s", traceback.format_exc())
            self.store.set_status(cell.cell_id, "failed", error)
            return error
