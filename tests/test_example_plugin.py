"""The example third-party plugin installs with pip and is discovered through its entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: the installed console script; `python -m` would import s2lbench from the working folder
S2LBENCH = str(Path(sys.executable).with_name("s2lbench"))

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "s2lbench-example-plugin"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-cache-dir", "--target", str(target), str(EXAMPLE)],
                   check=True, capture_output=True, cwd=build)
    return target


def _run(plugin_site: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(plugin_site))
    return subprocess.run([S2LBENCH, *args], capture_output=True, text=True, env=env)


def test_installed_example_plugin_appears_in_plugins(plugin_site):
    out = _run(plugin_site, "plugins", "--json")
    assert out.returncode == 0, out.stderr
    selectors = {s["name"]: s for s in json.loads(out.stdout)["selectors"]}
    assert selectors["longest-response"]["plugin"] == "longest-response"
    assert [o["name"] for o in selectors["longest-response"]["options"]] == ["unit"]
    table = _run(plugin_site, "plugins").stdout
    assert "longest-response" in table


def test_example_plugin_can_be_disabled_by_environment(plugin_site):
    env = dict(os.environ, PYTHONPATH=str(plugin_site), S2LBENCH_DISABLE_PLUGINS="longest-response")
    out = subprocess.run([S2LBENCH, "plugins", "--json"],
                         capture_output=True, text=True, env=env, check=True)
    assert "longest-response" not in {s["name"] for s in json.loads(out.stdout)["selectors"]}


def test_example_selector_picks_longest_responses(plugin_site, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_site))
    import s2lbench_example_plugin as plugin

    from s2lbench.pool.records import Pool, SFTExample
    from s2lbench.selection import run_selector

    pool = Pool([SFTExample(id=str(i), instruction="q", output="x" * (i * 3 % 10 + 1)) for i in range(10)])
    picked = run_selector(plugin.LongestResponseSelector, pool, budget=3, seed=0).positions
    lengths = sorted((len(ex.output) for ex in pool), reverse=True)
    assert sorted(len(pool[int(p)].output) for p in picked) == sorted(lengths[:3])
