"""Reading input files so that every error names the file, the line and what is wrong (missing, not UTF-8,
malformed JSON)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from s2lbench.errors import DataError


def _decode_error(path: Path, e: UnicodeDecodeError, data: bytes, offset: int = 0) -> DataError:
    """A DataError naming the file, the line and the byte that is not UTF-8."""
    at = offset + e.start
    line = data.count(b"\n", 0, at) + 1 if offset == 0 else None
    hint = " (it looks like UTF-16; save it as UTF-8)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else \
        " (save it as UTF-8)"
    return DataError(f"not UTF-8 text: byte {data[at:at + 1]!r} at offset {at}{hint}", path=path, line=line)


def check_input_file(path: str | Path, what: str = "file") -> Path:
    """``path`` if it is a regular file; a missing path, a folder or a device (``/dev/zero`` never ends) is a
    DataError naming it."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} not found", path=path)
    if path.is_dir():
        raise DataError(f"is a folder, expected a {what}", path=path)
    if not path.is_file():
        raise DataError(f"is not a regular file (a device, pipe or socket), expected a {what}", path=path)
    return path


def read_bytes(path: str | Path, what: str = "file") -> bytes:
    """A file's bytes; a missing file, a folder or an unreadable file is a DataError naming it."""
    path = check_input_file(path, what)
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read: {e.strerror or e}", path=path) from None


def read_text(path: str | Path, what: str = "file") -> str:
    """A UTF-8 text file's content (a leading BOM is dropped); undecodable bytes are a DataError naming the line."""
    path = Path(path)
    data = read_bytes(path, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _decode_error(path, e, data) from None


def read_json(path: str | Path, what: str = "file") -> Any:
    """A JSON file's content; a missing, undecodable or malformed file is a DataError naming it."""
    path = Path(path)
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON: {e.msg} (column {e.colno})", path=path, line=e.lineno) from None
    except RecursionError:
        raise DataError("not valid JSON: nested too deeply", path=path) from None


def read_json_object(path: str | Path, what: str = "file") -> dict[str, Any]:
    """``read_json`` for files that must hold one JSON object (manifests); any other shape is a DataError."""
    data = read_json(path, what)
    if not isinstance(data, dict):
        raise DataError(f"expected a JSON object, got {type(data).__name__}", path=path)
    return data


def iter_lines(path: str | Path, what: str = "file") -> Iterator[tuple[int, str]]:
    """(line number, text) for each line of a UTF-8 file; a line that is not UTF-8 is a DataError naming it."""
    path = check_input_file(path, what)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DataError(f"cannot read: {e.strerror or e}", path=path) from None
    with f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                hint = " (it looks like UTF-16; save it as UTF-8)" if lineno == 1 and raw[:2] in (
                    b"\xff\xfe", b"\xfe\xff") else " (save it as UTF-8)"
                raise DataError(f"not UTF-8 text: byte {raw[e.start:e.start + 1]!r} at column {e.start + 1}{hint}",
                                path=path, line=lineno) from None


def iter_jsonl(path: Path, what: str = "file") -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file; errors name the file and line."""
    for lineno, line in iter_lines(path, what):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"malformed JSON ({e.msg} at column {e.colno})", path=path, line=lineno) from None
        except RecursionError:
            raise DataError("malformed JSON (nested too deeply)", path=path, line=lineno) from None
        if not isinstance(row, dict):
            raise DataError(f"expected a JSON object, got {type(row).__name__}", path=path, line=lineno)
        yield lineno, row


def read_json_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON list or JSON Lines file; errors (missing, undecodable, malformed) name the file and line."""
    path = Path(path)
    if path.suffix == ".jsonl":
        rows = []
        for lineno, line in iter_lines(path, "test file"):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(f"malformed JSON ({e.msg})", path=path, line=lineno) from None
        return rows
    data = read_json(path, "test file")
    if not isinstance(data, list):
        raise DataError("expected a JSON list of objects", path=path)
    return data
