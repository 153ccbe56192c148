"""The results store: one SQLite file of cells and scores, per-example samples beside it."""
