"""Proxy tests reuse the data-plane helpers of tests/http (start_node, origins, clients)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "http"))
