"""Demo data for the training-machine side: a sample results tree (not part of the product path)."""
