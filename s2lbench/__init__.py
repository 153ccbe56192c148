"""s2lbench: compare data-selection methods for supervised fine-tuning, centred on SmallToLarge (S2L)."""

import pluggy

__version__ = "0.1.0"

#: Marker for plugin hook implementations: ``@s2lbench.hookimpl def register_selectors(register): ...``
hookimpl = pluggy.HookimplMarker("s2lbench")

__all__ = ["hookimpl", "__version__"]
