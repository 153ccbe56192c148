"""``s2lbench.run``: run an experiment grid from Python, as ``s2lbench run`` does (same preflight, same
runner, same resume), and get its summary back."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s2lbench.common import console
from s2lbench.common.typed import apply_overrides
from s2lbench.grid.experiment import ExperimentConfig, load_experiment, parse_experiment
from s2lbench.grid.preflight import preflight
from s2lbench.grid.runner import Runner, RunSummary
from s2lbench.grid.verify import verify_folder

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """Where the grid's results are (read them with ``load_results(out)``) and what happened to its cells."""

    out: Path
    summary: RunSummary

    @property
    def ok(self) -> bool:
        return self.summary.ok


def experiment_config(config: ExperimentConfig | Mapping[str, Any] | str | Path,
                      overrides: list[str] | None = None) -> ExperimentConfig:
    """An experiment from a YAML path, a dict (as the YAML would hold) or an ``ExperimentConfig``."""
    if isinstance(config, ExperimentConfig):
        return config if not overrides else parse_experiment(
            apply_overrides(dataclasses.asdict(config), overrides), origin="config")
    if isinstance(config, Mapping):
        return parse_experiment(apply_overrides(dict(config), overrides or []), origin="config")
    return load_experiment(config, overrides)


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """A SIGTERM (a scheduler's time limit, ``kill``) ends the run as Ctrl-C does, through its ``finally``
    blocks, so the run's invocation line, with its wall time, is still written; exit status 143."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def verify_before_run(runner: Runner) -> None:
    """Every hash of the run's folder (and its shared cache) checked before the run, damaged parts moved aside
    so the run recomputes them; and every stage reuse checks hashes too."""
    report = verify_folder(runner.out)
    for line in report.damaged:
        log.warning("DAMAGED %s", line)
    checked = ", ".join(f"{n} {kind}" for kind, n in report.checked.items()) or "nothing yet"
    console.notice(log, "verified %s: %s", checked,
                   "all intact" if report.ok else f"{len(report.damaged)} damaged, recomputed below")
    runner.stages.verify = True


def run(config: ExperimentConfig | Mapping[str, Any] | str | Path, out: str | Path | None = None, *,
        overrides: list[str] | None = None, only: list[str] | None = None, verify: bool = False,
        select_only: bool = False) -> RunResult:
    """Run a grid (every cell, or those whose id contains one of ``only``) into ``out`` (default
    ``runs/<experiment name>``); inputs are checked first, as ``s2lbench run`` does (``PreflightError``).
    ``verify``: check the hash of every file the folder (and a shared cache behind it) holds first — damaged
    parts are named, moved aside and recomputed — and again at every stage reuse (``s2lbench run --verify``).
    ``select_only``: select every cell's subset and stop before any fine-tune (``run --select-only``); the
    summary then lists the cells whose subset is selected."""
    experiment = experiment_config(config, overrides)
    folder = Path(out) if out is not None else Path("runs") / experiment.name
    runner = Runner(experiment, folder)
    if verify:
        verify_before_run(runner)
    preflight(runner, only).raise_if_failed()  # before the first stage: nothing trains on a run that would fail
    with sigterm_as_exit():
        summary = runner.select_cells(only) if select_only else runner.run(only=only)
    return RunResult(folder, summary)
