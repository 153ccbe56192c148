"""Write a subset of a pool in the formats trainers read.

- ``jsonl``: s2lbench's own records (id, instruction, input, output, source), one per line; ``s2lbench train
  --pool`` and any JSONL reader take it as it is.
- ``hf``: a Hugging Face dataset on disk (``datasets.load_from_disk``) with the pool's original columns, plus
  an ``id`` column where the original rows had none.
- ``messages``: TRL's conversational format, one ``{"id", "messages": [user, assistant]}`` per line, as
  ``trl.SFTTrainer`` (and ``datasets.load_dataset("json", ...)``) takes it.
- ``alpaca`` / ``sharegpt``: the two LLaMA-Factory formats, a JSON list beside a ``dataset_info.json`` that
  registers it (hiyouga/LLaMA-Factory, data/README.md): point ``dataset_dir`` at the folder and name the entry.

Every file appears whole or not at all (common/atomic.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from s2lbench.common.atomic import atomic_dir, output_lock, write_json, write_jsonl
from s2lbench.common.files import read_json_object
from s2lbench.errors import ConfigError
from s2lbench.pool.records import SFTExample

FORMATS = ("jsonl", "hf", "messages", "alpaca", "sharegpt")
#: the file (or folder) each format writes inside the output folder
FILES = {"jsonl": "subset.jsonl", "hf": "subset.hf", "messages": "subset.messages.jsonl",
         "alpaca": "subset.alpaca.json", "sharegpt": "subset.sharegpt.json"}
DATASET_INFO = "dataset_info.json"
DEFAULT_NAME = "s2lbench_subset"


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return fmt


def user_turn(example: SFTExample) -> str:
    """The user's message of a single-turn example: the instruction, then its input after a blank line."""
    return f"{example.instruction}\n\n{example.input}" if example.input else example.instruction


def messages_row(example: SFTExample) -> dict[str, Any]:
    return {"id": example.id, "messages": [{"role": "user", "content": user_turn(example)},
                                           {"role": "assistant", "content": example.output}]}


def alpaca_row(example: SFTExample) -> dict[str, Any]:
    return {"id": example.id, "instruction": example.instruction, "input": example.input,
            "output": example.output}


def sharegpt_row(example: SFTExample) -> dict[str, Any]:
    return {"id": example.id, "conversations": [{"from": "human", "value": user_turn(example)},
                                                {"from": "gpt", "value": example.output}]}


def dataset_info_entry(fmt: str, file_name: str) -> dict[str, Any]:
    """The ``dataset_info.json`` entry LLaMA-Factory reads for a file of this format."""
    if fmt == "alpaca":
        return {"file_name": file_name, "formatting": "alpaca",
                "columns": {"prompt": "instruction", "query": "input", "response": "output"}}
    if fmt == "sharegpt":
        return {"file_name": file_name, "formatting": "sharegpt", "columns": {"messages": "conversations"},
                "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}}
    raise ConfigError(f"no dataset_info.json entry for format {fmt!r} (only alpaca and sharegpt)")


def dataset_info_name(name: str, fmt: str) -> str:
    """The entry's name: ``<name>_<format>``, so an alpaca and a sharegpt export can share one folder."""
    return f"{name}_{fmt}"


def export_subset(folder: str | Path, fmt: str, examples: Sequence[SFTExample], *,
                  original: Any = None, name: str = DEFAULT_NAME) -> dict[str, dict[str, Any]]:
    """Write ``examples`` (the subset, in order) to ``folder`` in ``fmt``; returns what it wrote, by role
    (``subset``, and ``dataset_info`` for the LLaMA-Factory formats), each with its file name and sha256
    (a folder's: over its files).

    ``original``: for ``hf``, the subset's original rows (a list of dicts, or a ``datasets.Dataset`` already
    narrowed to the subset); without it the dataset holds s2lbench's own columns."""
    folder = Path(folder)
    check_format(fmt)
    target = folder / FILES[fmt]
    if fmt == "jsonl":
        write_jsonl(target, (ex.to_dict() for ex in examples))
    elif fmt == "messages":
        write_jsonl(target, (messages_row(ex) for ex in examples))
    elif fmt == "hf":
        write_hf_dataset(target, examples, original)
    else:
        write_json(target, [alpaca_row(ex) if fmt == "alpaca" else sharegpt_row(ex) for ex in examples])
    files = {"subset": {"file": target.name, "format": fmt, "rows": len(examples), "sha256": sha256_of(target)}}
    if fmt in ("alpaca", "sharegpt"):
        info = folder / DATASET_INFO
        entry = dataset_info_name(name, fmt)
        with output_lock(info):
            registry = read_json_object(info, "LLaMA-Factory dataset_info.json") if info.exists() else {}
            registry[entry] = dataset_info_entry(fmt, target.name)
            write_json(info, registry)
        files["dataset_info"] = {"file": info.name, "entry": entry}
    return files


def write_hf_dataset(target: Path, examples: Sequence[SFTExample], original: Any = None) -> None:
    import datasets

    if original is None:
        dataset = datasets.Dataset.from_list([ex.to_dict() for ex in examples])
    else:
        dataset = original if isinstance(original, datasets.Dataset) else datasets.Dataset.from_list(
            [dict(row) for row in original])
        if len(dataset) != len(examples):
            raise ValueError(f"{len(dataset)} original rows for {len(examples)} examples")
        if "id" not in dataset.column_names:
            dataset = dataset.add_column("id", [ex.id for ex in examples])
    with atomic_dir(target) as tmp:
        dataset.save_to_disk(str(tmp))


def sha256_of(path: Path) -> str:
    """The sha256 of a file, or of a folder's files (relative names and contents, in sorted order)."""
    digest = hashlib.sha256()
    paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in paths:
        if path.is_dir():
            digest.update(str(p.relative_to(path)).encode() + b"\0")
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def rows_by_position(rows: Sequence[Mapping[str, Any]], positions: Sequence[int]) -> list[dict[str, Any]]:
    return [dict(rows[int(p)]) for p in positions]
