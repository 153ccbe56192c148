"""Load SFT pools: local JSON / JSONL / CSV with a column mapping, Hugging Face hub datasets, GSM8K.

Every loader returns a ``Pool`` of ``SFTExample`` records with stable ids. Bad input raises ``DataError``
naming the file, line and field.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from s2lbench.common.atomic import write_jsonl
from s2lbench.common.files import check_input_file, iter_jsonl, read_json, read_text
from s2lbench.errors import DataError, hub_hint, is_hub_unreachable
from s2lbench.pool.records import Pool, SFTExample

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


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The raw rows of a local pool file, every column as the file has it, in pool order (one row per example)."""
    return [row for _, row in _iter_rows(check_input_file(path))]


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
    ds = load_hub_dataset(dataset_id, split=split, revision=revision, **load_kwargs)
    preset = preset or HUB_DATASETS.get(dataset_id)
    origin = f"hf://{dataset_id}[{split}]"
    mapping = resolve_columns(preset, columns, dict(zip(ds.column_names, [None] * len(ds.column_names), strict=True)),
                              origin)
    rows = ((i + 1, row) for i, row in enumerate(ds))
    examples = records_from_rows(rows, mapping, origin=origin, default_source=dataset_id.split("/")[-1],
                                 optional=OPTIONAL - set(columns or {}))
    return Pool(examples, name=name or dataset_id.split("/")[-1])


def load_hub_dataset(dataset_id: str, *, split: str = "train", revision: str | None = None, **load_kwargs: Any):
    """``datasets.load_dataset`` of a hub pool, its failures as one-line ``DataError``s."""
    import datasets

    config = load_kwargs.pop("config", None)
    try:
        return datasets.load_dataset(dataset_id, config, split=split, revision=revision, **load_kwargs)
    except Exception as e:
        raise hub_error(e, f"hf://{dataset_id}") from e


def split_hub_spec(spec: str, split: str = "train") -> tuple[str, str]:
    """``hf://owner/name[:split]`` -> (owner/name, split)."""
    ident = spec[len("hf://"):] if spec.startswith("hf://") else spec
    if ":" in ident:
        ident, split = ident.split(":", 1)
    return ident, split


def hub_error(e: Exception, origin: str) -> Exception:
    """A DataError for a hub load that failed because the hub is unreachable or the id is unknown; else ``e``."""
    text = f"{type(e).__name__}: {e}"
    if is_hub_unreachable(e) or "offline" in text.lower() or "connection" in text.lower():
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
        ident, split = split_hub_spec(text, split)
        return load_hub(ident, split=split, preset=preset, columns=columns)
    return load_local(text, preset=preset, columns=columns, source=source)


def write_pool(path: str | Path, pool: Iterable[SFTExample]) -> Path:
    """Write a pool as JSONL in s2lbench's own schema (id, instruction, input, output, source), atomically."""
    return write_jsonl(path, (ex.to_dict() for ex in pool))
