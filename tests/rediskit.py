"""A real ``redis-server`` for tests: started on a free port, thrown away after.

Tests that need it call :func:`redis_server` from a fixture; without the
binary they are skipped with the reason (CI installs the Debian package).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SKIP_REASON = "redis-server is not installed (CI: apt-get install -y redis-server); scale-out tests need a real Redis"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {workdir / 'redis.log'}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
