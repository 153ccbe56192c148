"""The package layout that docs/architecture.md describes, checked on the source text alone (nothing of the
package is imported, so no torch):

(a) at most ``MAX_LOOSE`` modules sit directly in ``s2lbench/``;
(b) every package of ``s2lbench/`` has a level in ``ORDER`` (the data path), and no module imports a package
    above its own level: a module may import its own package, a package at or below its level, ``errors``,
    and the top-level ``s2lbench`` for ``hookimpl`` / ``__version__``; within a package, the face
    (``__init__.py``) and the stage module (``stage.py``) sit on top, imported by none of its other modules;
(c) the built-in plugins (``selectors/``, ``evaluators/``, installed as ``s2lbench.selectors`` /
    ``s2lbench.evaluators``) are leaves: no core module imports them;
(d) no module imports a private name of another (``from x import _y``, or ``x._y`` on an imported module).

Imports inside functions count as much as those at module level, and so do
``importlib.import_module("s2lbench...")`` calls. The module walker is the import-graph test's, so both
tests see the same modules and edges; that test also checks that there is no cycle and where an import may
be made inside a function.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import test_import_graph
from test_import_graph import ROOT, import_graph, modules

#: s2lbench's packages (and loose modules) along the data path, lowest level first
ORDER = [
    ("errors", "hookspecs"),
    ("common",),
    ("pool",),
    ("training",),
    ("generation",),
    ("evaluation",),
    ("gym",),
    ("signals",),
    ("selection",),
    ("results",),
    ("report",),
    ("executors",),
    ("plugin_manager",),
    ("grid",),
    ("api",),
    ("commands", "cli"),
]
LEVEL = {name: level for level, names in enumerate(ORDER) for name in names}
#: what any module may import from the top-level package itself
TOP_LEVEL_NAMES = {"hookimpl", "__version__"}
#: the built-in plugin folders, as installed
PLUGINS = ("s2lbench.selectors", "s2lbench.evaluators")
MAX_LOOSE = 12


def is_ours(name: str) -> bool:
    return name == "s2lbench" or name.startswith("s2lbench.")


def is_plugin(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in PLUGINS)


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def unit(module: str) -> str:
    """The package (or loose module) of ``s2lbench/`` that ``module`` belongs to; "" for ``s2lbench`` itself."""
    return module.split(".")[1] if "." in module else ""


@dataclass(frozen=True)
class Import:
    """One import statement (or ``import_module("s2lbench...")`` call) in a module of the tree."""

    module: str  #: the importing module
    where: str  #: its file and the line, for messages
    target: str  #: the module of the tree it reaches (the deepest one its dotted name names)
    names: tuple[str, ...]  #: the names taken from ``target`` (``from target import a, b``); () for a module
    dotted: tuple[str, ...]  #: every dotted name it spells out (``from a.b import c`` -> ``a.b.c``)
    exists: bool = True  #: whether the module it spells out is in the tree (or is a plugin folder)


class Tree:
    """The modules of ``s2lbench/``, ``selectors/`` and ``evaluators/`` with their parsed source."""

    def __init__(self) -> None:
        self.root = test_import_graph.ROOT
        self.mods: dict[str, Path] = modules()
        self.ast = {m: ast.parse(p.read_text(encoding="utf-8")) for m, p in self.mods.items()}
        self.imports = [imp for m in self.mods for imp in self._imports(m)]

    @staticmethod
    @cache
    def current() -> Tree:
        return Tree()

    def core(self) -> list[str]:
        return [m for m in self.mods if is_ours(m) and not is_plugin(m)]

    def where(self, module: str, line: int) -> str:
        return f"{self.mods[module].relative_to(self.root)}:{line}"

    def owner(self, name: str) -> str:
        while name not in self.mods and "." in name:
            name = name.rpartition(".")[0]
        return name

    def exists(self, module: str) -> bool:
        return module in self.mods or module in PLUGINS

    def absolute(self, module: str, node: ast.ImportFrom) -> str:
        """``node.module`` made absolute (``from . import x`` inside ``module``)."""
        if node.level == 0:
            return node.module or ""
        package = module if self.mods[module].name == "__init__.py" else module.rpartition(".")[0]
        base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        return f"{base}.{node.module}" if node.module else base

    def _imports(self, module: str) -> list[Import]:
        found: list[Import] = []
        for node in ast.walk(self.ast[module]):
            at = {"module": module, "where": self.where(module, getattr(node, "lineno", 0))}
            if isinstance(node, ast.ImportFrom):
                source = self.absolute(module, node)
                if not is_ours(source):
                    continue
                names = []
                for alias in node.names:
                    full = f"{source}.{alias.name}"
                    if full in self.mods:  # a module: ``from s2lbench.common import typed``
                        found.append(Import(**at, target=full, names=(), dotted=(full,)))
                    else:
                        names.append(alias.name)
                if names:
                    found.append(Import(**at, target=self.owner(source), names=tuple(names),
                                        dotted=tuple(f"{source}.{n}" for n in names), exists=self.exists(source)))
            elif isinstance(node, ast.Import):
                found += [Import(**at, target=self.owner(a.name), names=(), dotted=(a.name,),
                                 exists=self.exists(a.name)) for a in node.names if is_ours(a.name)]
            elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                  and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
                  and isinstance(node.args[0].value, str) and is_ours(node.args[0].value)):
                name = node.args[0].value
                found.append(Import(**at, target=self.owner(name), names=(), dotted=(name,), exists=self.exists(name)))
        return found

    # --- the rules: each returns one line per violation ---------------------------------------------
    def too_many_loose(self) -> list[str]:
        loose = sorted(p.name for p in (self.root / "s2lbench").glob("*.py"))
        return [f"{len(loose)} modules in s2lbench/ (at most {MAX_LOOSE}): {', '.join(loose)}"] \
            if len(loose) > MAX_LOOSE else []

    def without_level(self) -> list[str]:
        return sorted({f"s2lbench/{unit(m)}: not in ORDER" for m in self.core() if unit(m) and unit(m) not in LEVEL})

    def against_the_data_path(self) -> list[str]:
        core = set(self.core())
        bad: list[str] = []
        for imp in self.imports:
            if not imp.exists:
                bad.append(f"{imp.where}: {imp.module} imports {', '.join(imp.dotted)}: no such module")
                continue
            if imp.module not in core or any(is_plugin(d) for d in imp.dotted):
                continue  # a plugin may import any public core name; core -> plugin is plugins_imported's
            source, target = unit(imp.module), unit(imp.target)
            if target == "":  # s2lbench itself: hookimpl and __version__ only
                if not set(imp.names) <= TOP_LEVEL_NAMES:
                    bad.append(f"{imp.where}: {imp.module} imports s2lbench.{{{', '.join(imp.names)}}} "
                               f"(only {' and '.join(sorted(TOP_LEVEL_NAMES))} come from s2lbench itself)")
                continue
            if target in (source, "errors") or source == "":
                continue
            if LEVEL.get(target, len(ORDER)) > LEVEL.get(source, -1):
                what = f"{imp.target}.{{{', '.join(imp.names)}}}" if imp.names else imp.target
                bad.append(f"{imp.where}: {imp.module} (level {LEVEL.get(source)}, {source}) imports {what} "
                           f"(level {LEVEL.get(target)}, {target})")
        return by_place(bad)

    def upward_in_a_package(self) -> list[str]:
        """Within a package, the face (``__init__.py``) and the stage module (``stage.py``) sit on top: the
        package's other modules import neither."""
        bad = []
        for imp in self.imports:
            module, target = imp.module, imp.target
            if (is_plugin(module) or not unit(module) or unit(target) != unit(module) or target == module
                    or self.mods[module].name in ("__init__.py", "stage.py")):
                continue
            if self.mods[target].name in ("__init__.py", "stage.py") and module.startswith(
                    target.removesuffix(".stage") + "."):
                what = f"{target}.{{{', '.join(imp.names)}}}" if imp.names else target
                bad.append(f"{imp.where}: {module} imports {what}, which sits above it in its package")
        return by_place(bad)

    def plugins_imported(self) -> list[str]:
        core = set(self.core())
        return by_place([f"{imp.where}: {imp.module} imports {d}" for imp in self.imports if imp.module in core
                         for d in imp.dotted if is_plugin(d)])

    def private_names(self) -> list[str]:
        bad = [f"{imp.where}: {imp.module} imports {imp.target}.{name}"
               for imp in self.imports if imp.target != imp.module for name in imp.names if is_private(name)]
        bad += [f"{imp.where}: {imp.module} imports the private module {d}" for imp in self.imports
                for d in imp.dotted if d in self.mods and d != imp.module and any(map(is_private, d.split(".")))]
        for module in self.mods:
            bound = self._bound_modules(module)
            for node in ast.walk(self.ast[module]):
                if not (isinstance(node, ast.Attribute) and is_private(node.attr)):
                    continue
                base = _dotted(node.value)
                if base is None or base.split(".")[0] not in bound:
                    continue
                head, _, rest = base.partition(".")
                owner = f"{bound[head]}.{rest}" if rest else bound[head]
                if owner in self.mods and owner != module:
                    bad.append(f"{self.where(module, node.lineno)}: {module} uses {owner}.{node.attr}")
        return by_place(bad)

    def _bound_modules(self, module: str) -> dict[str, str]:
        """Local name -> module of the tree, for every import in ``module`` that binds a module to a name."""
        bound: dict[str, str] = {}
        for node in ast.walk(self.ast[module]):
            if isinstance(node, ast.ImportFrom):
                source = self.absolute(module, node)
                for alias in node.names:
                    if is_ours(source) and f"{source}.{alias.name}" in self.mods:
                        bound[alias.asname or alias.name] = f"{source}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if is_ours(alias.name):
                        bound[alias.asname or "s2lbench"] = alias.name if alias.asname else "s2lbench"
        return bound


