"""The embedded benchmark ("gym"): a synthetic MathInstruct-shaped SFT domain that tiny models learn in minutes."""

from s2lbench.gym.bases import BASE_PREFIX, BaseRecipe, pretrain_base
from s2lbench.gym.build import (
    DESIGNS,
    DefectRates,
    GymConfig,
    GymDesign,
    GymPaths,
    build_gym,
    generate_dev_sets,
    generate_pool,
    generate_test_sets,
    write_dev_sets,
)
from s2lbench.gym.corpus import CorpusConfig, pretraining_corpus
from s2lbench.gym.testsets import TEST_SETS

__all__ = ["BASE_PREFIX", "DESIGNS", "BaseRecipe", "CorpusConfig", "DefectRates", "GymConfig",
           "GymDesign", "GymPaths", "TEST_SETS", "build_gym", "generate_dev_sets", "generate_pool",
           "generate_test_sets", "pretrain_base", "pretraining_corpus", "write_dev_sets"]
