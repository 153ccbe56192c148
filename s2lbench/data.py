"""Load SFT pools: local JSON / JSONL / CSV with a column mapping, Hugging Face hub datasets, GSM8K.

Every loader returns a ``Pool`` of ``SFTExample`` records with stable ids. Bad input raises ``DataError``
naming the file, line and field.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from s2lbench.errors import DataError
from s2lbench.records import Pool, SFTExample

log = logging.getLogger(__name__)

FIELDS = ("id", "instruction", "input", "output", "source")
REQUIRED = ("instruction", "output")

#: column mappings (record field -> column in the file) for the formats we know by name
PRESETS: dict[str, dict[str, str]] = {
    "alpaca": {"instruction": "instruction", "input": "input", "output": "output"},
    "mathinstruct": {"instruction": "instruction", "output": "output", "source": "source"},
    "s2lbench": {"id": "id", "instruction": "instruction", "input": "input", "output": "output", "source": "source"},
    "gsm8k": {"instruction": "question", "output": "answer"},
}
#: a preset's optional columns: absent from a row means the field's default
OPTIONAL = {"id", "input", "source"}

HUB_DATASETS = {
    "TIGER-Lab/MathInstruct": "mathinstruct",
    "openai/gsm8k": "gsm8k",
    "gsm8k": "gsm8k",
}


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


def _iter_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line or row number, row) pairs; line numbers are 1-based as editors show them."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from iter_jsonl(path)
    elif suffix == ".json":
        data = read_json(path)
        if isinstance(data, dict):
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise DataError("expected a JSON list of objects (or an object holding one list)", path=path)
            data = lists[0]
        if not isinstance(data, list):
            raise DataError("expected a JSON list of objects", path=path)
        for i, row in enumerate(data):
            if not isinstance(row, dict):
                raise DataError(f"item {i} is a {type(row).__name__}, not an object", path=path)
            yield i + 1, row
    elif suffix in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(read_text(path), newline=""), delimiter="\t" if suffix == ".tsv" else ",")
        try:
            for row in reader:
                if None in row:
                    raise DataError(f"row has {len(reader.fieldnames or []) + len(row[None])} fields but the header "
                                    f"has {len(reader.fieldnames or [])}", path=path, line=reader.line_num)
                yield reader.line_num, row
        except csv.Error as e:
            raise DataError(f"malformed CSV: {e}", path=path, line=reader.line_num) from None
    else:
        raise DataError("unsupported file type (use .jsonl, .json, .csv or .tsv)", path=path)


def content_id(source: str, instruction: str, input: str, output: str) -> str:
    digest = hashlib.sha1("\x1f".join((source, instruction, input, output)).encode()).hexdigest()
    return digest[:16]


def records_from_rows(rows: Iterable[tuple[int, Mapping[str, Any]]], columns: Mapping[str, str], *,
                      origin: object, default_source: str = "default",
                      optional: Iterable[str] = OPTIONAL) -> list[SFTExample]:
    """Map raw rows to records. Ids come from the id column, else from content (+ '-k' for repeats).

    Columns for the fields in ``optional`` may be absent from the file; every other mapped column must exist.
    """
    optional = set(optional)
    unknown = set(columns) - set(FIELDS)
    if unknown:
        raise DataError(f"column mapping names unknown record field(s) {sorted(unknown)}; fields are {list(FIELDS)}",
                        path=origin)
    for field in REQUIRED:
        if field not in columns:
            raise DataError(f"column mapping has no column for required field {field!r}", path=origin)
    examples: list[SFTExample] = []
    seen: dict[str, int] = {}
    repeats: dict[str, int] = {}
    checked_header = False
    for lineno, row in rows:
        if not checked_header:
            missing = [c for f, c in columns.items() if f not in optional and c not in row]
            if missing:
                raise DataError(f"column {missing[0]!r} not found; the file has columns {sorted(row)}",
                                path=origin, line=lineno, field=missing[0])
            checked_header = True
        values: dict[str, str] = {}
        for field, column in columns.items():
            value = row.get(column)
            if value is None:
                if field in optional:
                    continue
                raise DataError("missing required value", path=origin, line=lineno, field=column)
            if isinstance(value, (dict, list)):
                raise DataError(f"expected text, got {type(value).__name__}", path=origin, line=lineno, field=column)
            values[field] = str(value)
        for field in REQUIRED:
            if not values[field].strip():
                raise DataError("empty value", path=origin, line=lineno, field=columns[field])
        source = values.get("source") or default_source
        if "id" in values and values["id"].strip():
            ex_id = values["id"]
            if ex_id in seen:
                raise DataError(f"duplicate id {ex_id!r} (first seen on line {seen[ex_id]})",
                                path=origin, line=lineno, field=columns.get("id"))
        else:
            base = content_id(source, values["instruction"], values.get("input", ""), values["output"])
            repeats[base] = repeats.get(base, 0) + 1
            ex_id = base if repeats[base] == 1 else f"{base}-{repeats[base]}"
        seen[ex_id] = lineno
        examples.append(SFTExample(id=ex_id, instruction=values["instruction"], input=values.get("input", ""),
                                   output=values["output"], source=source))
    if not examples:
        raise DataError("the pool is empty (no rows)", path=origin)
    return examples


def guess_preset(columns: Iterable[str]) -> str:
    cols = set(columns)
    if {"question", "answer"} <= cols:
        return "gsm8k"
    if {"instruction", "output"} <= cols:
        if "id" in cols:
            return "s2lbench"
        return "mathinstruct" if "source" in cols else "alpaca"
    raise DataError(f"cannot guess the format from columns {sorted(cols)}; pass a column mapping "
                    "(e.g. --columns instruction=question,output=answer) or a preset "
                    f"({', '.join(PRESETS)})")


def resolve_columns(preset: str | None, columns: Mapping[str, str] | None, first_row: Mapping[str, Any] | None,
                    origin: object) -> dict[str, str]:
    if preset is not None and preset not in PRESETS:
        raise DataError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}", path=origin)
    if preset is None and not columns:
        if first_row is None:
            raise DataError("the pool is empty (no rows)", path=origin)
        preset = guess_preset(first_row)
    mapping = dict(PRESETS[preset]) if preset else {}
    mapping.update(columns or {})
    return mapping


def load_local(path: str | Path, *, preset: str | None = None, columns: Mapping[str, str] | None = None,
               source: str | None = None, name: str | None = None) -> Pool:
    """Load a local .jsonl/.json/.csv/.tsv file. ``source`` sets the source of rows that carry none."""
    path = check_input_file(path)
    rows = list(_iter_rows(path))
    mapping = resolve_columns(preset, columns, rows[0][1] if rows else None, path)
    examples = records_from_rows(rows, mapping, origin=path, default_source=source or path.stem,
                                 optional=OPTIONAL - set(columns or {}))
    log.info("loaded %d examples from %s", len(examples), path)
    return Pool(examples, name=name or path.stem)


def load_hub(dataset_id: str, *, split: str = "train", preset: str | None = None,
             columns: Mapping[str, str] | None = None, revision: str | None = None,
             name: str | None = None, **load_kwargs: Any) -> Pool:
    """Load a Hugging Face hub dataset with ``datasets.load_dataset`` (needs the hub or its cache)."""
    import datasets

    config = load_kwargs.pop("config", None)
    try:
        ds = datasets.load_dataset(dataset_id, config, split=split, revision=revision, **load_kwargs)
    except Exception as e:
        raise hub_error(e, f"hf://{dataset_id}") from e
    preset = preset or HUB_DATASETS.get(dataset_id)
    origin = f"hf://{dataset_id}[{split}]"
    mapping = resolve_columns(preset, columns, dict(zip(ds.column_names, [None] * len(ds.column_names), strict=True)),
                              origin)
    rows = ((i + 1, row) for i, row in enumerate(ds))
    examples = records_from_rows(rows, mapping, origin=origin, default_source=dataset_id.split("/")[-1],
                                 optional=OPTIONAL - set(columns or {}))
    return Pool(examples, name=name or dataset_id.split("/")[-1])


def hub_error(e: Exception, origin: str) -> Exception:
    """A DataError for a hub load that failed because the hub is unreachable or the id is unknown; else ``e``."""
    from s2lbench.errors import _is_hub_unreachable, hub_hint

    text = f"{type(e).__name__}: {e}"
    if _is_hub_unreachable(e) or "offline" in text.lower() or "connection" in text.lower():
        return DataError(hub_hint(), path=origin)
    if type(e).__name__ in ("DatasetNotFoundError", "RepositoryNotFoundError", "FileNotFoundError",
                            "EntryNotFoundError", "RevisionNotFoundError", "HFValidationError"):
        return DataError(f"not found on the hub or in the local cache ({' '.join(str(e).split())[:300]})",
                         path=origin)
    return e


def parse_columns(spec: str | None) -> dict[str, str] | None:
    """``instruction=question,output=answer`` -> {'instruction': 'question', 'output': 'answer'}."""
    if not spec:
        return None
    mapping = {}
    for part in spec.split(","):
        if "=" not in part:
            raise DataError(f"column mapping {part!r} is not of the form field=column")
        field, column = (s.strip() for s in part.split("=", 1))
        mapping[field] = column
    return mapping


def load_pool(spec: str | Path, *, preset: str | None = None, columns: Mapping[str, str] | None = None,
              split: str = "train", source: str | None = None) -> Pool:
    """A local path, or ``hf://owner/name[:split]`` for the hub."""
    text = str(spec)
    if text.startswith("hf://"):
        ident = text[len("hf://"):]
        if ":" in ident:
            ident, split = ident.split(":", 1)
        return load_hub(ident, split=split, preset=preset, columns=columns)
    return load_local(text, preset=preset, columns=columns, source=source)


def write_pool(path: str | Path, pool: Iterable[SFTExample]) -> Path:
    """Write a pool as JSONL in s2lbench's own schema (id, instruction, input, output, source), atomically."""
    from s2lbench.atomic import write_jsonl

    return write_jsonl(path, (ex.to_dict() for ex in pool))
