"""healthcheck: ``python -m stylebot.healthcheck [bot|worker]``, the container's HEALTHCHECK.

A container runtime only knows whether PID 1 exists; a bot whose worker threads died, or whose data
volume went read-only, is still "running". This asks the bot itself, from a second process in the same
container, and exits 0 (healthy) or 1 with one line saying why:

- polling bot (the default): the SQLite store opens and answers, and the heartbeat file in the data dir
  is fresh. The bot's main thread rewrites it every few seconds while all its worker threads are alive
  (:class:`Heartbeat`), so a dead worker or a hung process shows up as a stale heartbeat;
- webhook process (``STYLEBOT_MODE=webhook``): ``GET /healthz`` on its own port (Redis answers, no trouble);
- RQ worker (``worker``): Redis answers and RQ's own worker key for this host is alive (RQ refreshes its
  TTL while the worker runs).

Polling mode has no HTTP port, hence a file. Nothing here writes to the store.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import sys
import time
import urllib.request
from pathlib import Path

from stylebot.config import Config, ConfigError

#: The heartbeat file, in the data dir.
HEARTBEAT_NAME = "heartbeat"
#: How often the bot rewrites it, and how old it may be before the bot counts as unhealthy.
BEAT_EVERY = 10.0
STALE_AFTER = 60.0


class Heartbeat:
    """Rewrites ``data_dir/heartbeat`` (the time, mode 0600) at most every ``every`` seconds."""

    def __init__(self, data_dir: Path, every: float = BEAT_EVERY) -> None:
        self.path = data_dir / HEARTBEAT_NAME
        self.every = every
        self._last = 0.0

    def beat(self, alive: bool) -> None:
        """Write the heartbeat when ``alive`` (all workers running) and it is due; never raises.

        A full or read-only disk makes the write fail: the heartbeat then goes stale, which is the point.
        """
        now = time.monotonic()
        if not alive or now - self._last < self.every:
            return
        tmp = self.path.with_name(HEARTBEAT_NAME + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"{time.time():.0f}\n")
            os.replace(tmp, self.path)
            self._last = now
        except OSError:
            pass


def check_polling(config: Config, now: float | None = None, stale_after: float = STALE_AFTER) -> str | None:
    """None when the polling bot is healthy; else the reason."""
    db = config.db_path
    if not db.exists():
        return f"no store at {db} (the bot has not started yet?)"
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        return f"store {db} does not answer: {exc}"
    beat = config.data_dir / HEARTBEAT_NAME
    try:
        age = (time.time() if now is None else now) - beat.stat().st_mtime
    except OSError:
        return f"no heartbeat at {beat} (workers not started?)"
    if age > stale_after:
        return f"heartbeat {age:.0f} s old (> {stale_after:.0f} s): a worker thread died or the bot hangs"
    return None


def check_webhook(config: Config) -> str | None:
    url = f"http://127.0.0.1:{config.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return None if response.status == 200 else f"{url}: HTTP {response.status}"
    except OSError as exc:  # URLError, HTTPError (503 with the reason) and timeouts
        return f"{url}: {exc}"


def check_worker(config: Config) -> str | None:
    import redis

    try:
        r = redis.Redis.from_url(config.redis_url or "", socket_timeout=5)
        r.ping()
        host = socket.gethostname()
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in r.smembers("rq:workers")]
        mine = [n for n in names if f"stylebot-{host}-" in n and r.exists(n)]
    except redis.RedisError as exc:
        return f"redis does not answer ({type(exc).__name__})"
    return None if mine else f"no live RQ worker registered for host {host}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    role = args[0] if args else "bot"
    try:
        config = Config.from_env(require_token=False)
    except ConfigError as exc:
        print(f"unhealthy: {exc}")
        return 1
    if role == "worker":
        problem = check_worker(config)
    elif config.mode == "webhook":
        problem = check_webhook(config)
    else:
        problem = check_polling(config)
    print(f"unhealthy: {problem}" if problem else "healthy")
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main())
