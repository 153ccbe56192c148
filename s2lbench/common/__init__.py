"""Plumbing every stage uses: atomic writes and locks, typed configs, file reading with one-line errors,
fingerprints and config hashes, settings, hub loading, provenance, BLAS threads, the console (live view,
log files, verbosity). Imports nothing else of s2lbench but ``errors``."""
