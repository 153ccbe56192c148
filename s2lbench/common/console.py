"""The console: what a person sees while s2lbench works, and the log file that keeps everything.

One object per process owns the terminal and the logs:

- **The live view** (a terminal): the grid's progress (cells done / total, elapsed, estimate left) and one
  status line naming the work in hand as the user thinks of it (``target-l · s2l · 10% · seed 0 — fine-tune
  125/360 steps · 6.8 steps/s · loss 0.114``), redrawn in place by ``rich``; messages that matter (a stage
  computed or reused, a finished or failed cell, any warning) print above it.
- **Not a terminal** (CI, ``nohup``, a SLURM ``.out``): plain lines only, never a carriage return or an
  escape code; the status line is printed every ``S2LBENCH_PROGRESS_SECONDS`` (default 30) while work runs.
- **The log file**: ``log_to(out, command)`` writes ``<out>/logs/<timestamp>-<command>.log`` at DEBUG, every
  line stamped with its time and the cell and stage it belongs to (records logged before the folder was
  known are kept and written first). In a Ray or SLURM worker, ``worker_logs(out)`` writes each cell's lines
  to ``<out>/logs/cells/<cell id>.log`` instead.
- **Verbosity**: ``-q`` (-1) warnings, errors and the final table; default (0) the live view and the notices;
  ``-v`` (1) the full log streamed above the live view; ``-vv`` (2) third-party libraries' debug lines too.
- **Foreign noise**: transformers', datasets' and the hub's progress bars are off; their loggers flow into
  ours (no second handler printing ``[transformers] ...``); the known harmless warnings listed in ``KNOWN_NOISE``
  are demoted to the log file (DEBUG) by message and origin, so a new warning still shows (once per place).

Code reports work through four calls, all cheap no-ops when nothing is watching::

    with console.cell("t__s2l__10%__s0", "target-l · s2l · 10% · seed 0"):   # stamps every line, names the work
        with console.stage("finetune"):                                      # stamps every line
            with console.activity("fine-tune", total=360, unit="steps") as work:
                work.update(125, loss=0.114)                                  # per step: microseconds
    console.notice(log, "stage %s: computed", name)                          # a line the user sees
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import logging.handlers
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")

#: between INFO and WARNING: what the user sees at the default verbosity (a stage done, a cell finished)
NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

QUIET, NORMAL, VERBOSE, DEBUG = -1, 0, 1, 2
LOG_DIR = "logs"
CELL_LOG_DIR = "cells"
#: seconds between two status lines when the output is not a terminal
PROGRESS_SECONDS = float(os.environ.get("S2LBENCH_PROGRESS_SECONDS", "30"))
#: how often the live view redraws; updates between redraws only set numbers
REFRESH_PER_SECOND = 4
#: what a cell's child process sends its parent's view (:meth:`Console.relayed`); any other message is the
#: cell's answer (executors/isolation.py)
RELAYED = ("line", "status", "worked")

FILE_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)-7s [%(where)s] %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

#: third-party loggers whose records flow into ours (their own stderr handlers removed)
THIRD_PARTY = ("transformers", "datasets", "huggingface_hub", "accelerate", "torch", "urllib3", "filelock",
               "submitit", "ray", "py.warnings")

#: the stage names of the data path as a user calls them in the status line
STAGE_TITLES = {"gym": "build the gym", "gym-base": "base model", "pool-base": "pool base model",
                "proxy": "train the proxy", "signals": "signal pass", "text-embedding": "text embeddings", "selection": "select",
                "finetune": "fine-tune", "generation": "generate", "evaluation": "evaluate"}

#: stages every cell shares: their notices name no cell
SHARED_STAGES = frozenset({"gym", "gym-base", "pool-base", "proxy", "signals", "text-embedding"})


@dataclass(frozen=True)
class Noise:
    """A known, harmless third-party message: ``pattern`` (a regex searched in the message) from ``origin``
    (a logger name prefix, or for ``warnings.warn`` the module prefix), of ``category`` for warnings.
    Matching records go to the log file at DEBUG and not to the terminal."""

    origin: str
    pattern: str
    why: str
    category: type[Warning] | None = None


#: the one list of third-party messages the console demotes; everything else still shows
KNOWN_NOISE: tuple[Noise, ...] = (
    Noise("transformers", r"`past_key_values`/`cache_params` are deprecated",
          "transformers 5 warns from its own generate(); our code passes no such argument"),
    Noise("transformers", r"Setting `pad_token_id` to `eos_token_id`",
          "generation pads with EOS on purpose (tiny models have no pad token)"),
    Noise("transformers", r"generation flags are not valid and may be ignored",
          "greedy decoding with a config that carries sampling defaults"),
    Noise("torch", r"TypedStorage is deprecated", "torch's own checkpoint loading", UserWarning),
    Noise("transformers", r"`torch_dtype` is deprecated", "older configs carry torch_dtype", FutureWarning),
    Noise("torch", r"The given NumPy array is not writable", "read-only memory-mapped signal arrays", UserWarning),
)

_CELL: contextvars.ContextVar[str | None] = contextvars.ContextVar("s2lbench_cell", default=None)
_STAGE: contextvars.ContextVar[str | None] = contextvars.ContextVar("s2lbench_stage", default=None)


def current_cell() -> str | None:
    return _CELL.get()


def current_stage() -> str | None:
    return _STAGE.get()


# ----------------------------------------------------------------------------------------- log records


class _Stamp(logging.Filter):
    """Adds ``record.where`` (``cell/stage``, ``-`` outside any) and demotes ``KNOWN_NOISE`` to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "where"):
            cell, stage = _CELL.get(), _STAGE.get()
            record.where = "/".join(p for p in (cell, stage) if p) or "-"
            if record.levelno >= logging.WARNING and _is_noise(record):
                record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def _is_noise(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    for noise in KNOWN_NOISE:
        origin = record.name
        if record.name == "py.warnings":  # captured warnings: "<file>:<line>: <Category>: <message>"
            origin = noise.origin if f"/{noise.origin}/" in message else record.name
        if origin.startswith(noise.origin) and re.search(noise.pattern, message):
            return True
    return False


class _TerminalFormatter(logging.Formatter):
    """The default terminal line: ``HH:MM:SS message``, warnings and errors named as such."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        message = record.getMessage()
        if record.name == "py.warnings":  # "<file>:<line>: <Category>: <message>\n  <source line>"
            message = message.strip().splitlines()[0]
        prefix = {logging.WARNING: "warning: ", logging.ERROR: "error: ",
                  logging.CRITICAL: "error: "}.get(record.levelno, "")
        text = f"{stamp} {prefix}{message}"
        if record.exc_info and record.levelno >= logging.ERROR:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _Buffer(logging.Handler):
    """Records logged before the log file's folder is known; replayed into it by ``log_to``."""

    def __init__(self, capacity: int = 20000):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.capacity = capacity

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) < self.capacity:
            self.records.append(record)


