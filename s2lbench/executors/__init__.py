"""Executors: where a grid's cells run (``local``, ``ray``, ``slurm``), each a plugin."""
