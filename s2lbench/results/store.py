"""The results store: one SQLite file per output folder, plus per-example samples as JSONL beside it.

Tables
- ``cells``: one row per grid cell (selector x budget x seed x target; the full-data reference uses
  selector ``full``), its status, provenance (config hash, selected-ids hash, fingerprints, versions,
  git commit, the environment its models trained in), cost accounting (wall seconds and estimated FLOPs
  per stage, as JSON) and the regime its selection ran in (JSON).
- ``results``: one row per (cell, task, metric) with the aggregate value, the metric's direction, the
  task's in-domain flag, and the relative path of the task's per-example samples file.

Integrity: before a run writes to an existing store, SQLite checks it (``PRAGMA quick_check``); a damaged
store is named and left untouched. Each cell's samples folder holds ``manifest.json``, the size and SHA-256
of every samples file, which ``s2lbench verify`` checks (readers warn when a size differs).

Several processes may write one store at once: WAL journal, a busy timeout, and short transactions.
A process running a cell holds an exclusive lock on ``locks/<cell_id>.lock`` while it works, so a cell
marked running whose lock nobody holds is known to be *interrupted* (its process was killed), and two runs
sharing a folder never work on one cell at once.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from s2lbench.common.atomic import known_digest, output_lock, write_json, write_jsonl
from s2lbench.common.files import iter_jsonl
from s2lbench.errors import DataError

log = logging.getLogger(__name__)

DB_NAME = "results.sqlite"
SAMPLES_DIR = "samples"
#: per cell, beside its samples files: {file name: {"size", "sha256"}}
SAMPLES_MANIFEST = "manifest.json"
#: one line per ``s2lbench run`` of the folder (start, end, wall seconds, cell counts, what stopped it)
INVOCATIONS = "invocations.jsonl"
LOCKS_DIR = "locks"
STATUSES = ("pending", "running", "done", "failed")
INTERRUPTED = "interrupted"  # shown, never stored: "running" with no live process holding the cell's lock
FULL = "full"

SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    cell_id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    selector TEXT NOT NULL,
    budget INTEGER NOT NULL,
    fraction REAL NOT NULL,
    seed INTEGER NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    error TEXT,
    config_hash TEXT,
    selected_ids_hash TEXT,
    pool_fingerprint TEXT,
    model_fingerprint TEXT,
    versions TEXT,
    git_commit TEXT,
    cost TEXT,
    environment TEXT,
    started_at REAL,
    finished_at REAL,
    regime TEXT
);
CREATE TABLE IF NOT EXISTS results (
    cell_id TEXT NOT NULL REFERENCES cells(cell_id),
    task TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL,
    higher_is_better INTEGER NOT NULL,
    in_domain INTEGER,
    n INTEGER,
    samples_path TEXT,
    PRIMARY KEY (cell_id, task, metric)
);
"""


@dataclass
class Cell:
    cell_id: str
    experiment: str
    selector: str
    budget: int
    fraction: float
    seed: int
    target: str
    status: str = "pending"
    error: str | None = None
    config_hash: str | None = None
    selected_ids_hash: str | None = None
    pool_fingerprint: str | None = None
    model_fingerprint: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    cost: dict[str, float] = field(default_factory=dict)
    #: {"finetune": [...], "proxy": [...]}: ``provenance.training_environment`` of each training run
    environment: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None
    #: the regime its selection ran in (``s2lbench.selection.regime``: source mix, the selector's own report)
    regime: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResultRow:
    cell_id: str
    task: str
    metric: str
    value: float
    higher_is_better: bool
    in_domain: bool | None = None
    n: int | None = None
    samples_path: str | None = None


_JSON_COLUMNS = ("versions", "cost", "environment", "regime")
#: columns added after the first release: a store written before them is upgraded when opened for writing
#: and read as it is (the column empty) when opened read-only
ADDED_COLUMNS = {"environment": "TEXT", "regime": "TEXT"}


class CellBusy(RuntimeError):
    """Another process holds this cell's lock: it is running the cell now."""


SQLITE_HEADER = b"SQLite format 3\x00"


