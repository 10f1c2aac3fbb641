"""The e2e tier: every test collected under tests/e2e gets the ``e2e`` marker.

Done here rather than by a ``pytestmark`` line per file, so a new e2e file cannot
forget it and leak into ``pytest -m "not e2e"`` (the fast tier, no redis or browser).
"""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the items whose file lies in this folder (the hook sees the whole session's items)."""
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.e2e)
