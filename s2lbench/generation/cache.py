"""Generation cache: one JSONL per (model fingerprint, task, decoding params), one row per prompt.

The prompt text carries the template, so a changed template misses the cache prompt by prompt. Only greedy
decoding exists, so a cached output is the output. Backend and batch size are not in the key: the parity
test holds them to identical outputs.

The ``.meta.json`` beside each cache file records its size and SHA-256 (the manifest): a cache file whose
size differs, or whose rows do not parse, is named, moved aside (``.corrupt-<time>``) and generated again;
``s2lbench verify`` checks the hashes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from s2lbench.common.atomic import known_digest, write_json, write_jsonl
from s2lbench.common.fingerprint import config_hash
from s2lbench.common.manifest import move_aside, sha256_file
from s2lbench.generation.config import GenerationConfig

log = logging.getLogger(__name__)

_MODEL_FILES = (".json", ".safetensors", ".bin", ".model", ".txt", ".gguf", ".py")
_file_hashes: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _file_hashes:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _file_hashes[key] = h.hexdigest()
    return _file_hashes[key]


def model_fingerprint(model_dir: str | Path) -> str:
    """sha256 over a model folder's weights, config and tokenizer files (names and contents)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():  # a hub id: the name is all we can key on offline
        return "hub:" + str(model_dir)
    files = sorted(p for p in model_dir.iterdir() if p.is_file() and p.suffix in _MODEL_FILES)
    return config_hash({p.name: _file_sha256(p) for p in files}, length=24)


def _prompt_key(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()[:32]


def cache_path(cache_dir: str | Path, model_dir: str | Path, task_name: str, config: GenerationConfig,
               variant: str = "") -> Path:
    """``variant`` names the prompting pass (e.g. "pot", "hybrid", "hybrid-backup"); "" (chain of thought)
    keeps the key it always had."""
    key_parts = {"model": model_fingerprint(model_dir), "task": task_name, "decoding": config.decoding_key()}
    if variant:
        key_parts["variant"] = variant
    return Path(cache_dir) / task_name / f"{config_hash(key_parts)}.jsonl"


def cached_generate_with(generate: Callable[[str | Path, list[str], GenerationConfig], list[str]],
                         model_dir: str | Path, task_name: str, prompts: list[str], config: GenerationConfig,
                         cache_dir: str | Path, variant: str = "") -> list[str]:
    path = cache_path(cache_dir, model_dir, task_name, config, variant)
    cached = read_cache(path)
    keys = [_prompt_key(p) for p in prompts]
    missing = sorted({k: i for i, k in reversed(list(enumerate(keys))) if k not in cached}.values())
    log.info("generation cache %s: %d of %d prompts cached", path, len(prompts) - len(missing), len(prompts))
    if missing:
        fresh = generate(model_dir, [prompts[i] for i in missing], config)
        for i, out in zip(missing, fresh, strict=True):
            cached[keys[i]] = out
        write_jsonl(path, ({"prompt_key": k, "output": v} for k, v in cached.items()))
        write_json(path.with_suffix(".meta.json"), {"model_dir": str(model_dir), "task": task_name,
                                                    "model_fingerprint": model_fingerprint(model_dir),
                                                    "decoding": config.decoding_key(), "variant": variant,
                                                    "size": path.stat().st_size, "sha256": known_digest(path)})
    return [cached[k] for k in keys]


def cache_damage(path: Path, *, deep: bool = False) -> str | None:
    """What is wrong with a generation cache file against its ``.meta.json`` (size; SHA-256 with ``deep``),
    or None. A cache written before manifests (no size recorded) passes."""
    meta_path = path.with_suffix(".meta.json")
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        return f"its manifest {meta_path.name} is unreadable ({type(e).__name__})"
    if not isinstance(meta, dict):
        return f"its manifest {meta_path.name} is not a JSON object"
    if "size" not in meta:  # written before manifests
        return None
    size = path.stat().st_size
    if size != meta["size"]:
        return f"{size} bytes, its manifest says {meta['size']}"
    if deep and meta.get("sha256") and sha256_file(path) != meta["sha256"]:
        return "SHA-256 differs from its manifest (same size: its bytes changed)"
    return None


def move_cache_aside(path: Path, problem: str) -> None:
    """Move a damaged cache file (and its meta) aside, logging what was wrong: its prompts are generated again."""
    aside = move_aside(path)
    meta = path.with_suffix(".meta.json")
    if meta.exists():
        move_aside(meta)
    log.warning("generation cache %s: damaged (%s); moved aside to %s and generated again", path, problem, aside)


def read_cache(path: Path) -> dict[str, str]:
    """{prompt key: output} of a cache file; a damaged one (size against its manifest, or a row that does not
    parse) is moved aside and read as empty."""
    if not path.is_file():
        meta = path.with_suffix(".meta.json")
        if meta.is_file():  # its manifest is here, the file is not: deleted or lost
            move_aside(meta)
            log.warning("generation cache %s: missing (its manifest %s is here); generated again", path, meta.name)
        return {}
    problem = cache_damage(path)
    cached: dict[str, str] = {}
    if problem is None:
        number = 0
        with open(path, encoding="utf-8", errors="strict") as f:
            try:
                for line in f:
                    number += 1
                    if line.strip():
                        row = json.loads(line)
                        cached[str(row["prompt_key"])] = str(row["output"])
            except (ValueError, KeyError, TypeError) as e:
                problem = f"line {number + 1 if isinstance(e, UnicodeDecodeError) else number} does not parse " \
                          f"({type(e).__name__})"
    if problem is not None:
        move_cache_aside(path, problem)
        return {}
    return cached
