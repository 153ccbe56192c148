"""Stage 2 and 5, training: the one trainer that fine-tunes the proxy (with checkpoints) and every target,
its config and the tiny model configs the gym trains."""
