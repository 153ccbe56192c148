"""The ``gym`` evaluator as a plugin: the gym's test sets, one evaluator family parametrised by
``Options.set``. The class lives with the gym it reads (``s2lbench/gym/evaluators.py``); this module only
registers it, as a third-party plugin would."""

from s2lbench import hookimpl
from s2lbench.gym.evaluators import GymEvaluator


@hookimpl
def register_evaluators(register):
    register(GymEvaluator)
