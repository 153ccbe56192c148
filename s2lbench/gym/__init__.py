"""The embedded benchmark ("gym"): a synthetic MathInstruct-shaped SFT domain that tiny models learn in minutes."""

from s2lbench.gym.build import DefectRates, GymConfig, GymPaths, build_gym, generate_pool, generate_test_sets
from s2lbench.gym.models import GYM_TRAINING, TINY_CONFIGS, tiny_config, tiny_model
from s2lbench.gym.testsets import TEST_SETS

__all__ = ["GYM_TRAINING", "DefectRates", "GymConfig", "GymPaths", "TEST_SETS", "TINY_CONFIGS", "build_gym", "generate_pool",
           "generate_test_sets", "tiny_config", "tiny_model"]
