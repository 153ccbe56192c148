"""s2lbench's own CLI commands, registered through the same ``register_commands`` hook a plugin would use."""

from s2lbench import hookimpl
from s2lbench.commands.data import DataCommand
from s2lbench.commands.plugins import PluginsCommand

CORE_COMMANDS = [PluginsCommand, DataCommand]


@hookimpl
def register_commands(register):
    for command in CORE_COMMANDS:
        register(command)
