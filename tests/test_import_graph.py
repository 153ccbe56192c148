"""The package's import graph (every ``from s2lbench... import``, at module level or inside a function, and
``importlib.import_module("s2lbench...")``) has no cycle.

Two circles existed: ``clustering`` <-> ``selection_utils`` (``single_threaded_blas`` now lives in
``s2lbench/common/blas.py``) and ``plugins`` -> ``commands`` -> (runner, experiment, preflight) -> ``plugins``: the
plugin manager registered the CLI's commands as its core plugin while commands ask it for selectors and
evaluators. The CLI now registers its own commands (``s2lbench.cli.command_hooks``).

Imports of s2lbench modules are made at module level, except where deferring one pays: the command line
imports every command module to build its parser, so ``s2lbench --help`` and ``s2lbench plugins`` stay fast
only if ``cli.py`` and the commands leave the heavy parts of s2lbench (the grid, the signal pass, the trainer,
generation, plots) to the command that runs; and a module that wraps an optional extra may defer what only
that extra needs. Anywhere else an import inside a function is a cycle dodged or a layout that is wrong
(issue #35). Heavy third-party libraries (torch, transformers, datasets, ...) are the other way round: only
inside functions, so that importing s2lbench never loads them (tests/test_cli_startup.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> the package it is installed as (pyproject's [tool.setuptools])
PACKAGES = {"s2lbench": "s2lbench", "selectors": "s2lbench.selectors", "evaluators": "s2lbench.evaluators"}


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for module, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("s2lbench"):
                names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module
                         for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("s2lbench")]
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args
                  and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("s2lbench")):
                names = [node.args[0].value]
            for name in names:
                target = owner(name)
                # the top-level package only re-exports (hookimpl, __version__); it imports none of these back
                if target not in (None, module, "s2lbench"):
                    graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_graph_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert "s2lbench.commands" in graph["s2lbench.cli"] and "s2lbench.plugin_manager" in graph["s2lbench.grid.runner"]
    assert cycles(graph) == []


#: where an s2lbench module may be imported inside a function (a module, or a package and all it holds), and why
IN_FUNCTION_IMPORTS_ALLOWED = {
    "s2lbench.cli": "builds the parser: imports the commands and the plugin manager when main runs",
    "s2lbench.commands": "every command module is imported to build the parser; a command's run() defers the "
                         "heavy parts (grid, signal pass, trainer, generation, plots) so --help stays fast",
    # optional extras: a module that wraps one may defer what only the extra needs
    "s2lbench.executors.ray_executor": "the ray extra",
    "s2lbench.executors.slurm_executor": "the slurm extra (submitit)",
    "s2lbench.generation.vllm_backend": "the vllm extra",
}
#: the same, for one module alone (not the package it heads): the top-level API
IN_FUNCTION_IMPORTS_ALLOWED_EXACT = {
    "s2lbench": "the top-level API (select, subset, run, load_results, load_samples, plugins) imports its "
                "s2lbench.api module when called, so that `import s2lbench` loads neither torch nor the grid",
}


def in_function_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every s2lbench import made inside a function body (``import``, ``from ... import``,
    ``importlib.import_module("s2lbench...")``); module level, class bodies and ``if`` blocks do not count."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if in_function:
                if isinstance(child, ast.ImportFrom) and child.level == 0 and \
                        (child.module or "").split(".")[0] == "s2lbench":
                    found.append((child.lineno, child.module))
                elif isinstance(child, ast.Import):
                    found.extend((child.lineno, a.name) for a in child.names if a.name.split(".")[0] == "s2lbench")
                elif (isinstance(child, ast.Call) and getattr(child.func, "attr", None) == "import_module"
                      and child.args and isinstance(child.args[0], ast.Constant)
                      and str(child.args[0].value).split(".")[0] == "s2lbench"):
                    found.append((child.lineno, child.args[0].value))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(source), False)
    return sorted(found)


def test_in_function_imports_are_found():
    source = (
        "from s2lbench.errors import DataError\n"
        "import s2lbench.common\n"
        "class A:\n"
        "    from s2lbench.pool import records\n"
        "    def f(self):\n"
        "        from s2lbench.common.atomic import write_json\n"
        "        import json\n"
        "        import s2lbench\n"
        "def g():\n"
        "    def h():\n"
        "        return importlib.import_module('s2lbench.grid.runner')\n"
        "    from os import path\n"
    )
    assert in_function_imports(source) == [(6, "s2lbench.common.atomic"), (8, "s2lbench"),
                                           (11, "s2lbench.grid.runner")]


def test_s2lbench_modules_are_imported_at_module_level_except_where_deferring_pays():
    mods = modules()
    for name in [*IN_FUNCTION_IMPORTS_ALLOWED, *IN_FUNCTION_IMPORTS_ALLOWED_EXACT]:  # no stale entries
        assert name in mods, f"IN_FUNCTION_IMPORTS_ALLOWED names {name}, which is not a module"

    def allowed(module: str) -> bool:
        return module in IN_FUNCTION_IMPORTS_ALLOWED_EXACT or any(
            module == a or module.startswith(a + ".") for a in IN_FUNCTION_IMPORTS_ALLOWED)

    violations = [f"{path.relative_to(ROOT)}:{line}: {target}"
                  for module, path in sorted(mods.items()) if not allowed(module)
                  for line, target in in_function_imports(path.read_text(encoding="utf-8"))]
    assert not violations, "imports of s2lbench inside functions (move them to the top of the module):\n" + \
        "\n".join(violations)
