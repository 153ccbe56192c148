from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

import s2lbench
from s2lbench import plugin_manager as plugins
from s2lbench.errors import PluginError
from s2lbench.evaluation import Evaluator, Metric
from s2lbench.plugin_manager import Hooks, make_plugin_manager
from s2lbench.selection import Selector

#: the installed console script; `python -m` would import s2lbench from the working folder
S2LBENCH = str(Path(sys.executable).with_name("s2lbench"))


class FakeSelector(Selector):
    name = "fake-first"
    requires = ()

    def select(self, ctx):
        return list(range(ctx.budget))


class FakeEvaluator(Evaluator):
    name = "fake-task"
    metrics = (Metric("accuracy", higher_is_better=True),)


class FakePlugin:
    @s2lbench.hookimpl
    def register_selectors(self, register):
        register(FakeSelector)

    @s2lbench.hookimpl
    def register_evaluators(self, register):
        register(FakeEvaluator)


class DuplicatePlugin:
    @s2lbench.hookimpl
    def register_selectors(self, register):
        register(FakeSelector)


@pytest.fixture
def pm():
    manager = make_plugin_manager(load_entry_points=False)
    yield manager
    for name, plugin in list(manager.list_name_plugin()):
        if name != "core":
            manager.unregister(plugin)


def test_fake_plugin_registers_and_is_attributed(pm):
    pm.register(FakePlugin(), name="fake")
    hooks = Hooks(pm)
    assert hooks.selectors()["fake-first"].plugin == "fake"
    assert hooks.selector("fake-first") is FakeSelector
    assert hooks.evaluators()["fake-task"].obj is FakeEvaluator
    pm.unregister(name="fake")
    assert "fake-first" not in Hooks(pm).selectors()


def test_duplicate_name_names_both_plugins(pm):
    pm.register(FakePlugin(), name="first-plugin")
    pm.register(DuplicatePlugin(), name="second-plugin")
    with pytest.raises(PluginError, match="second-plugin.*fake-first.*first-plugin"):
        Hooks(pm).selectors()


def test_unknown_selector_suggests_a_close_name(pm):
    pm.register(FakePlugin(), name="fake")
    with pytest.raises(PluginError, match="did you mean 'fake-first'"):
        Hooks(pm).selector("fake-frist")


def test_object_without_name_is_rejected_naming_the_plugin(pm):
    class Bad:
        @s2lbench.hookimpl
        def register_selectors(self, register):
            register(object())

    pm.register(Bad(), name="bad-plugin")
    with pytest.raises(PluginError, match="bad-plugin"):
        Hooks(pm).selectors()


def _selector_class(**attributes):
    return type("Odd", (Selector,), {"name": "odd", "select": lambda self, ctx: [], **attributes})


@pytest.mark.parametrize("attributes, named", [
    ({"name": 3}, "no string attribute 'name'"),
    ({"name": "a__b"}, "'a__b'"),
    ({"name": "full"}, "full-data reference"),
    ({"requires": "proxy_embedding"}, "requires must be a tuple"),
    ({"version": 0}, "version must be an integer >= 1"),
    ({"version": "2"}, "version must be an integer >= 1"),
    ({"version": True}, "version must be an integer >= 1"),
])
def test_a_malformed_selector_class_is_named_with_its_plugin_and_attribute(pm, attributes, named):
    class Odd:
        @s2lbench.hookimpl
        def register_selectors(self, register):
            register(_selector_class(**attributes))

    pm.register(Odd(), name="odd-plugin")
    with pytest.raises(PluginError, match="odd-plugin") as error:
        Hooks(pm).selectors()
    assert named in str(error.value)


