"""Pool -> subset in one call: proxy training, the signal pass and one selection, through the runner's own
stages (the same stage store and stage specs, so the same inputs give the same keys as in a grid), then the
subset written in the format a trainer reads, with its diagnostics and provenance.

The output folder holds ``stages/`` (the cache: a rerun after a kill resumes where it stopped and recomputes
no finished stage), ``selection.jsonl`` (id and pool position of every pick), the export
(``pool/exports.py``) and ``diagnostics.json``, written last, which lists the files beside it with their
sha256: while it is absent the folder's subset is incomplete.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from s2lbench.api.diagnostics import length_report, versions
from s2lbench.common.atomic import check_output_path, output_lock, write_json, write_jsonl
from s2lbench.common.provenance import git_commit, package_versions
from s2lbench.errors import ConfigError
from s2lbench.grid import cost
from s2lbench.grid.experiment import parse_experiment
from s2lbench.grid.preflight import PreflightError, preflight
from s2lbench.grid.runner import CellSpec, Runner
from s2lbench.grid.stages import DONE, read_events
from s2lbench.gym.tokenizer import save_tokenizer, train_tokenizer
from s2lbench.plugin_manager import get_hooks
from s2lbench.pool.exports import DEFAULT_NAME, check_format, export_subset, sha256_of
from s2lbench.pool.loaders import load_hub_dataset, read_rows, split_hub_spec
from s2lbench.pool.prompts import render_prompt
from s2lbench.pool.records import Pool
from s2lbench.selection import check_seed, parse_options, resolve_budget
from s2lbench.selection.regime import source_mix
from s2lbench.signals.stage import DEV_SIGNALS, PROXY_SIGNALS
from s2lbench.training.models import GYM_TRAINING, TINY_CONFIGS

TOKENIZER = "tokenizer"
#: vocabulary of the tokenizer trained on the pool for a tiny proxy (the gym's own size)
TOKENIZER_VOCAB = 512
SELECTION_FILE = "selection.jsonl"
DIAGNOSTICS_FILE = "diagnostics.json"
#: the one target the experiment config needs; ``s2lbench subset`` never trains or evaluates it
_NO_TARGET = "subset"


@dataclass
class SubsetResult:
    """What ``subset`` wrote: the folder, the picks (pool positions, ascending, and their ids), the export
    and the diagnostics (as in ``diagnostics.json``)."""

    out: Path
    positions: np.ndarray
    ids: list[str]
    files: dict[str, dict[str, Any]]
    diagnostics: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        """The exported subset (a file, or the dataset folder for ``hf``)."""
        return self.out / self.files["subset"]["file"]


#: a tiny proxy's recipe: the gym's (``s2lbench train``'s), with checkpoints for the loss trajectories
TINY_PROXY_TRAINING: dict[str, Any] = {**GYM_TRAINING, "n_checkpoints": 8}
#: any other proxy's: the S2L paper's (configs/paper/mathinstruct.yaml: Pythia-70M, 3 epochs, lr 2e-5, cosine,
#: effective batch 128, length 512), with 12 evenly spaced checkpoints whatever the pool's size, and bf16
#: where the device has it
PAPER_PROXY_TRAINING: dict[str, Any] = {
    "schedule": "epochs", "epochs": 3, "batch_size": 32, "grad_accum": 4, "learning_rate": 2.0e-5,
    "weight_decay": 0.0, "lr_scheduler": "cosine", "warmup_ratio": 0.03, "max_length": 512, "n_checkpoints": 12,
    "bf16": "auto", "group_by_length": True}


def proxy_recipe(proxy: str, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The proxy's TrainConfig fields: ``TINY_PROXY_TRAINING`` for a built-in tiny config, else
    ``PAPER_PROXY_TRAINING``; ``overrides`` on top (a checkpoint rule given replaces the default one)."""
    recipe = dict(TINY_PROXY_TRAINING if proxy in TINY_CONFIGS else PAPER_PROXY_TRAINING)
    overrides = dict(overrides or {})
    if {"save_every", "n_checkpoints"} & set(overrides):
        recipe.pop("n_checkpoints", None)
    if "schedule" not in overrides:  # naming a length names its schedule
        if "total_steps" in overrides:
            recipe["schedule"] = "steps"
        elif "epochs" in overrides:
            recipe["schedule"] = "epochs"
    recipe.update(overrides)
    return recipe