class _CellFiles(logging.Handler):
    """In a cluster worker: each record to ``<folder>/<cell>.log`` (``shared.log`` outside any cell)."""

    def __init__(self, folder: Path):
        super().__init__(logging.DEBUG)
        self.folder = folder
        self.files: dict[str, IO[str]] = {}
        self.setFormatter(logging.Formatter(FILE_FORMAT, DATE_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            name = _CELL.get() or "shared"
            f = self.files.get(name)
            if f is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                f = self.files[name] = open(self.folder / f"{_safe(name)}.log", "a", encoding="utf-8",
                                            errors="backslashreplace")
            f.write(self.format(record) + "\n")
            f.flush()
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        for f in self.files.values():
            f.close()
        self.files.clear()
        super().close()


def _safe(name: str) -> str:
    return re.sub(r"[^\w.%+-]", "_", name)


class _TerminalHandler(logging.Handler):
    """Lines above the live view (through rich) or plain lines on a stream."""

    def __init__(self, console: Console):
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < self.level:  # known noise, demoted by the stamp filter after the level check
            return
        try:
            self.console.write_line(self.format(record), level=record.levelno)
        except Exception:
            self.handleError(record)


# ----------------------------------------------------------------------------------------- progress


@dataclass
class Activity:
    """One piece of work with a size: steps of a training run, batches of a generation. ``update`` only
    stores numbers (the live view reads them when it redraws)."""

    name: str
    total: int | None
    unit: str
    done: int = 0
    fields: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    #: (time, done) where the rate's window began; the rate is over the last window (~10 s)
    _window: tuple[float, int] = (0.0, 0)
    _rate: float | None = None

    def __post_init__(self):
        self._window = (self.started, 0)

    def update(self, done: int | None = None, **fields: Any) -> None:
        if done is not None:
            self.done = done
        if fields:
            self.fields.update(fields)
        now = time.perf_counter()
        since, at = self._window
        if now - since >= 2.0 and self.done > at:
            self._rate = (self.done - at) / (now - since)
            self._window = (now, self.done) if now - since >= 10.0 else self._window

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n)

    def rate(self) -> float | None:
        if self._rate is not None:
            return self._rate
        elapsed = time.perf_counter() - self.started
        return self.done / elapsed if self.done and elapsed > 0.5 else None

    def describe(self) -> str:
        parts = [f"{self.name} {_count(self.done)}/{_count(self.total)} {self.unit}" if self.total
                 else f"{self.name} {_count(self.done)} {self.unit}" if self.done
                 else f"{self.name} ({_clock(time.perf_counter() - self.started)})"]
        if self.total and self.done:
            parts[0] += f" ({100 * self.done / self.total:.0f}%)"
        rate = self.rate()
        if rate:
            parts.append(f"{_count(rate) if rate >= 100 else f'{rate:.1f}'} {self.unit}/s" if rate >= 1
                         else f"{1 / rate:.1f} s/{self.unit.rstrip('s')}")
        for key, value in self.fields.items():
            parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
        return " · ".join(parts)


@dataclass
class GridProgress:
    """The grid line. Its estimate of the time left counts only cells that computed something (a cell whose
    stages were all cached takes seconds and says nothing of a cell still to train), assumes every cell left
    needs work (so a resumed grid's estimate is an upper bound), and takes off what the cell in hand has
    already run, so it does not grow while a long cell trains."""

    total: int
    done: int = 0
    failed: int = 0
    started: float = field(default_factory=time.perf_counter)
    cell_worked: bool = False  # the cell in hand computed a stage
    cell_started: float = field(default_factory=time.perf_counter)
    worked_seconds: float = 0.0
    worked_cells: int = 0

    def finish_cell(self, failed: bool) -> None:
        now = time.perf_counter()
        if failed:
            self.failed += 1
        else:
            self.done += 1
        if self.cell_worked:
            self.worked_seconds += now - self.cell_started
            self.worked_cells += 1
        self.cell_worked, self.cell_started = False, now

    def seconds_left(self) -> float | None:
        remaining = self.total - self.done - self.failed
        if remaining <= 0 or not self.worked_cells:
            return None
        per_cell = self.worked_seconds / self.worked_cells
        in_hand = min(time.perf_counter() - self.cell_started, per_cell)
        return max(0.0, per_cell * remaining - in_hand)

    def describe(self) -> str:
        elapsed = time.perf_counter() - self.started
        finished = self.done + self.failed
        text = f"cells {finished}/{self.total}"
        if self.failed:
            text += f" ({self.failed} failed)"
        text += f" · {_clock(elapsed)} elapsed"
        left = self.seconds_left()
        if left is not None:
            text += f" · ~{_clock(left)} left"
        return text


def _count(n: float) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e7 else f"{n / 1e3:.0f}k" if n >= 1e5 else f"{n:.0f}"


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 90 else _clock(seconds)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60:d}:{rest % 60:02d}"


