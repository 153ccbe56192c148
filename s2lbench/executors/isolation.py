"""One cell, one child process: a native abort (faiss's ``terminate``, a segfault in a CUDA kernel, the OOM
killer) ends that cell, not the grid. The cell's function runs in a child and sends back its result; a child
that dies without answering is a failed cell whose one-line reason says how it died.

Start method (benchmarks/bench_cell_isolation.py on the 2-core CPU box, the runner's modules loaded in the
parent): ``fork`` starts a cell in 0.003 s and the child has everything the runner already holds (pool,
signals, plugins registered in this process through the Python API); ``forkserver`` (0.03 s, imports
preloaded) and ``spawn`` (0.6 s warm, 2-3 s cold) start a fresh interpreter state: each cell reloads the
pool and signals, and plugins registered in-process are gone. Against a ~95 s fine-tune all are cheap, so
the choice is about state: ``fork`` is the default, with two guards. A parent that has initialised CUDA
(which a forked child cannot use) gets ``spawn``. A parent that already runs an OpenMP pool (torch or faiss ran
multi-threaded in it: a notebook or a test that trained in-process) would hang a forked child's next parallel
region (GNU libgomp does not survive ``fork``, measured) or, kept to one thread, train slower and to other float
bits: under ``auto`` it runs its cells in-process, as before cells were isolated, and says so once. ``s2lbench
run`` builds the gym and checks its inputs without an OpenMP pool (the ``tokenizers`` pool a gym build starts is
not one), so its cells fork with every thread; ``executor_options: {isolate: spawn}`` (or ``forkserver``)
isolates cells from any parent.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from s2lbench.common import console

log = logging.getLogger(__name__)

START_METHODS = ("fork", "forkserver", "spawn", "none")
_warned: list[bool] = []


_COUNT = "import os, threading; print(len(os.listdir('/proc/self/task')) - threading.active_count())"


def native_threads() -> int:
    """Threads of this process that Python did not start (OpenMP, BLAS, torch pools); 0 where unknown."""
    try:
        return max(0, len(os.listdir("/proc/self/task")) - threading.active_count())
    except OSError:
        return 0


@functools.cache
def idle_native_threads() -> int:
    """Native threads a fresh interpreter has once numpy is loaded (OpenBLAS starts its pool at load and
    survives fork); measured once, in a child interpreter (~0.2 s)."""
    try:
        out = subprocess.run([sys.executable, "-c", "import numpy; " + _COUNT], capture_output=True, text=True,
                             timeout=60, check=True).stdout
        return int(out.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return 0


def openmp_loaded() -> bool:
    """Whether an OpenMP runtime (GNU libgomp, LLVM libomp, Intel libiomp; torch and faiss bring one) is mapped
    into this process; True where that cannot be read."""
    try:
        maps = open("/proc/self/maps", encoding="utf-8", errors="replace").read()
    except OSError:
        return True
    return any(lib in maps for lib in ("libgomp", "libomp", "libiomp"))


def has_openmp_pool() -> bool:
    """Whether this process has started an OpenMP pool: native threads beyond numpy's with an OpenMP runtime
    loaded (the Rust thread pool of ``tokenizers``, which a gym build starts, survives a fork: it is not one)."""
    return openmp_loaded() and native_threads() > idle_native_threads()


def _single_threaded_native() -> None:
    """In a child forked from a process with a live OpenMP pool: keep torch and faiss off that pool."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    faiss = sys.modules.get("faiss")
    if faiss is not None:
        faiss.omp_set_num_threads(1)


def default_start_method() -> str:
    if not sys.platform.startswith("linux"):
        return "spawn"
    torch = sys.modules.get("torch")
    try:
        cuda_live = bool(torch is not None and torch.cuda.is_initialized())
    except Exception:  # a torch without CUDA support
        cuda_live = False
    return "spawn" if cuda_live else "fork"


def _die_with_parent(parent: int) -> None:
    """A ``kill -9`` of the run ends its cell too (Linux: the parent-death signal), as when cells ran in it."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _child(fn: Callable[[Any], str | None], payload: Any, conn: Any, single_threaded: bool = False,
           parent: int | None = None) -> None:
    if parent is not None:
        _die_with_parent(parent)
    # tokenizers' Rust pool, if the parent used it, is off in a fork; say so once here instead of its warning
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    lock = threading.Lock()

    def send(message: tuple) -> None:
        with lock:
            conn.send(message)

    console.get().relay_to(send)  # the parent draws the live view; this cell's lines and status go to it
    try:
        if single_threaded:
            _single_threaded_native()
        result = ("result", fn(payload))
    except (KeyboardInterrupt, SystemExit) as e:  # the run is being stopped: the parent stops too
        result = ("stop", type(e).__name__, getattr(e, "code", None))
    except BaseException as e:  # the cell function records its own errors; anything else is reported here
        result = ("result", f"{type(e).__name__}: {e}")
        traceback.print_exc()
    send(result)
    with lock:
        conn.close()


def how_it_died(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = {"SIGABRT": " (a native library aborted, e.g. faiss or CUDA)", "SIGKILL": " (killed, e.g. out of memory)",
                "SIGSEGV": " (a native library crashed)"}.get(name, "")
        return f"CellProcessDied: the cell's process died of {name}{hint}"
    return f"CellProcessDied: the cell's process exited with status {exitcode} without reporting a result"


def run_isolated(fn: Callable[[Any], str | None], payload: Any, method: str | None = None) -> str | None:
    """``fn(payload)`` in a child process (start ``method``; default, ``"auto"``: :func:`default_start_method`;
    ``"none"`` runs it here). Returns its result, or a one-line error when the child died without one.

    ``auto`` in a process that already runs an OpenMP pool (a notebook or a test that trained in-process):
    a forked child would hang in it or, kept to one thread, train slower and to other float bits than the
    same cell from ``s2lbench run``; such a process runs its cells here, as before cells were isolated (said
    once). An explicit ``fork`` there runs the child on one thread instead."""
    auto = method is None
    method = method or default_start_method()
    if auto and method == "fork" and has_openmp_pool():
        if not _warned:
            _warned.append(True)
            log.warning("this process already runs native thread pools (it trained or clustered in-process), "
                        "which a forked cell cannot use: cells run in this process, without isolation from "
                        "native aborts (`s2lbench run`, or executor_options.isolate: spawn, isolates them)")
        method = "none"
    if method == "none":
        return fn(payload)
    ctx = multiprocessing.get_context(method)
    single_threaded = method == "fork" and has_openmp_pool()
    if single_threaded and not _warned:
        _warned.append(True)
        log.warning("this process already runs native thread pools (it trained or clustered in-process); cells "
                    "run in forked processes on one CPU thread, as a forked OpenMP pool would hang (run from "
                    "`s2lbench run` for every thread)")
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(fn, payload, send, single_threaded, os.getpid()), daemon=False)
    process.start()
    send.close()
    try:
        view = console.get()
        try:
            message = receive.recv()
            while message[0] in console.RELAYED:  # the cell's lines, status line, ...: for this view
                view.relayed(message)
                message = receive.recv()
        except EOFError:  # the child died before sending
            process.join()
            return how_it_died(process.exitcode)
        finally:
            view.relay_ended()
        process.join()
        if message[0] == "stop":
            raise KeyboardInterrupt if message[1] == "KeyboardInterrupt" else SystemExit(message[2])
        return message[1]
    finally:
        if process.is_alive():  # we are being interrupted (Ctrl-C, SIGTERM): the cell goes with us
            process.terminate()
            process.join(10)
            if process.is_alive():
                process.kill()
        receive.close()
