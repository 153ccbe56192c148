"""``executor: ray``: grid cells as Ray tasks on a local Ray or an existing cluster (``pip install '.[ray]'``).

Per grid, three kinds of task, each with its own resources:

1. one task computes the shared stages (gym, proxy training, signal pass, embeddings) with a cell's
   resources (the proxy trains on a GPU);
2. per cell, a CPU task runs selection (``cpus_per_selection``, no GPU), once (1) is done;
3. per cell, a task with ``gpus_per_cell`` GPUs fine-tunes, generates and scores, once (2) is done.

Ray holds the dependent tasks back until what they need exists, so no worker sits on a GPU waiting for
the proxy; the content-addressed stage store and its file locks make it safe anyway if two grids (two
drivers) share stages. Workers read and write the same output folder, so it must be on a filesystem every
node mounts at the same path: that is checked before anything runs. ``ray.init()`` starts a local Ray
unless ``address`` (or ``RAY_ADDRESS``) names a cluster. Ctrl-C cancels every task not yet finished;
finished stages stay (they appear whole or not at all) and a rerun resumes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from s2lbench import hookimpl
from s2lbench.common import console
from s2lbench.errors import ConfigError
from s2lbench.executors.base import Executor, Grid, check_shared_folder, sees_token, set_torch_threads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayOptions:
    #: a cluster to join ("ray://head:10001", "auto", "host:6379"); None: $RAY_ADDRESS, else a local Ray
    address: str | None = None
    #: a local Ray's size (ignored when joining a cluster); None: the machine's
    num_cpus: int | None = None
    num_gpus: int | None = None
    #: resources of the shared-stages task and of each cell's fine-tune + generation task; gpus None:
    #: 1 when the cluster has GPUs, else 0
    cpus_per_cell: float = 1.0
    gpus_per_cell: float | None = None
    #: resources of each cell's selection task (CPU only)
    cpus_per_selection: float = 1.0
    #: torch's CPU threads in each task; None: Ray's default (the task's CPUs). CPU float results are
    #: bit-identical only at equal thread counts: to reproduce a local run, use that run's count
    torch_threads: int | None = None
    #: Ray's runtime_env for the workers (e.g. {"env_vars": {...}}); the package must be installed there
    runtime_env: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        for key in ("cpus_per_cell", "cpus_per_selection"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}: {getattr(self, key)} must be positive")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ConfigError(f"torch_threads: {self.torch_threads} must be >= 1")
        if self.gpus_per_cell is not None and self.gpus_per_cell < 0:
            raise ConfigError(f"gpus_per_cell: {self.gpus_per_cell} must be >= 0")


def _call(fn: Callable[..., Any], args: tuple, threads: int | None, log_dir: str | None, *upstream: Any) -> Any:
    """``fn(*args)`` in a worker, its log lines in each cell's log under ``log_dir``. ``upstream`` are results
    of earlier tasks, passed only so that Ray starts this one after them (it resolves top-level references
    before a task runs); their values are unused."""
    set_torch_threads(threads)
    with console.worker_logs(log_dir):
        return fn(*args)


class RayExecutor(Executor):
    name = "ray"
    Options = RayOptions

    def run(self, grid: Grid):
        try:
            import ray
        except ImportError:
            raise ConfigError("executor 'ray' needs Ray: pip install 's2lbench[ray]'") from None
        options: RayOptions = self.options or RayOptions()
        started_here = self._connect(ray, options)
        try:
            if self.out_dir is not None:
                check_shared_folder(self.out_dir, lambda path, token: _probe_nodes(ray, path, token))
            yield from self._run(ray, options, grid)
        finally:
            if started_here:
                ray.shutdown()

    @staticmethod
    def _connect(ray, options: RayOptions) -> bool:
        if ray.is_initialized():
            return False
        address = options.address or os.environ.get("RAY_ADDRESS") or None
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
        if options.runtime_env:
            kwargs["runtime_env"] = options.runtime_env
        if address is None:
            kwargs.update(num_cpus=options.num_cpus, num_gpus=options.num_gpus)
        log.info("ray: %s", f"joining {address}" if address else "starting a local Ray")
        ray.init(address=address, **kwargs)
        return True

    def _run(self, ray, options: RayOptions, grid: Grid):
        gpus = options.gpus_per_cell
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
        threads = options.torch_threads
        call = ray.remote(max_retries=0)(_call)
        heavy = call.options(num_cpus=options.cpus_per_cell, num_gpus=gpus)
        light = call.options(num_cpus=options.cpus_per_selection, num_gpus=0)
        out = str(self.out_dir) if self.out_dir is not None else None
        shared = heavy.remote(grid.shared, (), threads, out) if grid.shared else None
        run_cell = ray.put(grid.run_cell)
        cpu_stages = ray.put(grid.cpu_stages) if grid.cpu_stages else None
        refs: dict[Any, str] = {}
        for task in grid.tasks:
            upstream = [] if shared is None else [shared]
            if cpu_stages is not None:
                upstream = [light.remote(cpu_stages, (task.payload,), threads, out, *upstream)]
            refs[heavy.remote(run_cell, (task.payload,), threads, out, *upstream)] = task.cell_id
        pending = list(refs)
        log.info("ray: %d cells submitted (%g CPU + %g GPU each, selection %g CPU)", len(refs),
                 options.cpus_per_cell, gpus, options.cpus_per_selection)
        try:
            while pending:  # the runner shows the grid's progress; each cell's lines are in logs/cells/
                # a timeout so that Ctrl-C is seen within a second, however long the cells take
                ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                console.tick()
                for ref in ready:
                    yield refs[ref], _result(ray, ref)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True, recursive=True)
            if shared is not None:
                ray.cancel(shared, force=True, recursive=True)
            log.warning("ray: interrupted; %d unfinished cells cancelled (finished stages are kept: rerun to "
                        "resume)", len(pending))
            raise


def _result(ray, ref) -> str | None:
    try:
        return ray.get(ref)
    except Exception as e:  # the worker died (OOM, node lost) or the task was cancelled: the cell failed
        return f"ray: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def _probe_nodes(ray, path: str, token: str) -> list[tuple[str, bool]]:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0)(sees_token)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(path, token)
            for n in nodes]
    return [(n.get("NodeManagerAddress", n["NodeID"]), bool(seen)) for n, seen in zip(nodes, ray.get(refs), strict=True)]


@hookimpl
def register_executors(register):
    register(RayExecutor)

