"""stylebot.healthcheck: the container's HEALTHCHECK for the polling bot, on a real SQLite file."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path

from stylebot.config import Config
from stylebot.healthcheck import HEARTBEAT_NAME, Heartbeat, check_polling, main


def config(data: Path) -> Config:
    return Config(token="", data_dir=data)


def make_store(data: Path) -> None:
    data.mkdir(exist_ok=True)
    with sqlite3.connect(data / "stylebot.sqlite3") as conn:
        conn.execute("CREATE TABLE t (x)")


def test_heartbeat_is_written_0600_only_while_workers_are_alive(tmp_path):
    beat = Heartbeat(tmp_path, every=0)
    beat.beat(alive=False)
    assert not (tmp_path / HEARTBEAT_NAME).exists()
    beat.beat(alive=True)
    path = tmp_path / HEARTBEAT_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert abs(float(path.read_text()) - time.time()) < 5


def test_healthy_with_a_store_and_a_fresh_heartbeat(tmp_path):
    make_store(tmp_path)
    Heartbeat(tmp_path).beat(alive=True)
    assert check_polling(config(tmp_path)) is None


def test_a_stale_heartbeat_is_unhealthy(tmp_path):
    make_store(tmp_path)
    Heartbeat(tmp_path).beat(alive=True)
    old = time.time() - 300
    os.utime(tmp_path / HEARTBEAT_NAME, (old, old))
    problem = check_polling(config(tmp_path))
    assert problem and "heartbeat" in problem and "old" in problem


def test_no_store_or_a_broken_store_is_unhealthy(tmp_path):
    assert "no store" in (check_polling(config(tmp_path)) or "")
    (tmp_path / "stylebot.sqlite3").write_bytes(b"not a database at all" * 100)
    Heartbeat(tmp_path).beat(alive=True)
    assert "does not answer" in (check_polling(config(tmp_path)) or "")


def test_main_exits_1_and_says_why(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STYLEBOT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("STYLEBOT_MODE", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main([]) == 1
    assert "unhealthy: no store" in capsys.readouterr().out
    make_store(tmp_path)
    Heartbeat(tmp_path).beat(alive=True)
    assert main([]) == 0
