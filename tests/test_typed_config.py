from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from s2lbench.common.typed import apply_overrides, from_dict
from s2lbench.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-3
    steps: int = 10


@dataclass(frozen=True)
class Outer:
    name: str
    budgets: list[float] = field(default_factory=list)
    mode: Literal["steps", "epochs"] = "steps"
    inner: Inner = field(default_factory=Inner)
    flag: bool = False
    maybe: int | None = None


def test_nested_coercion_from_strings():
    cfg = from_dict(Outer, {"name": "x", "budgets": "0.1,0.5", "inner": {"steps": "20"}, "flag": "yes",
                            "maybe": "none"})
    assert cfg.budgets == [0.1, 0.5] and cfg.inner == Inner(steps=20) and cfg.flag is True and cfg.maybe is None


def test_unknown_key_did_you_mean():
    with pytest.raises(ConfigError, match=r"unknown key 'inner.stpes' \(did you mean 'steps'\?\)"):
        from_dict(Outer, {"name": "x", "inner": {"stpes": 3}})


def test_bad_values_name_the_key():
    with pytest.raises(ConfigError, match=r"inner.steps: expected an integer, got 'many'"):
        from_dict(Outer, {"name": "x", "inner": {"steps": "many"}})
    with pytest.raises(ConfigError, match=r"mode: 'weeks' is not one of \['steps', 'epochs'\]"):
        from_dict(Outer, {"name": "x", "mode": "weeks"})
    with pytest.raises(ConfigError, match="missing required key"):
        from_dict(Outer, {})


def test_overrides_parse_yaml_values():
    data = apply_overrides({"name": "x"}, ["inner.lr=0.5", "budgets=[0.1, 0.2]", "flag=true"])
    cfg = from_dict(Outer, data)
    assert cfg.inner.lr == 0.5 and cfg.budgets == [0.1, 0.2] and cfg.flag is True
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides({}, ["oops"])


@dataclass(frozen=True)
class Checked:
    steps: int = 1
    rate: float = 0.1

    def __post_init__(self):
        if self.steps < 1:
            raise ConfigError(f"steps: {self.steps} must be >= 1")
        if self.rate > 1:
            raise ValueError(f"rate: {self.rate} must be <= 1")
        if self.steps == 7:
            raise ConfigError("checked.steps: seven is refused")  # a block that names itself
        if self.steps == 8:
            raise ConfigError("steps and rate disagree")  # names no single key


@dataclass(frozen=True)
class Holder:
    block: Checked = field(default_factory=Checked)


@pytest.mark.parametrize("block,message", [
    ({"steps": 0}, "outer.block.steps: 0 must be >= 1"),
    ({"rate": 2}, "outer.block.rate: 2.0 must be <= 1"),
    ({"steps": 8}, "outer.block: steps and rate disagree"),
])
def test_a_post_init_check_is_named_by_its_full_key(block, message):
    with pytest.raises(ConfigError) as caught:
        from_dict(Holder, {"block": block}, where="outer")
    assert str(caught.value) == message


def test_a_block_that_names_itself_is_not_named_twice():
    with pytest.raises(ConfigError) as caught:
        from_dict(Checked, {"steps": 7}, where="pool.checked")
    assert str(caught.value) == "pool.checked.steps: seven is refused"
    with pytest.raises(ConfigError) as caught:  # without a where, the check's own words
        from_dict(Checked, {"steps": 0})
    assert str(caught.value) == "steps: 0 must be >= 1"
