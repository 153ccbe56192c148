"""s2lbench's own CLI commands, registered through the same ``register_commands`` hook a plugin would use."""

from s2lbench import hookimpl
from s2lbench.commands.cache import DuCommand, GcCommand, VerifyCommand
from s2lbench.commands.compare_subsets import CompareSubsetsCommand
from s2lbench.commands.data import DataCommand
from s2lbench.commands.evaluate import EvaluateCommand
from s2lbench.commands.gym import GymCommand
from s2lbench.commands.leaderboard import LeaderboardCommand, RegressCommand
from s2lbench.commands.plugins import PluginsCommand
from s2lbench.commands.run import DemoCommand, RunCommand, StatusCommand
from s2lbench.commands.select import SelectCommand
from s2lbench.commands.signals import SignalsCommand
from s2lbench.commands.subset import SubsetCommand
from s2lbench.commands.train import TrainCommand

CORE_COMMANDS = [PluginsCommand, DataCommand, EvaluateCommand, RunCommand, DemoCommand, StatusCommand, SignalsCommand, LeaderboardCommand, RegressCommand, SelectCommand, CompareSubsetsCommand, GymCommand, TrainCommand,
                 VerifyCommand, DuCommand, GcCommand,
                 SubsetCommand]


@hookimpl
def register_commands(register):
    for command in CORE_COMMANDS:
        register(command)
