"""A process that cannot start says why in one ``error:`` line on stderr and exits 2, in every mode.

The polling app, the webhook process and the RQ worker share that exit
(``stylebot.app.cannot_start``); these run the real entry points in-process
against the emulator and a Redis port nobody listens on, so nothing is mocked.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from stylebot.app import CANNOT_START, build_app
from stylebot.config import Config
from stylebot.playground.emulator import BotAPIEmulator
from stylebot.scaleout.webhook import run_webhook
from stylebot.scaleout.worker import run_worker


def free_port() -> int:
    """A port nothing listens on (bound, read, released): Redis "at" it refuses at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(api: BotAPIEmulator, tmp_path: Path, **changes: Any) -> Config:
    return Config(token=api.token, api_url=api.base_url, data_dir=tmp_path, **changes)


def test_webhook_without_its_url_says_so(
    emulator: BotAPIEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(emulator, tmp_path, mode="webhook", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    assert run_webhook(config) == CANNOT_START == 2
    assert capsys.readouterr().err.startswith("error: STYLEBOT_MODE=webhook needs STYLEBOT_WEBHOOK_URL")


def test_webhook_without_redis_says_so(
    emulator: BotAPIEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(
        emulator,
        tmp_path,
        mode="webhook",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        webhook_url="https://bot.example/telegram",
        port=free_port(),
    )
    assert run_webhook(config) == 2
    assert capsys.readouterr().err.startswith("error: cannot reach Redis at REDIS_URL (")
    assert not emulator.calls("setWebhook"), "Redis is checked before the webhook is registered"


def test_worker_without_redis_url_says_so(
    emulator: BotAPIEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_worker(_config(emulator, tmp_path)) == 2
    assert capsys.readouterr().err.startswith("error: `python main.py worker` needs REDIS_URL")


def test_worker_with_redis_down_says_so_before_loading_anything(
    emulator: BotAPIEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(
        emulator, tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0", weights=tmp_path / "missing.pth"
    )  # Redis is checked first: no weights error
    assert run_worker(config) == 2
    assert capsys.readouterr().err.startswith("error: cannot reach Redis at REDIS_URL (")


def test_polling_without_weights_says_so(
    emulator: BotAPIEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_app(_config(emulator, tmp_path, weights=tmp_path / "missing.pth"))
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.pth" in err