def experiment_for(pool: str, selector: str, options: Mapping[str, Any], count: int, seed: int, *,
                   proxy: str | None, proxy_train: Mapping[str, Any] | None, proxy_tokenizer: str | None,
                   preset: str | None, columns: Mapping[str, str] | None,
                   signal_options: Mapping[str, Any] | None):
    """The one-cell experiment whose data side ``subset`` runs (validated as any config is)."""
    model = proxy or "gym-proxy"
    data = {"name": "subset",
            "pool": {"path": pool, "preset": preset, "columns": dict(columns) if columns else None},
            "proxy": {"model": model, "tokenizer": proxy_tokenizer, "train": proxy_recipe(model, proxy_train)},
            "signals": {"options": dict(signal_options or {})},
            "selectors": [{"name": selector, "options": dict(options)}],
            "budgets": [count], "seeds": [seed], "full_reference": False,
            "targets": [{"name": _NO_TARGET, "model": model, "tokenizer": proxy_tokenizer,
                         "train": proxy_recipe(model, proxy_train)}],
            "evaluation": {"tasks": []}}
    return parse_experiment(data, origin="subset")


class _StageLog:
    """Prints one line per stage a step computed or found cached (from the stage store's event log)."""

    def __init__(self, root: Path, report: Callable[[str], None]):
        self.root, self.report = root, report
        self.seen = len(read_events(root))
        self.stages: list[dict[str, Any]] = []

    def step(self, title: str, work: Callable[[], Any]) -> Any:
        self.report(f"[subset] {title} ...")
        start = time.perf_counter()
        result = work()
        events = read_events(self.root)[self.seen:]
        self.seen += len(events)
        for event in events:
            meta_path = self.root / event["stage"] / event["key"] / DONE
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
            record = {"stage": event["stage"], "key": event["key"], "status": event["status"],
                      "seconds": meta.get("seconds"), "flops": meta.get("flops")}
            self.stages.append(record)
            how = "cached" if event["status"] == "cached" else f"computed in {float(event['seconds']):.1f} s"
            self.report(f"[subset]   stage {event['stage']} {event['key']}: {how}")
        self.report(f"[subset] {title}: done in {time.perf_counter() - start:.1f} s")
        return result


def _tokenizer_stage(runner: Runner, pool: Pool) -> str:
    """A byte-level BPE tokenizer trained on the pool's rendered rows (a ``tokenizer`` stage, keyed on the
    pool and the vocabulary size): what a built-in tiny proxy reads outside the gym."""
    def compute(folder: Path) -> dict[str, Any]:
        texts = (render_prompt("alpaca", ex.instruction, ex.input) + ex.output for ex in pool)
        save_tokenizer(train_tokenizer(texts, vocab_size=TOKENIZER_VOCAB), folder / TOKENIZER)
        return {"path": TOKENIZER}

    spec = {"pool": pool.fingerprint(), "vocab_size": TOKENIZER_VOCAB, "kind": "byte-level-bpe-digits"}
    stage = runner.stages.run(TOKENIZER, spec, compute)
    return str(stage.path / stage.meta["path"])


def _original_rows(spec: str, runner: Runner, positions: np.ndarray) -> Any:
    """The subset's rows as the pool file (or hub dataset) has them, every column kept; None for the gym."""
    if spec == "gym" or runner.config.pool.clinical:
        return None
    path = runner.pool_path()
    if path.startswith("hf://"):
        ident, split = split_hub_spec(path)
        return load_hub_dataset(ident, split=split).select([int(p) for p in positions])
    rows = read_rows(path)
    return [rows[int(p)] for p in positions]


