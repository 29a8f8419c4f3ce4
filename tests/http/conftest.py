"""Fixtures for the front end and origin client tests; helpers live in dataplane_support."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
