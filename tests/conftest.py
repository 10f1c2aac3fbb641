"""Shared fixtures. The emulator fixture gives each test a fresh local Bot API server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emulator import BotAPIEmulator  # noqa: E402


@pytest.fixture
def emulator() -> Iterator[BotAPIEmulator]:
    """A started BotAPIEmulator on a free 127.0.0.1 port; closed after the test.

    Point the bot at it with TELEGRAM_API_URL=emulator.base_url and TELEGRAM_BOT_TOKEN=emulator.token.
    """
    with BotAPIEmulator() as api:
        yield api
