"""Admin API tests run against a real node (fixtures in tests/conftest.py)."""

from __future__ import annotations

import pytest

from edgenode.config import StageConfig


@pytest.fixture
def node_chain() -> list[StageConfig]:
    # admin behaviour is independent of the filters: a cache-only chain keeps counts exact
    return [StageConfig(type="cache", name="cache")]
