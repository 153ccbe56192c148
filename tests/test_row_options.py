"""A config row's own seeds and proxy seed: which cells the grid has, and what their hashes are keyed on."""

from __future__ import annotations

import pytest

from s2lbench.errors import ConfigError
from s2lbench.grid.experiment import cell_hash, experiment_hash, grid_cells, parse_experiment

BASE = {
    "name": "rows",
    "pool": {"path": "gym", "gym": {"pool_size": 300, "test_size": 12, "seed": 0}},
    "proxy": {"model": "gym-proxy", "train": {"schedule": "epochs"}},
    "budgets": [0.1],
    "seeds": [0, 1, 2],
    "targets": [{"name": "t", "model": "gym-proxy", "train": {"schedule": "epochs"}}],
    "evaluation": {"tasks": ["gym"]},
}


def config(selectors, **changes):
    return parse_experiment({**BASE, "selectors": selectors, **changes})


def test_a_row_with_its_own_seeds_runs_at_those_and_the_others_at_the_configs():
    cfg = config(["s2l", {"name": "random", "seeds": [0, 1, 2, 3, 4]}, {"name": "el2n", "seeds": [1]}])
    cells = [c.cell_id for c in grid_cells(cfg)]
    by_row = {row: sorted(int(c.rsplit("__s", 1)[1]) for c in cells if f"__{row}__" in c)
              for row in ("full", "s2l", "random", "el2n")}
    assert by_row == {"full": [0, 1, 2], "s2l": [0, 1, 2], "random": [0, 1, 2, 3, 4], "el2n": [1]}
    # seed by seed: seeds beyond the config's come after every cell of the config's seeds
    assert [c.rsplit("__s", 1)[1] for c in cells][-2:] == ["3", "4"]


def test_a_rows_seeds_do_not_key_its_cells_but_its_proxy_seed_does():
    plain, more = config(["random"]), config([{"name": "random", "seeds": [0, 1, 2, 3, 4]}])
    target = plain.targets[0]
    assert cell_hash(plain, plain.selectors[0], 30, 0, target) == cell_hash(more, more.selectors[0], 30, 0, target)
    assert experiment_hash(plain) != experiment_hash(more)  # the grid itself did change
    other = config([{"name": "s2l", "proxy_seed": 1}])
    s2l = config(["s2l"])
    assert cell_hash(s2l, s2l.selectors[0], 30, 0, target) != cell_hash(other, other.selectors[0], 30, 0, target)


@pytest.mark.parametrize("row, says", [
    ({"name": "random", "seeds": []}, "seeds is empty"),
    ({"name": "random", "seeds": [1, 1]}, "seeds"),
    ({"name": "random", "seeds": [-1]}, "seed -1"),
])
def test_bad_row_seeds_are_one_line_config_errors(row, says):
    with pytest.raises(ConfigError, match=says) as raised:
        config([row])
    assert "\n" not in str(raised.value)