def subset(pool: str | Path, selector: str, budget: int | float | str, *, out: str | Path,
           proxy: str | None = None, proxy_train: Mapping[str, Any] | None = None,
           proxy_tokenizer: str | None = None, options: Mapping[str, Any] | None = None, seed: int = 0,
           format: str = "jsonl", name: str = DEFAULT_NAME, preset: str | None = None,
           columns: Mapping[str, str] | None = None, signal_options: Mapping[str, Any] | None = None,
           dry_run: bool = False, report: Callable[[str], None] | None = print) -> SubsetResult | cost.CostEstimate:
    """Select ``budget`` examples of ``pool`` (a .jsonl/.json/.csv file or ``hf://owner/name[:split]``) with
    ``selector`` and write them to ``out`` in ``format``. See the module docstring and docs/api.md.

    ``proxy``: a built-in tiny config (``gym-proxy``; a tokenizer is trained on the pool unless
    ``proxy_tokenizer`` or a ``tokenizer/`` folder beside the pool is there) or a hub id / local model folder;
    needed only by selectors that read proxy signals. ``proxy_train``: TrainConfig fields. ``dry_run``:
    return the cost estimate and compute nothing. ``report``: where progress lines go (None: nowhere)."""
    say = report or (lambda line: None)
    check_format(format)
    seed = check_seed(seed, "seed")
    selector_cls = get_hooks().selector(selector)
    options = dict(options or {})
    needed = set(selector_cls.required_signals(parse_options(selector_cls, options)))
    if needed & DEV_SIGNALS:
        raise ConfigError(f"selector {selector!r} reads a dev set of the evaluation tasks "
                          f"({', '.join(sorted(needed & DEV_SIGNALS))}); run it in a grid (`s2lbench run`), "
                          "whose config names the tasks")
    if needed & PROXY_SIGNALS and proxy is None:
        raise ConfigError(f"selector {selector!r} reads {', '.join(sorted(needed & PROXY_SIGNALS))} from a "
                          "proxy model: give --proxy MODEL (a built-in tiny config such as gym-proxy, or a hub id)")
    out = check_output_path(out, kind="folder")
    spec = str(pool)
    bare = experiment_for(spec, selector, options, 1, seed, proxy=proxy, proxy_train=proxy_train,
                          proxy_tokenizer=proxy_tokenizer, preset=preset, columns=columns,
                          signal_options=signal_options)
    first = Runner(bare, out, results=False)
    loaded = first.pool
    count = resolve_budget(budget, len(loaded))
    tokenizer = proxy_tokenizer
    if tokenizer is None and proxy in TINY_CONFIGS and needed & PROXY_SIGNALS and spec != "gym":
        beside = Path(first.pool_path()).parent / "tokenizer"
        if not spec.startswith("hf://") and beside.is_dir():
            tokenizer = str(beside)
        elif not dry_run:
            log = _StageLog(first.stages.root, say)
            tokenizer = log.step(f"tokenizer for {proxy} (BPE on the pool)", lambda: _tokenizer_stage(first, loaded))
    config = experiment_for(spec, selector, options, count, seed, proxy=proxy, proxy_train=proxy_train,
                            proxy_tokenizer=tokenizer, preset=preset, columns=columns, signal_options=signal_options)
    runner = Runner(config, out, results=False)
    estimate = _estimate(runner, needed, dry_run, say)
    if dry_run:
        return estimate
    start = time.perf_counter()
    log = _StageLog(runner.stages.root, say)
    pool_obj = runner.pool
    say(f"[subset] pool {pool_obj.name}: {len(pool_obj)} examples (fingerprint {pool_obj.fingerprint()}); "
        f"selecting {count} with {selector}")
    if needed:
        log.step(f"signals ({', '.join(sorted(needed))})", runner.signals)
    cell = CellSpec(f"{_NO_TARGET}__{selector}__{count}__s{seed}", selector, config.selectors[0], count,
                    count / len(pool_obj), seed, config.targets[0])
    ids, selector_diag, _ = log.step(f"selection ({selector})", lambda: runner.select(cell))
    positions = np.sort(np.asarray([pool_obj.position_of(i) for i in ids], dtype=np.int64))
    ordered_ids = [pool_obj[int(p)].id for p in positions]
    diagnostics = {
        "provenance": {"pool": {"spec": spec, "name": pool_obj.name, "rows": len(pool_obj),
                                "fingerprint": pool_obj.fingerprint()},
                       "selector": selector_cls.name, "selector_version": selector_cls.version,
                       "options": options, "seed": seed, "budget_requested": str(budget), "budget": count,
                       "proxy": ({"model": config.proxy.model, "tokenizer": config.proxy.tokenizer,
                                  "train": dataclasses.asdict(runner.train_config(
                                      config.proxy.model, config.proxy.tokenizer, config.proxy.train))}
                                 if needed & PROXY_SIGNALS else None),
                       "signals": sorted(needed), "stages": log.stages, "versions": {**versions(),
                                                                                     **package_versions()},
                       "git_commit": git_commit()},
        "source_mix": source_mix(pool_obj.sources, positions),
        "lengths": length_report(pool_obj, positions),
        "selector_diagnostics": selector_diag,
        "cost": _actual_cost(log.stages),
        "estimate": {"gpu_hours": round(estimate.total().gpu_hours, 6), "flops": estimate.total().flops},
    }
    examples = [pool_obj[int(p)] for p in positions]
    original = _original_rows(spec, runner, positions) if format == "hf" else None
    files = _write_unit(out, format, examples, ordered_ids, positions, diagnostics, original, name)
    diagnostics["files"] = files
    diagnostics["total_seconds"] = round(time.perf_counter() - start, 3)
    say(f"[subset] selected {count} of {len(pool_obj)} examples with {selector} -> {out / files['subset']['file']} "
        f"(diagnostics: {out / DIAGNOSTICS_FILE})")
    if "dataset_info" in files:
        say(f"[subset] LLaMA-Factory: dataset_dir={out}, dataset={files['dataset_info']['entry']}")
    spent = diagnostics["cost"]
    say(f"[subset] cost of the stages it rests on (now or cached): {spent['seconds']:.1f} s, "
        f"~{spent['flops']:.3g} FLOPs")
    return SubsetResult(out, positions, ordered_ids, files, diagnostics)


