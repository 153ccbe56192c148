"""The results store: one SQLite file of cells and scores, per-example samples and the invocation log beside it."""
