"""s2lbench: compare data-selection methods for supervised fine-tuning, centred on SmallToLarge (S2L)."""

from pathlib import Path as _Path

import pluggy

__version__ = "0.1.0"

#: Marker for plugin hook implementations: ``@s2lbench.hookimpl def register_selectors(register): ...``
hookimpl = pluggy.HookimplMarker("s2lbench")

# The built-in plugin folders `selectors/` and `evaluators/` sit beside this package in a source checkout and
# are installed inside it as `s2lbench.selectors` / `s2lbench.evaluators` (pyproject's package-dir). When this
# package is imported straight from a checkout (a plain editable install, or `python -m` in the repo root),
# let the sub-package search reach them there too. They have no __init__.py, so nothing shadows the stdlib.
_here = _Path(__file__).parent
_checkout = _here.resolve().parent
if not (_here / "selectors").exists() and (_checkout / "pyproject.toml").is_file() \
        and (_checkout / "selectors").is_dir():
    __path__.append(str(_checkout))  # noqa: F821 - __path__ is defined for packages

__all__ = ["hookimpl", "__version__"]
