"""Errors users see. Each names the file, row, key or plugin at fault; the CLI prints them without a traceback."""

from __future__ import annotations


class S2LBenchError(Exception):
    """Base for every error s2lbench raises on purpose."""


class DataError(S2LBenchError):
    """Bad input data: names the file and, where known, the line and field."""

    def __init__(self, message: str, *, path: object = None, line: int | None = None, field: str | None = None):
        where = ""
        if path is not None:
            where = str(path)
            if line is not None:
                where += f", line {line}"
            if field is not None:
                where += f", field {field!r}"
            where += ": "
        super().__init__(where + message)
        self.path, self.line, self.field = path, line, field


class ConfigError(S2LBenchError):
    """A configuration value or key is wrong: names the key path."""


class PluginError(S2LBenchError):
    """A plugin failed to load or registered something invalid: names the plugin."""


class MissingSignalError(S2LBenchError):
    """A selector needs a per-example signal that is not available: says which and how to compute it."""


class BudgetError(S2LBenchError):
    """A selection budget is impossible for the pool."""


class OutputError(S2LBenchError):
    """An output path cannot be written (a folder where a file is expected, a device, a read-only place)."""


HUB_HINT = ("the hub is not reachable; set HF_HUB_OFFLINE=1 to use the local cache (HF_HOME), "
            "or use a local file or folder instead of the hub id")
OFFLINE_HINT = ("not in the local cache, and the hub is off (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set); "
                "unset it where the hub is reachable, or use a local file or folder instead of the hub id")


def hub_hint() -> str:
    import os

    offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
                  for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return OFFLINE_HINT if offline else HUB_HINT


def _filename(e: BaseException) -> str:
    name = getattr(e, "filename", None)
    other = getattr(e, "filename2", None)
    if name is None:
        return ""
    return f"{name}" + (f" -> {other}" if other else "") + ": "


def describe_expected(e: BaseException) -> str | None:
    """One line for a failure of the outside world (I/O, decoding, parsing, database, hub), else None (a bug)."""
    import csv
    import json
    import pickle
    import sqlite3
    import zipfile

    if isinstance(e, UnicodeDecodeError):
        return f"{culprit(e)}not UTF-8 text (byte {e.object[e.start:e.start + 1]!r} at offset {e.start}); " \
               "save the file as UTF-8"
    if isinstance(e, UnicodeEncodeError):
        return f"{culprit(e)}cannot encode text as {e.encoding} ({e.object[e.start:e.end]!r} at position " \
               f"{e.start}; a lone surrogate?)"
    if is_hub_unreachable(e):
        return f"{hub_hint()} ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
    if isinstance(e, OSError):
        reason = e.strerror or str(e) or type(e).__name__
        return f"{_filename(e)}{reason}"
    if isinstance(e, json.JSONDecodeError):
        return f"{culprit(e)}malformed JSON (line {e.lineno}, column {e.colno}: {e.msg})"
    if isinstance(e, csv.Error):
        return f"{culprit(e)}malformed CSV: {e}"
    if isinstance(e, sqlite3.Error):
        return f"database error: {e}"
    if isinstance(e, (pickle.UnpicklingError, zipfile.BadZipFile, EOFError)):
        return f"cannot read a saved array or tensor: {type(e).__name__}: {e}"
    try:
        import yaml
    except ImportError:  # pragma: no cover
        yaml = None
    if yaml is not None and isinstance(e, yaml.YAMLError):
        return f"{culprit(e)}invalid YAML: {e}"
    return None


def culprit(e: BaseException) -> str:
    """``"PATH: "`` for the file an error was raised while reading or writing (the innermost frame holding an
    open file or a path), else "" -- so that a decoding error deep in a library still names the file."""
    import io
    import os

    tb, frames = e.__traceback__, []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for value in frame.f_locals.values():
            if isinstance(value, io.IOBase) and isinstance(getattr(value, "name", None), str):
                return f"{value.name}: "
        for name in ("path", "filename", "file", "origin"):
            value = frame.f_locals.get(name)
            if isinstance(value, (str, os.PathLike)) and str(value):
                return f"{os.fspath(value)}: "
    return ""


def is_hub_unreachable(e: BaseException) -> bool:
    names = {cls.__name__ for cls in type(e).__mro__}
    hub_errors = {"ConnectionError", "OfflineModeIsEnabled", "LocalEntryNotFoundError", "Timeout",
                  "ConnectTimeout", "ReadTimeout", "MaxRetryError", "NewConnectionError", "NameResolutionError"}
    # BrokenPipeError is a builtin ConnectionError, but of our own stdout (a reader that went away), not the hub's
    return bool(names & hub_errors) and not isinstance(e, (FileNotFoundError, PermissionError, BrokenPipeError))