class ResultsStore:
    """The results store of one folder. ``read_only=True`` (leaderboard, status, regress) opens an existing
    store with SQLite's ``mode=ro`` and refuses a missing, empty, corrupted or foreign database (one without
    s2lbench's tables) with a DataError naming it -- it never writes a schema or anything else."""

    def __init__(self, folder: str | Path, *, read_only: bool = False):
        self.folder = Path(folder)
        self.read_only = read_only
        self.path = self.folder / DB_NAME
        if read_only:
            self._check_readable()
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DataError(f"cannot create the results folder: {e.strerror or e}", path=self.folder) from None
        if self.path.exists() and self.path.stat().st_size and not _has_sqlite_header(self.path):
            raise DataError("not an SQLite database; move it away or choose another output folder", path=self.path)
        if self.path.exists() and self.path.stat().st_size:
            problem = quick_check(self.path)
            if problem:
                raise DataError(f"the results database is damaged (SQLite quick_check: {problem}); left untouched "
                                "-- restore it from a copy, or move it away and rerun (finished stages are reused)",
                                path=self.path)
        try:
            # one process at a time: inside executescript SQLite answers a second writer's lock upgrade with
            # SQLITE_BUSY at once, without the busy wait, so runs opening one new store together could fail
            with output_lock(self.path), self._connect() as con:
                con.executescript(SCHEMA)
                self._add_missing_columns(con)
                self._check_schema(con)
        except sqlite3.DatabaseError as e:
            raise DataError(f"cannot use the results database: {e}", path=self.path) from None

    def _check_readable(self) -> None:
        if not self.folder.is_dir():
            raise DataError("results folder not found", path=self.folder)
        if not self.path.is_file():
            raise DataError(f"not a results folder (no {DB_NAME})", path=self.folder)
        if self.path.stat().st_size == 0:
            raise DataError("the results database is empty (no run has written to it)", path=self.path)
        if not _has_sqlite_header(self.path):
            raise DataError("not an SQLite database (corrupted or another kind of file)", path=self.path)
        try:
            with self._connect() as con:
                self._check_schema(con)
        except sqlite3.DatabaseError as e:
            raise DataError(f"cannot read the results database: {e}", path=self.path) from None

    def _check_schema(self, con: sqlite3.Connection) -> None:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = {"cells", "results"} - tables
        if missing:
            raise DataError(f"not an s2lbench results database (no table {', '.join(sorted(missing))}; "
                            f"it has {', '.join(sorted(tables)) or 'no tables'})", path=self.path)
        absent = {f.name for f in dataclasses.fields(Cell)} - _cell_columns(con) - set(ADDED_COLUMNS)
        if absent:
            raise DataError(f"not an s2lbench results database (table cells lacks {', '.join(sorted(absent))})",
                            path=self.path)

    @staticmethod
    def _add_missing_columns(con: sqlite3.Connection) -> None:
        for name, kind in ADDED_COLUMNS.items():
            if name not in _cell_columns(con):
                con.execute(f"ALTER TABLE cells ADD COLUMN {name} {kind}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            # mode=ro never writes the database; with no -wal file beside it no writer is mid-transaction, and
            # immutable=1 also keeps SQLite from creating -wal/-shm files in the results folder
            wal = self.path.with_name(self.path.name + "-wal").exists()
            con = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro{'' if wal else '&immutable=1'}",
                                  uri=True, timeout=60, isolation_level=None)
        else:
            con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            if not self.read_only:
                con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA busy_timeout=60000")
            con.row_factory = sqlite3.Row
            yield con
        except sqlite3.DatabaseError as e:  # damage past the first page shows only when a query reaches it
            raise DataError(f"cannot {'read' if self.read_only else 'use'} the results database: {e}",
                            path=self.path) from None
        finally:
            con.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    # cells -------------------------------------------------------------------------------------------
    def upsert_cell(self, cell: Cell) -> None:
        row = asdict(cell)
        for col in _JSON_COLUMNS:
            row[col] = json.dumps(row[col], sort_keys=True)
        cols = ", ".join(row)
        marks = ", ".join(f":{c}" for c in row)
        updates = ", ".join(f"{c}=excluded.{c}" for c in row if c != "cell_id")
        with self._transaction() as con:
            con.execute(f"INSERT INTO cells ({cols}) VALUES ({marks}) ON CONFLICT(cell_id) DO UPDATE SET {updates}", row)

    def add_pending(self, cell: Cell) -> None:
        """Record a cell as pending unless the store already knows it."""
        existing = self.get_cell(cell.cell_id)
        if existing is None:
            self.upsert_cell(cell)

    def get_cell(self, cell_id: str) -> Cell | None:
        with self._connect() as con:
            row = con.execute("SELECT * FROM cells WHERE cell_id = ?", (cell_id,)).fetchone()
        return _cell_from_row(row, self.path) if row else None

    def cells(self, experiment: str | None = None) -> list[Cell]:
        sql, args = "SELECT * FROM cells", ()
        if experiment:
            sql, args = sql + " WHERE experiment = ?", (experiment,)
        with self._connect() as con:
            rows = con.execute(sql + " ORDER BY target, selector, budget, seed", args).fetchall()
        return [_cell_from_row(r, self.path) for r in rows]

    def set_status(self, cell_id: str, status: str, error: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        now = time.time()
        with self._transaction() as con:
            if status == "running":
                con.execute("UPDATE cells SET status=?, error=NULL, started_at=? WHERE cell_id=?", (status, now, cell_id))
            else:
                con.execute("UPDATE cells SET status=?, error=?, finished_at=? WHERE cell_id=?",
                            (status, error, now, cell_id))

    def _lock_path(self, cell_id: str) -> Path:
        return self.folder / LOCKS_DIR / f"{cell_id}.lock"

    @contextmanager
    def cell_lock(self, cell_id: str) -> Iterator[None]:
        """Hold the cell's lock while running it; raise ``CellBusy`` at once if another process holds it.
        The OS drops the lock when its process dies, however it dies."""
        path = self._lock_path(cell_id)
        if not self.read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "r" if self.read_only else "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EACCES):
                    raise CellBusy(f"cell {cell_id} is being run by another process") from None
                raise
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def is_live(self, cell_id: str) -> bool:
        """Whether some process holds the cell's lock right now."""
        if not self._lock_path(cell_id).exists():
            return False
        try:
            with self.cell_lock(cell_id):
                return False
        except CellBusy:
            return True

    def shown_status(self, cell: Cell) -> str:
        """The status to show a person: a running cell nobody is running is ``interrupted``."""
        if cell.status == "running" and not self.is_live(cell.cell_id):
            return INTERRUPTED
        return cell.status

    # results -----------------------------------------------------------------------------------------
    def write_samples(self, cell_id: str, task: str, samples: Iterable[dict[str, Any]]) -> str:
        """Write one task's samples of a cell and list the file (size, SHA-256) in the cell's samples manifest."""
        rel = f"{SAMPLES_DIR}/{cell_id}/{task}.jsonl"
        path = self.folder / rel
        write_jsonl(path, samples)
        manifest_path = path.parent / SAMPLES_MANIFEST
        with output_lock(manifest_path):
            manifest = read_samples_manifest(path.parent)
            manifest[path.name] = {"size": path.stat().st_size, "sha256": known_digest(path)}
            write_json(manifest_path, manifest)
        return rel

    def add_results(self, rows: Iterable[ResultRow]) -> None:
        rows = list(rows)
        with self._transaction() as con:
            con.executemany(
                "INSERT INTO results (cell_id, task, metric, value, higher_is_better, in_domain, n, samples_path) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(cell_id, task, metric) DO UPDATE SET "
                "value=excluded.value, higher_is_better=excluded.higher_is_better, in_domain=excluded.in_domain, "
                "n=excluded.n, samples_path=excluded.samples_path",
                [(r.cell_id, r.task, r.metric, r.value, int(r.higher_is_better),
                  None if r.in_domain is None else int(r.in_domain), r.n, r.samples_path) for r in rows])

    def results(self, cell_id: str | None = None) -> list[ResultRow]:
        sql, args = "SELECT * FROM results", ()
        if cell_id:
            sql, args = sql + " WHERE cell_id = ?", (cell_id,)
        with self._connect() as con:
            rows = con.execute(sql + " ORDER BY cell_id, task, metric", args).fetchall()
        return [_result_from_row(r, self.path) for r in rows]

    def load_samples(self, samples_path: str) -> list[dict[str, Any]]:
        path = self.folder / samples_path
        if Path(samples_path).is_absolute() or ".." in Path(samples_path).parts:
            raise DataError(f"samples path {samples_path!r} points outside the results folder", path=self.path)
        rows = [row for _, row in iter_jsonl(path, "samples file")]  # a row that does not parse is named first
        entry = read_samples_manifest(path.parent).get(path.name)
        if entry and path.stat().st_size != entry.get("size"):  # rows that parse, but not the rows written
            log.warning("%s: samples file changed since it was written (%d bytes, its manifest says %s); run "
                        "`s2lbench verify %s` (it sends the cell back for a rerun)", path, path.stat().st_size,
                        entry.get("size"), self.folder)
        return rows


def _cell_columns(con: sqlite3.Connection) -> set[str]:
    return {r[1] for r in con.execute("PRAGMA table_info(cells)")}


#: numeric columns and what they must hold: SQLite stores any value in any column, so an edited or damaged
#: database could hand the leaderboard a string where it adds numbers
_CELL_NUMBERS = {"budget": int, "seed": int, "fraction": float}
_RESULT_NUMBERS = {"value": float, "n": int}


def _cell_from_row(row: sqlite3.Row, path: Path) -> Cell:
    data = dict(row)
    where = f"cell {data.get('cell_id')!r}"
    for col in _JSON_COLUMNS:
        data[col] = _json_column(data.get(col), f"{where}, column {col}", path)
    for col, kind in _CELL_NUMBERS.items():
        _check_number(data.get(col), kind, f"{where}, column {col}", path, nullable=False)
    return Cell(**data)


def _result_from_row(r: sqlite3.Row, path: Path) -> ResultRow:
    for col, kind in _RESULT_NUMBERS.items():
        _check_number(r[col], kind, f"result {r['cell_id']!r} {r['task']}/{r['metric']}, column {col}", path)
    return ResultRow(r["cell_id"], r["task"], r["metric"], r["value"], bool(r["higher_is_better"]),
                     None if r["in_domain"] is None else bool(r["in_domain"]), r["n"], r["samples_path"])


def cell_from_record(record: Any, path: Path) -> Cell:
    """A Cell from a ``cells`` row, or a dict with the same columns (JSON columns as text), its types checked;
    ``path`` is named in the error. Used by readers of the store's exports (results/export.py)."""
    return _cell_from_row(record, path)


def result_from_record(record: Any, path: Path) -> ResultRow:
    """A ResultRow from a ``results`` row or a dict with the same columns, its numbers checked."""
    return _result_from_row(record, path)


def _json_column(text: Any, where: str, path: Path) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (TypeError, json.JSONDecodeError) as e:
        raise DataError(f"{where}: not valid JSON ({getattr(e, 'msg', e)}); the database was edited or damaged",
                        path=path) from None
    if not isinstance(value, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(value).__name__}", path=path)
    return value


def _check_number(value: Any, kind: type, where: str, path: Path, nullable: bool = True) -> None:
    ok = isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool)
    if not ok and not (nullable and value is None):
        raise DataError(f"{where}: {value!r} is not {'a number' if kind is float else 'an integer'}; "
                        "the database was edited or damaged", path=path)


