"""The grid: an experiment config's cells run through the content-addressed stage store, in data-path
order (``runner.py``), with a preflight check and a cost estimate before anything runs."""