def by_place(lines: list[str]) -> list[str]:
    """``lines`` ("FILE:LINE: ...") by file, then line number, without repeats."""
    def key(line: str) -> tuple[str, int]:
        path, number, _ = line.split(":", 2)
        return path, int(number)
    return sorted(set(lines), key=key)


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (base := _dotted(node.value)) is not None:
        return f"{base}.{node.attr}"
    return None


def test_the_walker_sees_what_the_import_graph_test_sees():
    tree = Tree.current()
    edges: dict[str, set[str]] = {m: set() for m in tree.mods}
    for imp in tree.imports:
        if imp.target not in (imp.module, "s2lbench"):
            edges[imp.module].add(imp.target)
    assert edges == import_graph()


def test_at_most_a_dozen_modules_sit_loose_in_the_package():
    assert Tree.current().too_many_loose() == []


def test_every_package_has_a_level_on_the_data_path():
    tree = Tree.current()
    assert tree.without_level() == []
    on_disk = {p.name for p in (tree.root / "s2lbench").iterdir() if (p / "__init__.py").is_file()}
    on_disk |= {p.stem for p in (tree.root / "s2lbench").glob("*.py")} - {"__init__"}
    assert on_disk == {unit(m) for m in tree.core()} - {""}


def test_imports_go_down_the_data_path():
    tree = Tree.current()
    bad = tree.against_the_data_path()
    assert not bad, "imports against the data path:\n" + "\n".join(bad)
    bad = tree.upward_in_a_package()
    assert not bad, "imports up within a package:\n" + "\n".join(bad)


