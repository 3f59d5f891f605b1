"""The demo: both roles on one machine on built-in sample data (not part of the product path)."""
