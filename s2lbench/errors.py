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
