"""Stage 3, signals: the signal pass over the proxy's checkpoints (loss trajectories, confidence, EL2N,
embeddings, IFD, gradient features), the ``SignalSet`` selectors read, text embeddings and dev sets."""
