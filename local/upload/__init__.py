"""Uploading new checkpoints to W&B, exactly once: metrics, state, planning, sessions, the pass."""