def test_plugins_lists_a_selector_version_only_where_it_changed(capsys):
    from s2lbench.cli import main

    assert main(["plugins", "--json"]) == 0
    listed = {r["name"]: r["version"] for r in json.loads(capsys.readouterr().out)["selectors"]}
    assert listed["facility-location"] == listed["k-center"] == 2 and listed["s2l"] == listed["random"] == 1
    assert main(["plugins"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert "(version 2)" in lines["facility-location"] and "version" not in lines["s2l"]


@dataclass
class FakeEntryPoint:
    name: str
    value: str
    target: object = None
    error: Exception | None = None
    dist: object = field(default_factory=lambda: SimpleNamespace(name="fake-dist"))

    def load(self):
        if self.error:
            raise self.error
        return self.target


def _with_entry_points(monkeypatch, eps):
    monkeypatch.setattr(plugins, "entry_points", lambda group: eps)


def test_plugin_that_fails_to_import_is_named(monkeypatch):
    _with_entry_points(monkeypatch, [FakeEntryPoint("broken", "broken_mod", error=ImportError("no module xyz"))])
    with pytest.raises(PluginError, match=r"plugin 'broken' \(entry point 'broken_mod' from fake-dist\).*no module xyz"):
        make_plugin_manager()


def test_environment_allow_and_deny_lists(monkeypatch):
    eps = [FakeEntryPoint("a", "mod_a", target=FakePlugin()), FakeEntryPoint("b", "mod_b", target=DuplicatePlugin())]
    _with_entry_points(monkeypatch, eps)
    monkeypatch.setenv("S2LBENCH_PLUGINS", "a")
    assert set(make_plugin_manager().list_name_plugin()) >= {("a", eps[0].target)}
    assert make_plugin_manager().get_plugin("b") is None
    monkeypatch.setenv("S2LBENCH_PLUGINS", "")
    assert [n for n, _ in make_plugin_manager().list_name_plugin()] == []  # the CLI adds its own commands
    monkeypatch.delenv("S2LBENCH_PLUGINS")
    monkeypatch.setenv("S2LBENCH_DISABLE_PLUGINS", "b")
    pm = make_plugin_manager()
    assert pm.get_plugin("a") is not None and pm.get_plugin("b") is None


def test_cli_plugins_json_lists_builtins_with_plugin_names():
    out = subprocess.run([S2LBENCH, "plugins", "--json"],
                         capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    assert set(info) >= {"selectors", "evaluators"}
    random = [s for s in info["selectors"] if s["name"] == "random"]
    assert random and random[0]["plugin"] == "random"
    assert all({"name", "plugin"} <= set(entry) for entry in info["selectors"] + info["evaluators"])


def test_a_disabled_builtin_plugin_is_gone_and_core_never_imports_it(tmp_path):
    """Built-in plugins are leaves, loaded only through their entry points: with the gym and radiology
    evaluator plugins disabled, the runner and every command load without their modules and the hooks lack
    their evaluators, while what core shares with them still works (the gym's evaluators, in
    s2lbench/gym/evaluators.py; the radiology training pool, in s2lbench/pool/radiology.py)."""
    reports = tmp_path / "reports.csv"
    reports.write_text("uid,findings,impression\n" + "".join(f"{i},finding {i},impression {i % 3}\n" for i in range(8)))
    code = (
        "import json, sys\n"
        "import s2lbench.commands, s2lbench.grid.runner, s2lbench.grid.preflight, s2lbench.grid.cost\n"
        "from s2lbench.gym import GymConfig, build_gym\n"
        "from s2lbench.gym.evaluators import gym_evaluators\n"
        "from s2lbench.plugin_manager import get_hooks\n"
        "from s2lbench.pool.radiology import radiology_train_pool\n"
        "gym = build_gym(sys.argv[1] + '/gym', GymConfig(pool_size=100, test_size=4)).root\n"
        "print(json.dumps({'evaluators': sorted(get_hooks().evaluators()),\n"
        "                  'gym_sets': sorted(gym_evaluators(gym)),\n"
        "                  'train_reports': len(radiology_train_pool(sys.argv[2], test_size=2)),\n"
        "                  'plugin_modules': sorted(m for m in sys.modules if m.startswith('s2lbench.evaluators.'))}))\n")
    env = {**os.environ, "S2LBENCH_DISABLE_PLUGINS": "gym-tasks,radiology"}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path), str(reports)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert "gym" not in seen["evaluators"] and "radiology-indiana" not in seen["evaluators"]
    assert "gsm8k" in seen["evaluators"]  # the math plugin is still loaded
    assert seen["plugin_modules"] == ["s2lbench.evaluators.math_tasks"]
    assert seen["gym_sets"] and seen["train_reports"] == 6