class _View:
    """The live view's renderable: redrawn by rich's refresh thread from the console's current state."""

    def __init__(self, console: Console):
        self.console = console

    def __rich__(self):
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        rows = []
        grid = self.console.grid_progress
        if grid is not None:
            line = Table.grid(padding=(0, 1))
            line.add_row(ProgressBar(total=max(1, grid.total), completed=grid.done + grid.failed, width=24),
                         Text(grid.describe(), style="bold"))
            rows.append(line)
        status = self.console.status_line()
        if status:
            rows.append(Text(status, overflow="ellipsis", no_wrap=True))
        return Group(*rows)


# ----------------------------------------------------------------------------------------- the console


class Console:
    """The process's console (``get()``); see the module docstring."""

    def __init__(self):
        self.verbosity = NORMAL
        self.interactive = False
        self.stream: IO[str] = sys.stderr
        self.configured = False
        self.grid_progress: GridProgress | None = None
        self.activities: list[Activity] = []
        self.labels: list[str] = []
        self.log_file: Path | None = None
        self._handlers: list[logging.Handler] = []
        self._buffer: _Buffer | None = None
        self._file_handler: logging.Handler | None = None
        self._rich: Any = None
        self._live: Any = None
        self._open = 0  # grids and activities open: the live view runs while > 0
        self._last_plain = 0.0
        self._lock = threading.RLock()
        self.third_party_level = logging.WARNING
        #: in a cell's child process: where terminal lines and the status line go (the parent draws them)
        self._relay: Any = None
        #: in the parent: the status line a cell's child process last sent
        self._remote_status: str | None = None

    # --- set-up ---------------------------------------------------------------------------------------
    def configure(self, verbosity: int = NORMAL, *, stream: IO[str] | None = None,
                  interactive: bool | None = None) -> None:
        """Route every log record through the console: the terminal at ``verbosity``, a buffer kept for the
        log file. Safe to call again (the previous set-up is replaced)."""
        self.reset()
        self.verbosity = verbosity
        self.stream = stream or sys.stderr
        if interactive is None:
            interactive = _is_terminal(self.stream)
        self.interactive = interactive and verbosity > QUIET
        stamp = _Stamp()
        terminal = _TerminalHandler(self)
        terminal.setLevel({QUIET: logging.WARNING, NORMAL: NOTICE}.get(verbosity, logging.DEBUG))
        terminal.setFormatter(logging.Formatter(FILE_FORMAT, DATE_FORMAT) if verbosity >= VERBOSE
                              else _TerminalFormatter())
        self._buffer = _Buffer()
        root = logging.getLogger()
        for handler in (terminal, self._buffer):
            handler.addFilter(stamp)
            root.addHandler(handler)
            self._handlers.append(handler)
        root.setLevel(logging.DEBUG)
        logging.getLogger("s2lbench").setLevel(logging.DEBUG)
        third = logging.DEBUG if verbosity >= DEBUG else logging.INFO if verbosity >= VERBOSE else logging.WARNING
        for name in THIRD_PARTY:
            logging.getLogger(name).setLevel(third)
        self.third_party_level = third
        # progress bars of the hub, datasets and transformers (which reads the hub's switch when imported)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        # any other tqdm bar (a plugin's, a library's) in a process whose tqdm is imported from here on:
        # workers, subprocesses (tqdm reads TQDM_* defaults when imported); ours use ``Bar``
        os.environ.setdefault("TQDM_DISABLE", "1")
        _hushed.clear()
        quiet_third_parties(third)
        _known_warnings_filtered()
        logging.captureWarnings(True)
        self.configured = True

    def reset(self) -> None:
        """Undo ``configure`` (tests; a second ``main`` in one process)."""
        self._stop_live(force=True)
        root = logging.getLogger()
        for handler in self._handlers:
            root.removeHandler(handler)
            handler.close()
        self._handlers.clear()
        self._buffer = self._file_handler = None
        self.grid_progress, self.activities, self.labels = None, [], []
        self.log_file = None
        self._open = 0
        self.configured = False
        logging.captureWarnings(False)

    def log_to(self, out_dir: str | Path | None, command: str) -> Path | None:
        """Write this invocation's log to ``<out_dir>/logs/<timestamp>-<command>.log`` (DEBUG, every record
        since ``configure``); its path. ``out_dir`` None: the user's log folder (``default_log_dir()``), for
        commands whose output is a single file or a folder that must appear whole or not at all."""
        if not self.configured:
            self.configure(self.verbosity)
        folder = Path(out_dir) / LOG_DIR if out_dir is not None else default_log_dir()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = folder / f"{stamp}-{_safe(command)}.log"
        if path.exists() or self.log_file is not None:
            path = folder / f"{stamp}-{_safe(command)}-{os.getpid()}.log"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(path, encoding="utf-8", errors="backslashreplace")
        except OSError as e:  # the log is a record of the work, never a reason to refuse it
            logging.getLogger(__name__).warning("no log file for this run: %s: %s", path, e.strerror or e)
            return None
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter(FILE_FORMAT, DATE_FORMAT))
        handler.addFilter(_Stamp())
        if self._file_handler is not None:  # a second folder in one invocation: the first file is complete
            logging.getLogger().removeHandler(self._file_handler)
            self._file_handler.close()
        if self._buffer is not None:  # replayed once, then dropped: from here on the file has every record
            for record in self._buffer.records:
                handler.handle(record)
            logging.getLogger().removeHandler(self._buffer)
            self._handlers.remove(self._buffer)
            self._buffer = None
        logging.getLogger().addHandler(handler)
        self._handlers.append(handler)
        self._file_handler = handler
        self.log_file = path
        logging.getLogger(__name__).debug("s2lbench %s; argv %s; pid %d", command, sys.argv, os.getpid())
        return path

    @contextlib.contextmanager
    def worker_logs(self, out_dir: str | Path | None) -> Iterator[None]:
        """In a Ray or SLURM worker: each cell's records to ``<out>/logs/cells/<cell>.log`` while inside."""
        if out_dir is None:
            yield
            return
        if not self.configured:
            self.configure(QUIET, interactive=False)  # warnings on the job's stderr; all else in the cell logs
        handler = _CellFiles(Path(out_dir) / LOG_DIR / CELL_LOG_DIR)
        handler.addFilter(_Stamp())
        root = logging.getLogger()
        root.addHandler(handler)
        try:
            yield
        finally:
            root.removeHandler(handler)
            handler.close()

    # --- what code reports -------------------------------------------------------------------------
    @contextlib.contextmanager
    def cell(self, cell_id: str, label: str | None = None) -> Iterator[None]:
        token = _CELL.set(cell_id)
        self.labels.append(label or cell_id)
        try:
            yield
        finally:
            self.labels.pop()
            _CELL.reset(token)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        quiet_third_parties()
        token = _STAGE.set(name)
        try:
            yield
        finally:
            _STAGE.reset(token)

    @contextlib.contextmanager
    def activity(self, name: str | None = None, total: int | None = None, unit: str = "steps") -> Iterator[Activity]:
        """Work with a size, shown on the status line while it runs. ``name`` None: the current stage's title."""
        with self.showing(Activity(name or activity_name(), total, unit)) as work:
            yield work

    @contextlib.contextmanager
    def showing(self, work: Activity) -> Iterator[Activity]:
        """Show an activity made beforehand (one a callback updates) while inside."""
        with self._lock:
            self.activities.append(work)
            self._begin()
        try:
            yield work
        finally:
            with self._lock:
                self.activities.remove(work)
                self._end()

    def track(self, items: Iterable[T], name: str | None = None, total: int | None = None,
              unit: str = "batches") -> Iterator[T]:
        """``items`` with an activity advanced per item (what ``tqdm(items)`` was)."""
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        with self.activity(name, total, unit) as work:
            for item in items:
                yield item
                work.advance()
                self.tick()

    @contextlib.contextmanager
    def grid(self, total: int) -> Iterator[GridProgress]:
        with self._lock:
            self.grid_progress = GridProgress(total)
            self._begin()
        try:
            yield self.grid_progress
        finally:
            with self._lock:
                self._end()
                self.grid_progress = None

    def cell_finished(self, cell_id: str, error: str | None, logger: logging.Logger | None = None) -> None:
        """Count a finished cell on the grid line and say so above the view (an error as an error)."""
        logger = logger or logging.getLogger("s2lbench.grid")
        grid = self.grid_progress
        if grid is not None:
            grid.finish_cell(failed=bool(error))
        where = f" ({grid.describe()})" if grid is not None else ""
        if error:
            logger.error("cell %s FAILED: %s%s", cell_id, error, where)
        else:
            logger.log(NOTICE, "cell %s done%s", cell_id, where)

    def stage_done(self, logger: logging.Logger, stage: str, key: str, seconds: float | None) -> None:
        """A stage computed (``seconds``) or reused (None), said above the view, naming the work in hand."""
        title = STAGE_TITLES.get(stage, stage)
        about = f" for {self.labels[-1]}" if self.labels and stage not in SHARED_STAGES else ""
        if seconds is not None:
            self._cell_worked()
        if seconds is None:
            logger.log(NOTICE, "%s%s: reused (%s/%s)", title, about, stage, key[:12])
        else:
            logger.log(NOTICE, "%s%s: computed in %s (%s/%s)", title, about, _duration(seconds), stage, key[:12])

    def tick(self) -> None:
        """Where the output is not a terminal, print the status line if ``PROGRESS_SECONDS`` have passed."""
        if self.interactive or self.verbosity <= QUIET or not self.configured:
            return
        now = time.monotonic()
        if now - self._last_plain >= PROGRESS_SECONDS:
            self._last_plain = now
            status = self.status_line()
            grid = self.grid_progress
            if status or grid:
                line = " | ".join(p for p in (grid.describe() if grid else "", status) if p)
                self.write_line(f"{time.strftime('%H:%M:%S')} {line}")

    def status_line(self) -> str:
        if self._remote_status is not None:
            return self._remote_status
        busy = bool(self.activities or _STAGE.get())
        label = self.labels[-1] if self.labels else ("shared stages" if self.grid_progress and busy else "")
        work = (" › ".join(a.describe() for a in self.activities) if self.activities
                else STAGE_TITLES.get(_STAGE.get() or "", ""))
        return " — ".join(p for p in (label, work) if p)

    def closing(self, text: str) -> None:
        """The command line's last word (an error, an interruption): on stderr always, and in the log file."""
        logging.getLogger("s2lbench.cli").debug("%s", text)
        print(text, file=sys.stderr)

    def say(self, text: str = "", file: IO[str] | None = None) -> None:
        """A summary line on stdout (the run's closing lines), unless ``-q``."""
        if self.verbosity > QUIET:
            print(text, file=file or sys.stdout)

    # --- the terminal ----------------------------------------------------------------------------------
    def write_line(self, text: str, level: int = logging.INFO) -> None:
        if self._relay is not None:
            self._relay(("line", text, level))
            return
        with self._lock:
            if self._live is not None:
                from rich.text import Text

                style = "red" if level >= logging.ERROR else "yellow" if level >= logging.WARNING else None
                self._rich.print(Text(text, style=style), soft_wrap=True)
            else:
                self.stream.write(_plain(text) + "\n")
                self.stream.flush()

    def _begin(self) -> None:
        quiet_third_parties()
        self._open += 1
        if self._open == 1:
            self._last_plain = time.monotonic()
            if self.interactive and self._live is None:
                self._start_live()

    def _end(self) -> None:
        self._open = max(0, self._open - 1)
        if self._open == 0:
            self._stop_live()

    def _start_live(self) -> None:
        if self._relay is not None:  # a cell's child process: the parent draws the view
            return
        from rich.console import Console as RichConsole
        from rich.live import Live

        self._rich = RichConsole(file=self.stream, force_terminal=True, highlight=False)
        self._live = Live(_View(self), console=self._rich, refresh_per_second=REFRESH_PER_SECOND,
                          transient=True, redirect_stderr=True,
                          # stray prints go above the view, unless stdout is a file of its own
                          redirect_stdout=_is_terminal(sys.stdout))
        self._live.start()

    def _stop_live(self, force: bool = False) -> None:
        if self._live is not None:
            try:
                self._live.stop()
            finally:
                self._live = None


    # --- a cell in a child process (executors/isolation.py) --------------------------------------------
    def relay_to(self, send: Any) -> None:
        """In a cell's child process: the parent process keeps drawing the view, so nothing here touches the
        terminal. Lines meant for it, stray prints included, and (in a terminal) the status line a few times a
        second go to ``send`` as messages for the parent's :meth:`relayed`. The log file is shared as is."""
        self._live = None  # the parent's, forked: its refresh thread did not survive the fork; never stop it
        self._relay = send
        if self.interactive:
            sys.stdout = _RelayStream(self, logging.INFO)
            sys.stderr = _RelayStream(self, logging.WARNING)
            threading.Thread(target=self._relay_status, name="s2lbench-status", daemon=True).start()

    def _relay_status(self) -> None:
        last = None
        while True:
            status = self.status_line()
            if status != last:
                last = status
                try:
                    self._relay(("status", status))
                except (OSError, ValueError):  # the parent is gone, or the cell has answered and closed
                    return
            time.sleep(1 / REFRESH_PER_SECOND)

    def _cell_worked(self) -> None:
        """The cell in hand computed a stage: its time counts in the grid line's estimate."""
        if self._relay is not None:
            self._relay(("worked",))
        elif self.grid_progress is not None:
            self.grid_progress.cell_worked = True

    def relayed(self, message: tuple) -> None:  # the kinds are RELAYED's
        """In the parent: apply a message from a cell's child process (a line to print, its status line, that
        it computed a stage)."""
        if message[0] == "line":
            self.write_line(message[1], message[2])
        elif message[0] == "status":
            self._remote_status = message[1] or None
        elif message[0] == "worked":
            self._cell_worked()

    def relay_ended(self) -> None:
        """In the parent: the cell's child process has finished; the status line is this process's again."""
        self._remote_status = None


