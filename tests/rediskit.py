"""A real ``redis-server`` for tests: started on a free port, thrown away after.

Tests that need it call :func:`redis_server` from a fixture; without the
binary they are skipped with the reason (CI installs the Debian package).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from botkit import deadline, wait_until

SKIP_REASON = "redis-server is not installed (CI: apt-get install -y redis-server); scale-out tests need a real Redis"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lease_over(store: Any, job_id: str) -> bool:
    """Whether ``job_id``'s lease has run out by Redis's clock (the one the store's scripts use)."""
    ends = store.r.zscore(store.key("running"), job_id)
    seconds, micros = store.r.time()
    return ends is not None and float(ends) < seconds + micros / 1e6


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=deadline(2)) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """Run ``redis-server`` on 127.0.0.1 without persistence; yield its ``redis://`` URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(SKIP_REASON)
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "redis.log", "wb") as log:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: process.poll() is not None or _pong(port), 30, f"redis-server to answer PING on {port}")
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited on start; see {workdir / 'redis.log'}")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(deadline(10))
        except subprocess.TimeoutExpired:
            process.kill()
