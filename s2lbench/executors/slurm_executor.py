"""``executor: slurm``: grid cells as SLURM jobs through submitit (``pip install '.[slurm]'``).

One job computes the shared stages (gym, proxy, signals) first; then every cell is one task of a job
array (selection, fine-tune, generation, scoring in order; selection finds the shared signals finished).
``partition``, ``gpus_per_node``, ``cpus_per_task``, ``mem_gb``, ``timeout_min`` and ``account`` come from
``executor_options``. Each job's stdout/stderr lie in ``<out>/slurm/<job id>/``, and
``<out>/slurm/<cell id>.out`` / ``.err`` link to the logs of the job that ran that cell.

``cluster: local`` runs the same jobs as local subprocesses through submitit's local executor (no
SLURM needed; how CI tests this executor), at most ``max_parallel`` at a time; ``debug`` runs them in this
process. The driver (``s2lbench run``) waits for the jobs: keep it alive (tmux, or a small CPU job of its
own); Ctrl-C cancels every job not yet finished, and a rerun resumes from the finished stages.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from s2lbench import hookimpl
from s2lbench.common import console
from s2lbench.errors import ConfigError
from s2lbench.executors.base import Executor, Grid, Pinned, check_shared_folder, sees_token

log = logging.getLogger(__name__)

LOG_DIR = "slurm"


@dataclass(frozen=True)
class SlurmOptions:
    #: "slurm", "local" (subprocesses on this machine) or "debug" (in this process); None: SLURM if sbatch exists
    cluster: Literal["slurm", "local", "debug"] | None = None
    partition: str | None = None
    account: str | None = None
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    mem_gb: float | None = None
    timeout_min: int = 24 * 60
    #: at most this many cells run at once (SLURM: the array's %N; local: subprocesses); None: no limit
    max_parallel: int | None = None
    #: the shared-stages job's GPUs (the proxy trains there); None: gpus_per_node
    shared_gpus: int | None = None
    #: extra sbatch parameters, passed through (e.g. {"qos": "high", "constraint": "a100"})
    additional: dict[str, Any] = field(default_factory=dict)
    #: torch's CPU threads in each job; None: torch's default there (CPU float results are bit-identical
    #: only at equal thread counts: to reproduce a local run, use that run's count)
    torch_threads: int | None = None
    #: seconds between polls of the jobs' states
    poll_seconds: float = 5.0

    def __post_init__(self):
        for key in ("gpus_per_node", "cpus_per_task", "timeout_min"):
            if getattr(self, key) < (0 if key == "gpus_per_node" else 1):
                raise ConfigError(f"{key}: {getattr(self, key)} is out of range")
        if self.max_parallel is not None and self.max_parallel < 1:
            raise ConfigError(f"max_parallel: {self.max_parallel} must be >= 1")


class SlurmExecutor(Executor):
    name = "slurm"
    Options = SlurmOptions

    def run(self, grid: Grid):
        try:
            import submitit
        except ImportError:
            raise ConfigError("executor 'slurm' needs submitit: pip install 's2lbench[slurm]'") from None
        options: SlurmOptions = self.options or SlurmOptions()
        out = self.out_dir or Path.cwd()
        logs = out / LOG_DIR
        cluster = options.cluster or ("slurm" if _has_sbatch() else None)
        if cluster is None:
            raise ConfigError("executor 'slurm': no sbatch on PATH; run on a SLURM login node, or set "
                              "executor_options.cluster: local to run the jobs as local subprocesses")
        executor = submitit.AutoExecutor(folder=str(logs / "%j"), cluster=cluster)
        executor.update_parameters(**_parameters(options, cluster))
        if cluster == "slurm":
            check_shared_folder(out, lambda path, token: _probe_node(executor, options, path, token))
        jobs: dict[str, Any] = {}
        try:
            if grid.shared is not None:
                executor.update_parameters(**_gpus(options.shared_gpus if options.shared_gpus is not None
                                                   else options.gpus_per_node, cluster), name="s2lbench-shared")
                job = executor.submit(Pinned(grid.shared, options.torch_threads, out))
                jobs["shared"] = job
                log.info("slurm: shared stages in job %s (logs %s)", job.job_id, logs / str(job.job_id))
                _wait([job], options.poll_seconds)
                _report(job, "shared stages")
                del jobs["shared"]
                executor.update_parameters(**_gpus(options.gpus_per_node, cluster), name="s2lbench-cell")
            yield from self._cells(executor, cluster, options, grid, logs, jobs)
        except KeyboardInterrupt:
            for job in jobs.values():
                job.cancel(check=False)
            log.warning("slurm: interrupted; %d unfinished jobs cancelled (finished stages are kept: rerun to "
                        "resume)", len(jobs))
            raise

    def _cells(self, executor, cluster: str, options: SlurmOptions, grid: Grid, logs: Path, jobs: dict[str, Any]):
        tasks = list(grid.tasks)
        run_cell = Pinned(grid.run_cell, options.torch_threads, self.out_dir)
        window = len(tasks) if cluster == "slurm" or options.max_parallel is None else options.max_parallel
        queue = list(reversed(tasks))
        while queue or jobs:  # the runner shows the grid's progress; each cell's lines are in logs/cells/
            fresh = []
            while queue and len(jobs) + len(fresh) < window:
                fresh.append(queue.pop())
            if fresh:
                with executor.batch():  # one job array on SLURM
                    submitted = [(t.cell_id, executor.submit(run_cell, t.payload)) for t in fresh]
                for cell_id, job in submitted:
                    jobs[cell_id] = job
                    _link_logs(logs, cell_id, job)
                log.info("slurm: submitted %d cells (%s)", len(fresh),
                         ", ".join(str(j.job_id) for _, j in submitted[:3]) + (" ..." if len(fresh) > 3 else ""))
            done = [cell_id for cell_id, job in jobs.items() if job.done()]
            if not done:
                console.tick()
                time.sleep(options.poll_seconds)
                continue
            for cell_id in done:
                yield cell_id, _outcome(jobs.pop(cell_id))


def _parameters(options: SlurmOptions, cluster: str) -> dict[str, Any]:
    params: dict[str, Any] = {"timeout_min": options.timeout_min, "cpus_per_task": options.cpus_per_task,
                              "tasks_per_node": 1, "nodes": 1, **_gpus(options.gpus_per_node, cluster)}
    if options.mem_gb is not None:
        params["mem_gb"] = options.mem_gb
    slurm = {"slurm_partition": options.partition, "slurm_account": options.account,
             "slurm_array_parallelism": options.max_parallel}
    params.update({k: v for k, v in slurm.items() if v is not None})
    if options.additional:
        params["slurm_additional_parameters"] = dict(options.additional)
    return params


def _gpus(n: int, cluster: str) -> dict[str, Any]:
    # submitit's local executor refuses to start a job that asks for more GPUs than the machine has
    if cluster != "slurm":
        n = min(n, _visible_gpus())
    return {"gpus_per_node": n}


def _visible_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:
        return 0


def _has_sbatch() -> bool:
    import shutil

    return shutil.which("sbatch") is not None


def _wait(jobs: list[Any], poll: float) -> None:
    while not all(job.done() for job in jobs):
        time.sleep(poll)


def _report(job: Any, what: str) -> None:
    error = _outcome(job)
    if error:
        log.error("slurm: %s failed (job %s): %s; each cell meets it again and records it", what, job.job_id, error)


def _outcome(job: Any) -> str | None:
    """The function's return value (an error or None), or why the job itself failed (timeout, preemption)."""
    try:
        return job.result()
    except Exception as e:
        lines = [line for line in str(e).splitlines() if line.strip()]
        return f"slurm job {job.job_id}: {type(e).__name__}: {lines[-1] if lines else ''}"


def _link_logs(logs: Path, cell_id: str, job: Any) -> None:
    for name, target in ((f"{cell_id}.out", job.paths.stdout), (f"{cell_id}.err", job.paths.stderr)):
        link = logs / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        os.symlink(os.path.relpath(target, link.parent), link)


def _probe_node(executor, options: SlurmOptions, path: str, token: str) -> list[tuple[str, bool]]:
    """Run the token check as a tiny job on the partition the cells will use."""
    executor.update_parameters(gpus_per_node=0, timeout_min=5, name="s2lbench-fs-check")
    job = executor.submit(_node_sees, path, token)
    _wait([job], options.poll_seconds)
    try:
        node, seen = job.result()
    except Exception as e:
        raise ConfigError(f"executor 'slurm': the filesystem check job {job.job_id} failed: {e}") from None
    finally:
        executor.update_parameters(**_parameters(options, "slurm"))
    return [(node, seen)]


def _node_sees(path: str, token: str) -> tuple[str, bool]:
    import socket

    return socket.gethostname(), sees_token(path, token)


@hookimpl
def register_executors(register):
    register(SlurmExecutor)

