"""Shared fixtures for both tiers (tests/unit and tests/e2e).

The emulator fixture gives each test a fresh local Bot API server. The helpers
botkit.py and rediskit.py live beside this file so both tiers import them as
top-level modules (``from botkit import User``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Generator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: stylebot, model, main
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/: botkit, rediskit for both tiers

from botkit import TEST_SIZE, User, deadline, slowdown, weights_path

from stylebot.playground.emulator import BotAPIEmulator


@pytest.fixture
def emulator() -> Iterator[BotAPIEmulator]:
    """A started BotAPIEmulator on a free 127.0.0.1 port; closed after the test.

    Point the bot at it with TELEGRAM_API_URL=emulator.base_url and TELEGRAM_BOT_TOKEN=emulator.token.
    """
    with BotAPIEmulator() as api:
        yield api


# --- the bot under test (stylebot.app.App with the real engine) ------------------


@pytest.fixture(scope="session")
def engine() -> Any:
    """The real engine, loaded once: VGG weights from ../shared (CI links them)."""
    path = weights_path()
    if path is None:
        pytest.skip("VGG weights not found: set STYLEBOT_WEIGHTS or link vgg19_cache.pth (see README)")
    import model

    return model.Engine(path, device="cpu")


@pytest.fixture
def make_bot(emulator: BotAPIEmulator, tmp_path: Path, engine: Any) -> Iterator[Callable[..., Any]]:
    """Start ``stylebot.app.App`` against the emulator; ``make_bot(workers=2, edit_every=0.5, ...)``.

    Keyword arguments that are ``Config`` fields override the config; the rest
    go to ``App`` (progress/preview timing).
    """
    from stylebot import app as main
    from stylebot.config import Config

    apps = []

    def start(**options: Any) -> Any:
        fields = set(Config.__dataclass_fields__)
        config_opts = {k: v for k, v in options.items() if k in fields}
        context_opts = {k: v for k, v in options.items() if k not in fields}
        weights = weights_path()
        assert weights is not None  # the engine fixture skipped otherwise
        config = Config(
            token=emulator.token,
            api_url=emulator.base_url,
            data_dir=tmp_path / "data",
            weights=weights,
            device="cpu",
            image_size=TEST_SIZE,
        )
        config = replace(config, **config_opts)
        app = main.App(config, engine=engine, **context_opts).start()
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop(timeout=deadline(5))


@pytest.fixture
def user(emulator: BotAPIEmulator) -> User:
    return User(emulator, 1001)


# --- STYLEBOT_TEST_SLOWDOWN scales pytest-timeout's limit too ------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test's timeout (its ``timeout`` mark, else the ini's) times the slowdown factor.

    The factor stretches every wait in a test; the per-test limit, the last hang detector,
    must stretch with them or it would fire first.
    """
    factor = slowdown()
    if factor == 1:
        return
    try:
        default = float(config.getini("timeout") or 0)
    except ValueError:  # pytest-timeout is not installed: no ini key, no limits to scale
        return
    for item in items:
        mark = item.get_closest_marker("timeout")
        seconds = float(mark.args[0]) if mark is not None and mark.args else default
        if seconds > 0:
            item.add_marker(pytest.mark.timeout(seconds * factor), append=False)


# --- CI: a test that skips because a required tool is missing must fail there ---
_REQUIRED_TOOLS = ("redis", "chromium", "playwright", "weights")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("STYLEBOT_REQUIRE_ALL"):
        reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
        if any(tool in reason.lower() for tool in _REQUIRED_TOOLS):
            report.outcome = "failed"
            report.longrepr = f"STYLEBOT_REQUIRE_ALL is set but the test skipped: {reason}"
