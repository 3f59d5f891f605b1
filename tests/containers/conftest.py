"""Container tests: the `containers` marker; run them alone with `pytest tests/containers`."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "containers: needs Docker (engine started by docker/engine.sh) and the images it builds"
    )
