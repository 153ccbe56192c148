"""The hooks a plugin may implement. Each takes a ``register`` callback; plugins never touch a registry.

Hooks are called with keyword arguments, so a plugin may accept fewer arguments than the spec names.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("s2lbench")


@hookspec
def register_selectors(register):
    """Register data selectors: call ``register(SelectorClass)`` once per class (see ``s2lbench.selection``)."""


@hookspec
def register_evaluators(register):
    """Register evaluation tasks: call ``register(EvaluatorClass)`` once per task (see ``s2lbench.evaluation``)."""


@hookspec
def register_commands(register):
    """Register CLI sub-commands: call ``register(CommandClass)`` (see ``s2lbench.commands.base.Command``)."""


@hookspec
def register_executors(register):
    """Register grid executors that run cells (local by default; SLURM or Ray as plugins): ``register(ExecutorClass)``."""