class _RelayStream:
    """``sys.stdout`` / ``sys.stderr`` of a cell's child process in a terminal: whole lines to the parent."""

    def __init__(self, console: Console, level: int):
        self.console, self.level, self._pending = console, level, ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if line.strip():
                self.console.write_line(_plain(line), self.level)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def default_log_dir() -> Path:
    """Where logs go that have no results folder to sit in (and crash reports): ``$S2LBENCH_LOG_DIR``, else
    ``<tmp>/s2lbench-logs``."""
    import tempfile

    return Path(os.environ.get("S2LBENCH_LOG_DIR") or Path(tempfile.gettempdir()) / "s2lbench-logs")


_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def _plain(text: str) -> str:
    return _ESCAPES.sub("", text)


def _is_terminal(stream: IO[str]) -> bool:
    if os.environ.get("S2LBENCH_PLAIN") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


_hushed: set[str] = set()


def quiet_third_parties(level: int | None = None) -> None:
    """transformers', datasets' and the hub's progress bars off, and their records into our handlers (their
    own stderr handlers, which print ``[transformers] ...`` beside our lines, removed). Acts on the libraries
    already imported (importing transformers takes seconds: ``s2lbench --help`` must not); the console calls
    it again whenever work begins, so a library imported later is hushed before it speaks."""
    if level is None:
        level = _CONSOLE.third_party_level
    if "transformers" in sys.modules and "transformers" not in _hushed:
        with contextlib.suppress(ImportError, AttributeError):
            import transformers.utils.logging as hf_logging

            hf_logging.disable_progress_bar()
            hf_logging.disable_default_handler()
            hf_logging.enable_propagation()
            hf_logging.set_verbosity(level)
            _hushed.add("transformers")
    if "datasets" in sys.modules and "datasets" not in _hushed:
        with contextlib.suppress(ImportError, AttributeError):
            import datasets.utils.logging as ds_logging

            ds_logging.disable_progress_bar()
            ds_logging.set_verbosity(level)
            _hushed.add("datasets")


