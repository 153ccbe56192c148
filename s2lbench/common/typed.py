"""Build typed dataclasses from plain dicts (YAML, CLI ``key=value`` strings) with errors that name the key.

Used for experiment configs and for selector options alike, so both reject unknown keys with a
"did you mean" and coerce strings from the command line to the declared field types.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from s2lbench.errors import ConfigError

T = TypeVar("T")


def suggest(key: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(key, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (valid keys: {', '.join(sorted(choices))})"


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {value!r} does not fit {tp}")
    if origin is Literal:
        allowed = get_args(tp)
        for a in allowed:
            if value == a or (isinstance(value, str) and str(a) == value):
                return a
        raise ConfigError(f"{where}: {value!r} is not one of {list(allowed)}")
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        (item_tp, *_) = get_args(tp) or (Any,)
        if isinstance(value, str):
            value = [v for v in (s.strip() for s in value.split(",")) if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = get_args(tp) or (Any, Any)
        return {_coerce(k, kt, where): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
        if as_float != int(as_float):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(as_float)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if tp is str:
        if value is None:  # YAML's null (or a key left empty) would otherwise read as the name "None"
            raise ConfigError(f"{where}: expected a string, got null")
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    try:
        return tp(value)
    except Exception:
        raise ConfigError(f"{where}: cannot read {value!r} as {getattr(tp, '__name__', tp)}") from None


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Instantiate dataclass ``cls`` from ``data``; unknown keys and bad values raise ``ConfigError``."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            raise ConfigError(f"unknown key {path!r}{suggest(str(key), list(fields))}")
        kwargs[key] = _coerce(value, hints[key], path)
        if _is_seed_key(str(key)):
            _check_seeds(kwargs[key], path)
    missing = [n for n, f in fields.items() if n not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where or cls.__name__}: missing required key(s) {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except ConfigError as e:  # a __post_init__ check: it names the field, this call knows where the block is
        if not where:
            raise
        raise ConfigError(_within(where, str(e), fields)) from None
    except (ValueError, TypeError) as e:
        raise ConfigError(_within(where, str(e), fields) if where else _top_level(cls, str(e), fields)) from None


def _top_level(cls: type, message: str, fields: Mapping[str, Any]) -> str:
    """A check of a top-level block: a message that starts with one of its keys needs no class name in front."""
    key = message.partition(":")[0].partition("[")[0].partition(".")[0]
    return message if key in fields else f"{cls.__name__}: {message}"


def check_keywords(func: Any, data: Mapping[str, Any] | None, where: str, skip: tuple[str, ...] = ()) -> None:
    """``data`` as keyword arguments of ``func``: unknown keys and values of the wrong type raise ``ConfigError``
    naming the key, as ``from_dict`` does for a dataclass (for options handed straight to a function)."""
    import inspect

    hints = typing.get_type_hints(func)
    params = [p for p in inspect.signature(func).parameters.values()
              if p.name not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    spec = [(p.name, hints.get(p.name, Any), dataclasses.field(default=None if p.default is p.empty else p.default))
            for p in params]
    from_dict(dataclasses.make_dataclass(f"{func.__name__}_options", spec), data, where=where)


def _within(where: str, message: str, fields: Mapping[str, Any]) -> str:
    """``message`` of a check inside the block at ``where``, with the block's path in front of the key it
    names: ``total_steps: ...`` in ``targets[0].train`` reads ``targets[0].train.total_steps: ...``."""
    key, sep, _ = message.partition(":")
    if sep and " " not in key:
        head, _, rest = key.partition(".")
        if head.partition("[")[0] in fields:
            return f"{where}.{message}"
        if rest and head == where.rpartition(".")[2]:  # the block names itself (defects.wrong_answer: ...)
            return f"{where}.{message[len(head) + 1:]}"
    return f"{where}: {message}"


SEED_RANGE = (0, 2**32)


def _is_seed_key(key: str) -> bool:
    return key in ("seed", "seeds") or key.endswith("_seed") or key.endswith("_seeds")


def _check_seeds(value: Any, where: str) -> None:
    """Seeds are integers in [0, 2^32) in every config, as on the command line (numpy and torch need it)."""
    for v in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(v, int) and not isinstance(v, bool) and not SEED_RANGE[0] <= v < SEED_RANGE[1]:
            raise ConfigError(f"{where}: seed {v} must be an integer in [0, 2^32)")


def to_dict(obj: Any) -> Any:
    return dataclasses.asdict(obj)


def _parse_override_value(key: str, raw: str) -> Any:
    if not raw.strip():
        return ""
    try:
        return yaml.load(raw, Loader=UniqueKeyLoader)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"override {key}={raw!r}: the value is not valid YAML ({problem}); "
                          "quote it, e.g. --set 'budgets=[0.1, 0.3]'") from None


def _index(key: str, node: list, part: str) -> int:
    try:
        index = int(part)
    except ValueError:
        raise ConfigError(f"override {key!r}: {part!r} indexes a list; use a number (0 to {len(node) - 1})") from None
    if not -len(node) <= index < len(node):
        raise ConfigError(f"override {key!r}: index {index} is out of range (the list has {len(node)} items)")
    return index


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` strings to a nested dict (value parsed as YAML, so ``3``, ``true``, ``[1,2]`` work).

    A numeric part indexes a list: ``targets.0.train.total_steps=50``."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.path=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        if not key or any(not p for p in parts):
            raise ConfigError(f"override {item!r}: empty key in {key!r}")
        value = _parse_override_value(key, raw)
        node: Any = data
        for depth, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                nxt = node[_index(key, node, part)]
            else:
                nxt = node.setdefault(part, {})
            if not isinstance(nxt, (dict, list)):
                raise ConfigError(f"override {key!r}: {'.'.join(parts[:depth + 1])!r} is a "
                                  f"{type(nxt).__name__}, not a mapping or list")
            node = nxt
        if isinstance(node, list):
            node[_index(key, node, parts[-1])] = value
        else:
            node[parts[-1]] = value
    return data


class UniqueKeyLoader(yaml.SafeLoader):
    """The safe YAML loader, refusing a mapping that repeats a key (YAML keeps only the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                continue  # the base class reports unhashable keys
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} on line {line} (first on line {seen[key]})",
                    key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(path) -> dict[str, Any]:
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, expected a YAML config file")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path}: is not a regular file (a device, pipe or socket), expected a YAML config file")
    try:
        data_bytes = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror}") from None
    try:
        text = data_bytes.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data_bytes.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"{path}, line {line}: not UTF-8 text (byte {data_bytes[e.start:e.start + 1]!r}); "
                          "save the config as UTF-8") from None
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f", line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: invalid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(e).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data