def read_samples_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    """A cell's samples manifest ({file name: {size, sha256}}); {} where there is none or it is unreadable."""
    try:
        data = json.loads((Path(folder) / SAMPLES_MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def quick_check(path: Path) -> str | None:
    """None if SQLite's ``PRAGMA quick_check`` passes on the database at ``path`` (opened read-only: nothing is
    written, not even a journal), else what it reports (first lines)."""
    wal = path.with_name(path.name + "-wal").exists()
    try:
        con = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro{'' if wal else '&immutable=1'}", uri=True,
                              timeout=60)
        try:
            rows = [str(r[0]) for r in con.execute("PRAGMA quick_check(5)")]
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        return str(e)
    return None if rows == ["ok"] else "; ".join(rows)[:300]


def _has_sqlite_header(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def record_invocation(folder: Path, record: dict[str, Any]) -> None:
    """Append one run's line to the folder's invocation log; the leaderboard's provenance sums them into the
    grid's wall time."""
    line = json.dumps(record) + "\n"
    fd = os.open(Path(folder) / INVOCATIONS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one small O_APPEND write: concurrent runs never interleave lines
    finally:
        os.close(fd)


def read_invocations(folder: Path) -> list[dict]:
    """``invocations.jsonl`` of a results folder (one line per ``s2lbench run``); a line that does not parse,
    or lacks a numeric ``wall_seconds``, is refused with the file and line named."""
    path = Path(folder) / INVOCATIONS
    if not path.is_file():
        return []
    out = []
    for number, row in iter_jsonl(path, "invocation log"):
        try:
            float(row["wall_seconds"])
        except (ValueError, TypeError, KeyError) as e:
            raise DataError(f"not an invocation record ({type(e).__name__}: {e})", path=path, line=number) from None
        out.append(row)
    return out
