"""The README's two set-up commands stay true: CI runs the test command verbatim, the demo command names
the embedded default, and the README documents every registered selector and evaluator."""

from __future__ import annotations

import re

from conftest import REPO

from s2lbench.plugin_manager import get_hooks

README = (REPO / "README.md").read_text()


def setup_commands() -> list[str]:
    block = re.search(r"## Set-up: two commands\n.*?```bash\n(.*?)```", README, re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_ci_runs_the_readme_test_command_verbatim():
    main_job, tests = setup_commands()
    assert main_job.endswith("s2lbench demo") and tests.endswith("pytest -q")
    assert tests in (REPO / ".ci" / "run").read_text()


def test_readme_documents_every_builtin_selector_and_evaluator():
    hooks = get_hooks()
    builtin = {"longest-response"}  # the example plugin has its own README
    for name in set(hooks.selectors()) - builtin:
        assert f"`{name}`" in README, f"selector {name} is not in the README"
    for name in hooks.evaluators():
        assert f"`{name}`" in README, f"evaluator {name} is not in the README"
