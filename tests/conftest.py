"""Shared pytest configuration: fixture modules are registered here, one per real service."""

pytest_plugins = [
    "tests.fixtures.trees",
    "tests.fixtures.sshd",
    "tests.fixtures.wandb_server",
]