def test_no_core_module_imports_a_builtin_plugin():
    bad = Tree.current().plugins_imported()
    assert not bad, "core imports a built-in plugin (plugins load through entry points only):\n" + "\n".join(bad)


def test_no_module_imports_a_private_name_of_another():
    bad = Tree.current().private_names()
    assert not bad, "private names used across modules:\n" + "\n".join(bad)


PLANTED = {
    "s2lbench/__init__.py": "hookimpl = None\n",
    "s2lbench/errors.py": "",
    "s2lbench/common/__init__.py": "",
    "s2lbench/common/typed.py": "def _suggest(): pass\n",
    "s2lbench/pool/__init__.py": "",
    "s2lbench/pool/records.py": (
        "from s2lbench import hookimpl\n"
        "from s2lbench.common.typed import _suggest\n"  # (d)
        "from s2lbench.errors import S2LBenchError\n"
        "def f():\n"
        "    from s2lbench.grid.runner import Runner\n"  # (b): pool imports grid, inside a function
        "    from s2lbench import plugin_manager\n"  # (b)
        "    import s2lbench.gone\n"  # (b): no such module
        "    import importlib; importlib.import_module('s2lbench.evaluators.radiology')\n"  # (c)
    ),
    "s2lbench/pool/prompts.py": "from s2lbench.common import typed\ntyped._suggest()\n",  # (d)
    "s2lbench/pool/stage.py": "from s2lbench.pool.records import f\n",
    "s2lbench/pool/loaders.py": "from s2lbench.pool import stage\nfrom s2lbench.pool.prompts import x\n",  # (b)
    "s2lbench/grid/__init__.py": "",
    "s2lbench/grid/runner.py": "from s2lbench.pool.records import f\nfrom s2lbench.selectors.less import X\n",  # (c)
    "s2lbench/plugin_manager.py": "",
    "s2lbench/lost/__init__.py": "",  # (b): a package without a level
    "selectors/less.py": "from s2lbench.grid.runner import Runner\nfrom s2lbench.pool.records import f\n"
                         "from s2lbench.selection_utils import rank\n",  # (b): a module that moved away
    "evaluators/radiology.py": "",
    **{f"s2lbench/loose{i}.py": "" for i in range(11)},  # (a): 14 loose modules
}


