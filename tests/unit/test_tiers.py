"""The fast tier stays fast: no file in tests/unit reaches for the e2e tier's heavy parts.

``pytest -m "not e2e"`` must run in under a minute with no redis-server, browser or
bot process; a unit test that quietly started one would break that promise only on
a machine without them. Heavy tests belong in tests/e2e (marked e2e by its conftest).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent
#: What only the e2e tier may use: the polling App, the bot as a subprocess, redis-server, a browser.
HEAVY = re.compile(r"\b(make_bot|spawn_bot|rediskit|redis_server|playwright|sync_playwright|App\(|run_polling)\b")


@pytest.mark.parametrize("path", sorted(UNIT.glob("test_*.py")), ids=lambda p: p.name)
def test_unit_file_uses_nothing_from_the_e2e_tier(path: Path) -> None:
    if path == Path(__file__).resolve():
        return
    hits = sorted({m.group(1) for m in HEAVY.finditer(path.read_text())})
    assert not hits, f"{path.name} uses {hits}: move the test to tests/e2e"


def test_the_e2e_marker_is_registered_and_pytest_ini_is_gone() -> None:
    root = UNIT.parents[1]
    assert not (root / "pytest.ini").exists(), "pytest.ini would override [tool.pytest.ini_options] in pyproject.toml"
    assert '"e2e:' in (root / "pyproject.toml").read_text()
