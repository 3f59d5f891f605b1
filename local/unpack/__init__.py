"""Applying bundles to the results root: tar validation, staging, the ledger (crash-safe)."""