def _estimate(runner: Runner, needed: set[str], dry_run: bool, say: Callable[[str], None]) -> cost.CostEstimate:
    """The cost estimate of the proxy, signal and embedding stages; a dry run also reports every problem
    with the inputs (as ``run --dry-run``) and raises when there is one."""
    checked = preflight(runner)
    # the experiment's stand-in target is never trained: its problems are the proxy's, reported once
    problems = [p for p in checked.problems if not p.startswith("targets[0]")]
    if not needed & PROXY_SIGNALS:  # no proxy is trained: its settings are not inputs
        problems = [p for p in problems if not p.startswith("proxy.")]
    if dry_run:
        problems = [p for p in problems if "needs a tokenizer outside the gym" not in p]
    estimate = cost.estimate(runner, checked)
    estimate.stages = [s for s in estimate.stages if not s.stage.startswith(("fine-tune ", "generation "))]
    if not needed & PROXY_SIGNALS:
        estimate.models = []
        estimate.assumptions.append(f"selector {runner.config.selectors[0].name!r} reads no proxy signals: "
                                    "no proxy is trained")
    say(cost.render(estimate))
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise PreflightError(f"preflight found {len(problems)} problem(s) before any stage ran:\n{lines}")
    return estimate


def _actual_cost(stages: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds and FLOPs of the stages this subset rests on (computed now or earlier)."""
    seconds = sum(float(s.get("seconds") or 0.0) for s in stages)
    flops = sum(float(s.get("flops") or 0.0) for s in stages)
    return {"seconds": round(seconds, 3), "flops": flops,
            "by_stage": {s["stage"]: {"seconds": s.get("seconds"), "flops": s.get("flops")} for s in stages}}


def _write_unit(out: Path, fmt: str, examples: list, ids: list[str], positions: np.ndarray,
                diagnostics: dict[str, Any], original: Any, name: str) -> dict[str, dict[str, Any]]:
    """The selection, the export and the diagnostics as one unit: the diagnostics go first and come back
    last, holding the sha256 of every file beside them."""
    diag_path = out / DIAGNOSTICS_FILE
    with output_lock(diag_path):
        diag_path.unlink(missing_ok=True)
        write_jsonl(out / SELECTION_FILE, ({"id": i, "position": int(p)} for i, p in zip(ids, positions,
                                                                                         strict=True)))
        files = {"selection": {"file": SELECTION_FILE, "rows": len(ids), "sha256": sha256_of(out / SELECTION_FILE)}}
        files.update(export_subset(out, fmt, examples, original=original, name=name))
        write_json(diag_path, {**diagnostics, "files": files})
    return files
