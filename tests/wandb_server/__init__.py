"""A W&B-protocol test server that the real wandb SDK (0.31.0, online mode) talks to."""

from .server import DEFAULT_API_KEY, WandbTestServer
from .store import DEFAULT_ENTITY, DEFAULT_PROJECT, RunRecord

__all__ = ["DEFAULT_API_KEY", "DEFAULT_ENTITY", "DEFAULT_PROJECT", "RunRecord", "WandbTestServer"]
