"""Plugin discovery and the one typed facade through which core code calls hooks.

Third-party plugins, and s2lbench's own selectors and evaluators, are modules named by entry points in
the group ``s2lbench``. Environment variables narrow what loads:

- ``S2LBENCH_PLUGINS=a,b`` loads only the entry points named ``a`` and ``b`` (an empty value loads none);
- ``S2LBENCH_DISABLE_PLUGINS=a,b`` skips those.

A name in either variable that no installed entry point has is a ``PluginError`` (a typo would otherwise
load nothing silently).

A plugin that fails to import, or registers a name another plugin already took, raises ``PluginError``
naming the plugin.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

import pluggy

from s2lbench import hookspecs
from s2lbench.errors import PluginError
from s2lbench.evaluation import Evaluator, Metric
from s2lbench.results.store import FULL
from s2lbench.selection import Selector

GROUP = "s2lbench"
ENV_ALLOW = "S2LBENCH_PLUGINS"
ENV_DENY = "S2LBENCH_DISABLE_PLUGINS"

T = TypeVar("T")


@dataclass(frozen=True)
class Registered(Generic[T]):
    name: str
    plugin: str
    obj: T


def _names(value: str) -> set[str]:
    return {n.strip() for n in value.split(",") if n.strip()}


def load_entry_point_plugins(pm: pluggy.PluginManager) -> None:
    allow = _names(os.environ[ENV_ALLOW]) if ENV_ALLOW in os.environ else None
    deny = _names(os.environ.get(ENV_DENY, ""))
    seen: set[str] = set()
    found = sorted(entry_points(group=GROUP), key=lambda e: e.name)
    names = {ep.name for ep in found}
    for env, wanted in ((ENV_ALLOW, allow or set()), (ENV_DENY, deny)):
        unknown = sorted(wanted - names)
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], sorted(names), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"installed: {', '.join(sorted(names)) or 'none'}"
            raise PluginError(f"{env} names {', '.join(map(repr, unknown))}, but no installed plugin (entry point "
                              f"in group {GROUP!r}) has that name; {hint}")
    for ep in found:
        if ep.name in seen or (allow is not None and ep.name not in allow) or ep.name in deny:
            continue
        seen.add(ep.name)
        try:
            module = ep.load()
        except (Exception, SystemExit) as e:  # any failure in a plugin's import is that plugin's fault; say whose
            dist = getattr(ep.dist, "name", "?")
            raise PluginError(f"plugin {ep.name!r} (entry point {ep.value!r} from {dist}) failed to load: "
                              f"{type(e).__name__}: {e}") from e
        if pm.is_registered(module):
            continue
        pm.register(module, name=ep.name)


def make_plugin_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    if load_entry_points:
        load_entry_point_plugins(pm)
    pm.check_pending()
    return pm


class Hooks:
    """Typed calls into the hooks. Each method collects what every plugin registers, attributed to it."""

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm

    def _collect(self, hook_name: str, key: Callable[[Any], str]) -> dict[str, Registered[Any]]:
        found: dict[str, Registered[Any]] = {}
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():  # registration order
            plugin = impl.plugin_name

            def register(obj: Any, _plugin: str = plugin) -> None:
                try:
                    name = key(obj)
                except Exception as e:
                    raise PluginError(f"plugin {_plugin!r} registered an invalid object {obj!r} "
                                      f"in {hook_name}: {e}") from None
                if name in found:
                    raise PluginError(f"plugin {_plugin!r} registered {name!r} in {hook_name}, "
                                      f"but plugin {found[name].plugin!r} already registered that name")
                found[name] = Registered(name, _plugin, obj)

            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as e:
                raise PluginError(f"plugin {plugin!r} failed in {hook_name}: {type(e).__name__}: {e}") from e
        return dict(sorted(found.items()))

    def selectors(self) -> dict[str, Registered[type]]:
        return self._collect("register_selectors", _selector_name)

    def evaluators(self) -> dict[str, Registered[type]]:
        return self._collect("register_evaluators", _evaluator_name)

    def commands(self) -> dict[str, Registered[type]]:
        return self._collect("register_commands", _class_name)

    def executors(self) -> dict[str, Registered[type]]:
        return self._collect("register_executors", _class_name)

    def selector(self, name: str) -> type:
        return _lookup(self.selectors(), name, "selector")

    def evaluator(self, name: str) -> type:
        return _lookup(self.evaluators(), name, "evaluator")

    def executor(self, name: str) -> type:
        return _lookup(self.executors(), name, "executor")


#: registered names become parts of cell ids and file names (samples/<cell id>/<task>.jsonl) and CLI words
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _class_name(obj: Any) -> str:
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError("it has no string attribute 'name'")
    if not NAME.match(name) or "__" in name:
        raise TypeError(f"its name {name!r} is not letters, digits, '.', '_' and '-' (no '__', which separates "
                        "the parts of a cell id)")
    return name


def _subclass_name(obj: Any, base: type) -> str:
    name = _class_name(obj)
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise TypeError(f"it is not a subclass of {base.__module__}.{base.__name__}")
    if not dataclasses.is_dataclass(getattr(obj, "Options", None)):
        raise TypeError("its Options is not a dataclass")
    return name


def _selector_name(obj: Any) -> str:
    name = _subclass_name(obj, Selector)
    if name == FULL:
        raise TypeError(f"the name {FULL!r} is the full-data reference's row")
    requires = obj.requires
    if not isinstance(requires, (tuple, list, frozenset, set)) or not all(isinstance(r, str) for r in requires):
        raise TypeError(f"its requires must be a tuple of signal names, got {requires!r}")
    version = obj.version
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise TypeError(f"its version must be an integer >= 1 (bumped when its picks change), got {version!r}")
    return name


def _evaluator_name(obj: Any) -> str:
    name = _subclass_name(obj, Evaluator)
    metrics = obj.metrics
    if not isinstance(metrics, (tuple, list)) or not all(isinstance(m, Metric) for m in metrics):
        raise TypeError(f"its metrics must be a tuple of s2lbench.evaluation.Metric, got {metrics!r}")
    return name


def _lookup(table: dict[str, Registered[Any]], name: str, kind: str) -> Any:
    if name in table:
        return table[name].obj
    import difflib

    close = difflib.get_close_matches(name, list(table), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; registered: {', '.join(table) or 'none'}"
    raise PluginError(f"no {kind} named {name!r}{hint}")


@lru_cache(maxsize=1)
def get_hooks() -> Hooks:
    """The process-wide facade (entry points load once). Tests build their own with ``make_plugin_manager``."""
    return Hooks(make_plugin_manager())
