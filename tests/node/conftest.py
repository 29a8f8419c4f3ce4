"""A running ``edgenode serve --workers 2`` for the multi-worker suites."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest
from cluster_support import Cluster, start_cluster, stop_cluster, write_conf


@pytest.fixture
async def cluster(origin_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    c = await start_cluster(write_conf(tmp_path, origin_url))
    try:
        yield c
    finally:
        await stop_cluster(c)
