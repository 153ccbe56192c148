"""Stage 1, the pool: SFT records with stable ids and sources, loaders (local files, the hub), prompt
templates, tokenised encoding, and the radiology reports as a pool."""
