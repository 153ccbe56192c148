"""s2lbench: compare data-selection methods for supervised fine-tuning, centred on SmallToLarge (S2L).

The Python API (docs/api.md)::

    import s2lbench
    picked = s2lbench.select("train.jsonl", "s2l", 0.1, proxy="gym-proxy")   # rows, positions, diagnostics
    result = s2lbench.run("configs/regression.yaml", out="runs/regression")  # a grid, as `s2lbench run`
    frame = s2lbench.load_results("runs/regression")                         # pandas, one row per score

Each function imports what it needs when it is called: importing s2lbench loads neither torch nor the grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path as _Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # for type checkers and IDEs only; at run time each function imports its module when called
    import pandas

    from s2lbench.api.grid import RunResult
    from s2lbench.api.select import SelectResult
    from s2lbench.api.subset import SubsetResult
    from s2lbench.grid.cost import CostEstimate
    from s2lbench.grid.experiment import ExperimentConfig

__version__ = "0.1.0"

#: Marker for plugin hook implementations: ``@s2lbench.hookimpl def register_selectors(register): ...``
hookimpl = pluggy.HookimplMarker("s2lbench")

# The built-in plugin folders `selectors/` and `evaluators/` sit beside this package in a source checkout and
# are installed inside it as `s2lbench.selectors` / `s2lbench.evaluators` (pyproject's package-dir). When this
# package is imported straight from a checkout (a plain editable install, or `python -m` in the repo root),
# let the sub-package search reach them there too. They have no __init__.py, so nothing shadows the stdlib.
_here = _Path(__file__).parent
_checkout = _here.resolve().parent
if not (_here / "selectors").exists() and (_checkout / "pyproject.toml").is_file() \
        and (_checkout / "selectors").is_dir():
    __path__.append(str(_checkout))  # noqa: F821 - __path__ is defined for packages


def select(pool: Any, selector: str, budget: int | float | str, *, seed: int = 0, proxy: str | None = None,
           signals: Any = None, options: Mapping[str, Any] | None = None,
           proxy_train: Mapping[str, Any] | None = None, out: str | _Path | None = None,
           preset: str | None = None, columns: Mapping[str, str] | None = None) -> SelectResult:
    """Select ``budget`` examples (a count, or a fraction: ``0.1``, ``"10%"``) of ``pool`` -- a list of dicts,
    a .jsonl/.json/.csv path or ``hf://`` id, or a ``datasets.Dataset`` -- with a registered selector.

    Returns a ``SelectResult``: ``rows`` in the pool's kind (a Dataset gives ``dataset.select(positions)``,
    every column and id kept; records and files give a list of dicts), ``positions`` (ascending), ``ids``
    and the selector's ``diagnostics``. A selector that reads proxy signals needs ``proxy`` (a tiny config
    such as ``"gym-proxy"`` or a hub id; trained and cached in ``out``) or precomputed ``signals`` (a signals
    folder, a ``SignalSet`` or ``{name: array}``). Bad input raises the ``s2lbench.errors`` type the command
    line reports, with the same message."""
    from s2lbench.api.select import select as select_rows

    return select_rows(pool, selector, budget, seed=seed, proxy=proxy, signals=signals, options=options,
                       proxy_train=proxy_train, out=out, preset=preset, columns=columns)


def subset(pool: str | _Path, selector: str, budget: int | float | str, *, out: str | _Path,
           proxy: str | None = None, format: str = "jsonl", seed: int = 0,
           options: Mapping[str, Any] | None = None, proxy_train: Mapping[str, Any] | None = None,
           dry_run: bool = False, **settings: Any) -> SubsetResult | CostEstimate:
    """``s2lbench subset`` from Python: pool file -> proxy -> signals -> selection -> ``out`` in ``format``
    (jsonl, hf, messages, alpaca, sharegpt), cached and resumable. ``settings``: ``proxy_tokenizer``,
    ``name``, ``preset``, ``columns``, ``signal_options``, ``report`` (see s2lbench.api.subset.subset)."""
    from s2lbench.api.subset import subset as run_subset

    return run_subset(pool, selector, budget, out=out, proxy=proxy, format=format, seed=seed, options=options,
                      proxy_train=proxy_train, dry_run=dry_run, **settings)


def run(config: ExperimentConfig | Mapping[str, Any] | str | _Path, out: str | _Path | None = None, *,
        overrides: list[str] | None = None, only: list[str] | None = None, verify: bool = False) -> RunResult:
    """Run an experiment grid (a YAML path, a dict as the YAML holds, or an ``ExperimentConfig``) into ``out``
    (default ``runs/<name>``), as ``s2lbench run`` does: inputs checked first, finished stages and cells
    reused (``verify``: every cached file's hash checked first, as ``s2lbench run --verify``). Returns a
    ``RunResult`` (``out``, ``summary``, ``ok``)."""
    from s2lbench.api.grid import run as run_grid

    return run_grid(config, out, overrides=overrides, only=only, verify=verify)


def load_results(out: str | _Path, *, experiment: str | None = None,
                 include_unfinished: bool = False) -> pandas.DataFrame:
    """A results folder as a ``pandas.DataFrame``: one row per cell x task x metric, with the cell's
    provenance (config hash, pool fingerprint, selected-ids hash, model fingerprint, git commit, version)."""
    from s2lbench.api.results import load_results as load

    return load(out, experiment=experiment, include_unfinished=include_unfinished)


def load_samples(out: str | _Path, cell_id: str, task: str) -> pandas.DataFrame:
    """The per-example samples of one cell on one task (prompt, output, reference, scores) as a DataFrame."""
    from s2lbench.api.results import load_samples as load

    return load(out, cell_id, task)


def plugins() -> dict[str, list[dict[str, Any]]]:
    """What is registered: ``{"selectors": [...], "evaluators": [...], "executors": [...]}``."""
    from s2lbench.api.registry import plugins as registered

    return registered()


__all__ = ["hookimpl", "__version__", "select", "subset", "run", "load_results", "load_samples", "plugins"]
