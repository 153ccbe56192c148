"""Check every input a run will need before its first stage starts (and in ``run --dry-run``).

A grid on a GPU box can train for days before it reaches evaluation; a missing test file, a mistyped hub id
or a budget larger than the pool must fail in seconds instead. ``preflight(runner, only)`` checks, offline:

- the pool: a local file exists and loads (its rows are counted); a clinical pool's file; an ``hf://`` id is
  well formed and, with ``HF_HUB_OFFLINE`` set, present in the local hub cache;
- budgets against the pool's size (where the size is known);
- every evaluation task's data (the test file is loaded, so a missing or malformed file is named);
- model and tokenizer names: built-in tiny configs, local folders (which must exist), hub ids (form, and
  with ``HF_HUB_OFFLINE`` the local cache);
- a bring-your-own proxy run folder and trajectory matrix (its shape against the pool);
- the executor, seeds (no duplicates, none negative) and every ``--only`` pattern (it must match a cell).

It collects every problem rather than stopping at the first, and never downloads anything.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s2lbench.common.typed import from_dict
from s2lbench.errors import ConfigError, S2LBenchError
from s2lbench.evaluation.references import reference_row
from s2lbench.grid.experiment import chosen_by, grid_cells, reference_cell_id
from s2lbench.grid.pool_base import pool_base_name
from s2lbench.grid.pool_tokenizer import PREFIX as POOL_BPE
from s2lbench.grid.pool_tokenizer import pool_tokenizer_size
from s2lbench.gym import GymConfig
from s2lbench.gym.bases import BASE_PREFIX, base_model_name
from s2lbench.selection import resolve_budget
from s2lbench.signals.signalset import LOSS, SignalSet
from s2lbench.training.models import TINY_CONFIGS

log = logging.getLogger(__name__)

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
#: rows of hub pools we know, so an offline dry run can still check budgets and estimate cost
KNOWN_POOL_ROWS = {"TIGER-Lab/MathInstruct": 262_039}


class PreflightError(S2LBenchError):
    """One or more inputs of a run are missing or wrong; the message lists each."""


@dataclass
class TaskInfo:
    name: str
    items: int | None = None
    #: mean characters of a prompt (for the cost estimate); None where the data is not readable here
    prompt_chars: float | None = None
    max_new_tokens: int = 512
    passes: int = 1


@dataclass
class PreflightReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pool_rows: int | None = None
    #: mean characters per pool example (instruction + input + output), where the pool was read
    pool_chars: float | None = None
    tasks: list[TaskInfo] = field(default_factory=list)
    cell_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_failed(self) -> None:
        if self.problems:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            raise PreflightError(f"preflight found {len(self.problems)} problem(s) before any stage ran:\n{lines}")


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_cache_dir() -> Path:
    try:
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)
    except Exception:  # huggingface_hub missing or old: its documented default
        return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


def in_hub_cache(repo_id: str, kind: str = "model") -> bool:
    """Whether ``repo_id`` has a snapshot in the local hub cache (``models--owner--name/snapshots/*``)."""
    folder = hub_cache_dir() / f"{kind}s--{repo_id.replace('/', '--')}" / "snapshots"
    return folder.is_dir() and any(folder.iterdir())


def _in_datasets_cache(repo_id: str) -> bool:
    """Whether ``datasets`` has its own prepared copy (``<HF_DATASETS_CACHE>/owner___name``)."""
    try:
        from datasets import config as datasets_config

        return (Path(datasets_config.HF_DATASETS_CACHE) / repo_id.replace("/", "___")).is_dir()
    except Exception:
        return False


def _looks_like_path(name: str) -> bool:
    """A name meant as a local path (a hub id is "owner/name": one slash, no leading dot or slash)."""
    return name.startswith(("/", "./", "../", "~")) or "\\" in name or name.count("/") > 1 \
        or name.endswith((".gguf", ".safetensors", ".bin", ".json"))


def check_model_name(name: str | None, where: str, *, tokenizer: bool = False) -> str | None:
    """A problem with a model/tokenizer name, or None: tiny config, local folder/file, or hub id."""
    if name is None:
        return None

    if not tokenizer and name in TINY_CONFIGS:
        return None
    if tokenizer and name.startswith(POOL_BPE):
        try:
            pool_tokenizer_size(name)
        except ConfigError as e:
            return f"{where}: {e}"
        return None
    base = None if tokenizer else base_model_name(name) or pool_base_name(name)
    if base is not None:
        return None if base in TINY_CONFIGS else \
            f"{where}: {name!r}: gym and pool bases are of built-in tiny configs ({', '.join(TINY_CONFIGS)})"
    path = Path(name).expanduser()
    if path.exists():
        if path.is_dir() and not tokenizer and not (path / "config.json").is_file():
            return f"{where}: {name} is a folder without config.json (not a saved model)"
        return None
    if _looks_like_path(name):
        return f"{where}: {name}: no such file or folder"
    if not HUB_ID.match(name):
        return f"{where}: {name!r} is neither a local path nor a hub id (owner/name)"
    if hub_offline() and not in_hub_cache(name):
        return (f"{where}: {name} is not in the local hub cache ({hub_cache_dir()}) and HF_HUB_OFFLINE is set; "
                f"download it where the hub is reachable (huggingface-cli download {name}) or give a local folder")
    return None


def cell_ids(config: Any) -> list[str]:
    """Every cell id the grid has, without loading the pool (ids name budgets as written, not as counts)."""
    references = [reference_cell_id(target, reference_row(name), config.seeds[0])
                  for target in config.targets for name in config.references]
    return [cell.cell_id for cell in grid_cells(config)] + references


def _check_pool(runner: Any, report: PreflightReport) -> None:
    cfg = runner.config.pool
    if cfg.path == "gym":
        gym = from_dict(GymConfig, cfg.gym, where="pool.gym")
        report.pool_rows = getattr(gym, "pool_size", None)
        try:  # seconds: the run's own cached gym stage, which the run then reuses
            pool = runner.pool
        except S2LBenchError as e:
            report.problems.append(f"pool.gym: {e}")
            return
        _count_pool(pool, report)
        report.notes.append(f"pool: the gym, {len(pool):,} rows, built into the run folder's stage cache "
                            "(the run reuses it)")
        return
    if cfg.path.startswith("hf://") and not cfg.clinical:
        repo = cfg.path[len("hf://"):].split(":")[0]
        if not HUB_ID.match(repo) or "/" not in repo:
            report.problems.append(f"pool.path: {cfg.path!r} is not hf://owner/name[:split]")
            return
        if hub_offline() and not in_hub_cache(repo, "dataset") and not _in_datasets_cache(repo):
            report.problems.append(f"pool.path: {cfg.path} is not in the local hub cache and HF_HUB_OFFLINE is set; "
                                   f"download it where the hub is reachable, or give a local file")
        report.pool_rows = KNOWN_POOL_ROWS.get(repo)
        report.notes.append(f"pool: {cfg.path} is read from the hub at run time"
                            + (f" ({report.pool_rows:,} rows, built-in figure)" if report.pool_rows else
                               " (rows unknown here: budgets are checked at run time)"))
        return
    path = runner.pool_path()
    try:
        pool = runner.pool  # a local file: loading it is cheap and checks every row
    except S2LBenchError as e:
        report.problems.append(f"pool ({path}): {e}" if path not in str(e) else f"pool: {e}")
        return
    except OSError as e:
        report.problems.append(f"pool: {path}: {e.strerror or e}")
        return
    _count_pool(pool, report)


def _count_pool(pool: Any, report: PreflightReport) -> None:
    report.pool_rows = len(pool)
    report.pool_chars = sum(len(r.instruction) + len(r.input) + len(r.output) for r in pool) / max(1, len(pool))


def _check_budgets(config: Any, report: PreflightReport) -> None:
    for i, budget in enumerate(config.budgets):
        try:
            resolve_budget(budget, report.pool_rows if report.pool_rows is not None else 10**12)
        except S2LBenchError as e:
            report.problems.append(f"budgets[{i}]: {e}")


def _check_tasks(runner: Any, report: PreflightReport) -> None:
    config = runner.config
    for task in config.evaluation.tasks:
        if task == "gym" or task.startswith("gym-"):
            if config.pool.path != "gym":
                report.problems.append(f"evaluation.tasks: {task!r} needs the gym pool (pool.path: gym)")
            elif runner.gym_dir is None:  # the gym did not build: _check_pool said why
                report.tasks.append(TaskInfo(task, max_new_tokens=256))
            else:  # the build _check_pool made: one line per test set, with its size
                try:
                    chosen = runner.gym_task_sets(task)
                except S2LBenchError as e:  # names its key
                    report.problems.append(str(e))
                    continue
                for name, (evaluator, _) in chosen.items():
                    _add_task(runner, name, evaluator, runner.gym_dir, report)
            continue
        try:
            cls = runner.hooks.evaluator(task)
            evaluator = cls(from_dict(cls.Options, config.evaluation.task_options.get(task, {}),
                                      where=f"evaluation.task_options.{task}"))
        except S2LBenchError as e:
            report.problems.append(f"evaluation.tasks: {e}")
            continue
        _add_task(runner, task, evaluator, runner.task_data_dir(task), report)


def _add_task(runner: Any, task: str, evaluator: Any, data: Any, report: PreflightReport) -> None:
    """One task's line in the report, sized from its test data where that is readable here."""
    config = runner.config
    passes = 2 if getattr(evaluator.options, "prompting", "") == "hybrid" else 1
    info = TaskInfo(task, max_new_tokens=int(config.evaluation.generation.get("max_new_tokens",
                                                                              evaluator.max_new_tokens)),
                    passes=passes)
    report.tasks.append(info)
    if str(data).startswith("hf://"):
        report.notes.append(f"{task}: test data from the hub at run time")
        return
    try:
        items = evaluator.load(data)
    except S2LBenchError as e:
        report.problems.append(f"evaluation data for {task}: {e}")
        return
    except OSError as e:
        report.problems.append(f"evaluation data for {task}: {data}: {e.strerror or e}")
        return
    if config.evaluation.limit:
        items = items[: config.evaluation.limit]
    info.items = len(items)
    info.prompt_chars = sum(len(evaluator.prompt(it)) for it in items) / max(1, len(items))


def _check_models(config: Any, report: PreflightReport) -> None:
    names = [(config.proxy.model, "proxy.model", False), (config.proxy.tokenizer, "proxy.tokenizer", True)]
    for i, t in enumerate(config.targets):
        names += [(t.model, f"targets[{i}].model", False), (t.tokenizer, f"targets[{i}].tokenizer", True)]
    if config.signals.text_encoder not in ("minilm",):
        names.append((config.signals.text_encoder, "signals.text_encoder", False))

    for name, where, is_tokenizer in names:
        if (config.proxy.trajectories or config.proxy.run_dir) and where.startswith("proxy."):
            continue  # the proxy is not trained: its model is never loaded
        problem = check_model_name(name, where, tokenizer=is_tokenizer)
        if problem:
            report.problems.append(problem)
        if not is_tokenizer and name and name.startswith(BASE_PREFIX) and config.pool.path != "gym":
            report.problems.append(f"{where}: {name!r} is pre-trained on the gym's corpus: it needs pool.path 'gym'")
        if not is_tokenizer and (name in TINY_CONFIGS or pool_base_name(name)) and config.pool.path != "gym":
            tokenizer = config.proxy.tokenizer if where.startswith("proxy") else \
                config.targets[int(where.split("[")[1].split("]")[0])].tokenizer
            if tokenizer is None:
                report.problems.append(f"{where}: the tiny config {name!r} needs a tokenizer outside the gym")


def _check_proxy_inputs(config: Any, report: PreflightReport) -> None:
    proxy = config.proxy
    if proxy.run_dir:
        run_dir = Path(proxy.run_dir)
        if not run_dir.is_dir():
            report.problems.append(f"proxy.run_dir: {proxy.run_dir}: no such folder")
        elif not any(run_dir.glob("checkpoint-*")):
            report.problems.append(f"proxy.run_dir: {proxy.run_dir} has no checkpoint-*/ folders")
    if proxy.trajectories:
        try:
            signals = SignalSet.from_trajectories(proxy.trajectories)
            matrix = signals.get(LOSS)
        except S2LBenchError as e:
            report.problems.append(f"proxy.trajectories: {e}")
            return
        except (OSError, ValueError) as e:
            report.problems.append(f"proxy.trajectories: {proxy.trajectories}: {e}")
            return
        if getattr(matrix, "ndim", 0) != 2:
            report.problems.append(f"proxy.trajectories: {proxy.trajectories}: expected a 2-D matrix "
                                   f"(examples x checkpoints), got shape {tuple(getattr(matrix, 'shape', ()))}")
        elif report.pool_rows is not None and matrix.shape[0] != report.pool_rows:
            report.problems.append(f"proxy.trajectories: {proxy.trajectories}: {matrix.shape[0]} rows but the pool "
                                   f"has {report.pool_rows} examples (one row per pool example, in pool order)")


def _check_grid(runner: Any, only: list[str] | None, report: PreflightReport) -> None:
    config = runner.config
    try:
        runner.hooks.executor(config.executor)
    except S2LBenchError as e:
        report.problems.append(f"executor: {e}")
    seen: set[int] = set()
    for seed in config.seeds:
        if seed in seen:
            report.problems.append(f"seeds: {seed} appears twice (each seed is one run of every cell)")
        if isinstance(seed, int) and seed < 0:
            report.problems.append(f"seeds: {seed} is negative (seeds must be >= 0)")
        seen.add(seed)
    report.cell_ids = cell_ids(config)
    for pattern in only or []:
        if not any(chosen_by(c, [pattern]) for c in report.cell_ids):
            example = report.cell_ids[0] if report.cell_ids else "(none)"
            report.problems.append(f"--only {pattern!r} matches no cell (ids look like {example})")


def preflight(runner: Any, only: list[str] | None = None) -> PreflightReport:
    """Every problem with the run's inputs (none: the run may start). Reads local files only."""
    report = PreflightReport()
    _check_grid(runner, only, report)
    _check_pool(runner, report)
    _check_budgets(runner.config, report)
    _check_proxy_inputs(runner.config, report)
    _check_models(runner.config, report)
    _check_tasks(runner, report)
    data_dir = runner.data_dir()
    if any(t.items is None and not t.name.startswith("gym") for t in report.tasks) and not data_dir.exists():
        report.notes.append(f"data directory {data_dir} does not exist")
    return report