def _known_warnings_filtered() -> None:
    """``warnings.warn`` of the known noise never fires (filtered at the source, by message and category)."""
    for noise in KNOWN_NOISE:
        if noise.category is not None:
            warnings.filterwarnings("ignore", message=noise.pattern, category=noise.category)


_CONSOLE = Console()


def get() -> Console:
    return _CONSOLE


# module-level shorthands: what the rest of s2lbench calls
configure = _CONSOLE.configure
log_to = _CONSOLE.log_to
worker_logs = _CONSOLE.worker_logs
cell = _CONSOLE.cell
stage = _CONSOLE.stage
activity = _CONSOLE.activity
track = _CONSOLE.track
grid = _CONSOLE.grid
cell_finished = _CONSOLE.cell_finished
stage_done = _CONSOLE.stage_done
tick = _CONSOLE.tick
say = _CONSOLE.say
closing = _CONSOLE.closing


showing = _CONSOLE.showing


class Bar:
    """What ``tqdm(...)`` was, shown on the status line instead of as a bar of its own: the same arguments
    (``iterable``, ``total``, ``desc``, ``unit``, ``disable``; the rest ignored), ``update(n)``, ``close()``,
    iteration and ``with``. It shows from creation (or the start of iteration) until closed."""

    def __init__(self, iterable: Iterable[Any] | None = None, total: int | None = None, desc: str | None = None,
                 unit: str = "it", disable: bool = False, **_: Any):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable = iterable
        self.work = Activity(desc or activity_name(), total, unit)
        self._shown: contextlib.ExitStack | None = None
        if not disable:
            self._shown = contextlib.ExitStack()
            self._shown.enter_context(_CONSOLE.showing(self.work))

    def __iter__(self) -> Iterator[Any]:
        try:
            for item in self.iterable or ():
                yield item
                self.update()
        finally:
            self.close()

    def update(self, n: int = 1) -> None:
        self.work.update(self.work.done + n)
        _CONSOLE.tick()

    def close(self) -> None:
        if self._shown is not None:
            shown, self._shown = self._shown, None
            shown.close()

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def activity_name(default: str = "working") -> str:
    """The current stage as the status line names it (``fine-tune``, ``train the proxy``); ``default`` outside one."""
    stage = _STAGE.get()
    return STAGE_TITLES.get(stage or "", stage or default)


def hush_trainer(trainer: Any) -> None:
    """A transformers ``Trainer`` without its own printing (the ``{'loss': ...}`` dicts) and bars: its steps
    reach the console through the caller's callback instead."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)
    with contextlib.suppress(ImportError):
        from transformers.utils.notebook import NotebookProgressCallback

        trainer.remove_callback(NotebookProgressCallback)


def notice(logger: logging.Logger, message: str, *args: Any) -> None:
    """A line the user sees at the default verbosity (and the log file keeps)."""
    logger.log(NOTICE, message, *args)


def log_file() -> Path | None:
    return _CONSOLE.log_file
