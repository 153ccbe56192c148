"""``s2lbench.plugins``: what is registered (selectors, evaluators, executors), by which plugin."""

from __future__ import annotations

from typing import Any

from s2lbench.plugin_manager import get_hooks


def describe_registry() -> dict[str, list[dict]]:
    hooks = get_hooks()
    selectors = [{"name": r.name, "plugin": r.plugin, "version": r.obj.version, "requires": list(r.obj.requires),
                  "description": r.obj.description, "options": r.obj.option_fields()}
                 for r in hooks.selectors().values()]
    evaluators = [{"name": r.name, "plugin": r.plugin, "description": r.obj.description,
                   "metrics": [{"name": m.name, "higher_is_better": m.higher_is_better, "aggregation": m.aggregation}
                               for m in r.obj.metrics]}
                  for r in hooks.evaluators().values()]
    executors = [{"name": r.name, "plugin": r.plugin} for r in hooks.executors().values()]
    return {"selectors": selectors, "evaluators": evaluators, "executors": executors}


def plugins() -> dict[str, list[dict[str, Any]]]:
    """``{"selectors": [...], "evaluators": [...], "executors": [...]}``: each registered name with its
    plugin (and a selector's signals and options, an evaluator's metrics), as ``s2lbench plugins --json``."""
    return describe_registry()
