"""The Python API (docs/api.md): ``select``, ``subset``, ``run``, ``load_results``, ``load_samples``,
``plugins``. The package's top level (``s2lbench.select`` ...) forwards to these modules when called, so that
``import s2lbench`` stays cheap; the command line (``commands/``) is a thin layer over the same functions.

This face imports nothing: ``commands/`` import single modules of it while the parser is built.
"""