def test_each_rule_reports_a_planted_violation(tmp_path: Path, monkeypatch):
    for name, text in PLANTED.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(test_import_graph, "ROOT", tmp_path)
    tree = Tree()
    assert tree.too_many_loose() and "14 modules" in tree.too_many_loose()[0]
    assert set(tree.without_level()) == {f"s2lbench/{name}: not in ORDER"
                                         for name in ["lost", *(f"loose{i}" for i in range(11))]}
    assert tree.against_the_data_path() == [
        "s2lbench/pool/records.py:5: s2lbench.pool.records (level 2, pool) imports s2lbench.grid.runner.{Runner} "
        "(level 13, grid)",
        "s2lbench/pool/records.py:6: s2lbench.pool.records (level 2, pool) imports s2lbench.plugin_manager "
        "(level 12, plugin_manager)",
        "s2lbench/pool/records.py:7: s2lbench.pool.records imports s2lbench.gone: no such module",
        "selectors/less.py:3: s2lbench.selectors.less imports s2lbench.selection_utils.rank: no such module",
    ]
    assert tree.upward_in_a_package() == [
        "s2lbench/pool/loaders.py:1: s2lbench.pool.loaders imports s2lbench.pool.stage, which sits above it in its package",
    ]
    assert tree.plugins_imported() == [
        "s2lbench/grid/runner.py:2: s2lbench.grid.runner imports s2lbench.selectors.less.X",
        "s2lbench/pool/records.py:8: s2lbench.pool.records imports s2lbench.evaluators.radiology",
    ]
    assert tree.private_names() == [
        "s2lbench/pool/prompts.py:2: s2lbench.pool.prompts uses s2lbench.common.typed._suggest",
        "s2lbench/pool/records.py:2: s2lbench.pool.records imports s2lbench.common.typed._suggest",
    ]


def test_every_package_is_installed():
    """pyproject lists the packages a wheel carries by name: a package folder left off that list imports from
    a checkout (and in the tests) but is missing from every installed copy."""
    tomllib = pytest.importorskip("tomllib")
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {".".join(("s2lbench", *p.parent.relative_to(ROOT / "s2lbench").parts))
               for p in (ROOT / "s2lbench").rglob("__init__.py")}
    assert folders - set(setuptools["packages"]) == set()
