"""sizes: which output sizes the live RQ workers can paint, published in Redis, and what the webhook offers.

Each worker reads its own memory limit (``stylebot/hostmem.py``) and keeps the sizes that fit it; it
publishes them as ``P:sizes:<worker identity>`` (``"512,768"``) with a TTL that its heartbeat renews,
so a worker that dies leaves the offer within :data:`SIZES_TTL`. The web process paints nothing: it
offers in /settings only what every live worker can paint (:func:`offer`), since any of them may take
any job. With no live worker it offers its own configured sizes (jobs wait in the queue for one).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

#: A worker's published sizes expire this long after its last heartbeat (seconds).
SIZES_TTL = 30
#: How often a worker renews them (seconds).
HEARTBEAT = 10.0
#: How long the web process trusts what it read (seconds): /settings reads it several times an update.
CACHE_SECONDS = 3.0


def publish(store: Any, identity: str, sizes: Iterable[int], ttl: int = SIZES_TTL) -> None:
    """Say (again) which sizes this worker paints; they expire after ``ttl`` unless renewed."""
    store.r.set(store.key("sizes", identity), ",".join(str(s) for s in sorted(sizes)), ex=ttl)


def withdraw(store: Any, identity: str) -> None:
    """A worker that stops takes its sizes out of the offer at once."""
    store.r.delete(store.key("sizes", identity))


def published(store: Any) -> dict[str, list[int]]:
    """The sizes of every live worker, by identity (a malformed entry is skipped)."""
    prefix = store.key("sizes", "")
    found: dict[str, list[int]] = {}
    for key in store.r.scan_iter(match=prefix + "*", count=100):
        key = key.decode() if isinstance(key, bytes) else key
        raw = store.r.get(key)
        raw = raw.decode() if isinstance(raw, bytes) else raw
        if not raw:
            continue
        try:
            found[key[len(prefix) :]] = [int(s) for s in raw.split(",") if s]
        except ValueError:
            log.warning("worker sizes %r: not a list of sizes; ignored", key)
    return found


def offer(configured: list[int], workers: Iterable[list[int]]) -> list[int]:
    """The configured sizes that every live worker can paint.

    None live: the configured sizes. None in common (workers configured differently): the largest size
    every worker can paint, so /settings never offers nothing.
    """
    lists = [set(sizes) for sizes in workers if sizes]
    if not lists:
        return list(configured)
    common = set(configured).intersection(*lists)
    if not common:
        common = {min(max(sizes) for sizes in lists)}
    return sorted(common)


class Heartbeat:
    """A worker's thread that publishes its sizes every :data:`HEARTBEAT` seconds until stopped."""

    def __init__(self, store: Any, identity: str, sizes: list[int], stopping: threading.Event) -> None:
        self.store, self.identity, self.sizes, self.stopping = store, identity, sizes, stopping

    def start(self) -> None:
        self.beat()
        threading.Thread(target=self._loop, name="sizes-heartbeat", daemon=True).start()

    def beat(self) -> None:
        try:
            publish(self.store, self.identity, self.sizes)
        except Exception as exc:  # Redis hiccup: the next beat tries again, well within the TTL
            log.warning("publishing this worker's sizes failed: %s", type(exc).__name__)

    def _loop(self) -> None:
        while not self.stopping.wait(HEARTBEAT):
            self.beat()


class LiveSizes:
    """What the web process offers: :func:`offer` over :func:`published`, read at most every few seconds."""

    def __init__(self, store: Any, cache_seconds: float = CACHE_SECONDS) -> None:
        self.store, self.cache_seconds = store, cache_seconds
        self._lock = threading.Lock()
        self._read_at = -1e9
        self._workers: list[list[int]] = []

    def offer(self, configured: list[int]) -> list[int]:
        with self._lock:
            if time.monotonic() - self._read_at > self.cache_seconds:
                try:
                    self._workers = list(published(self.store).values())
                except Exception as exc:  # Redis down: the last known offer stands
                    log.warning("reading the workers' sizes failed: %s", type(exc).__name__)
                self._read_at = time.monotonic()
            workers = self._workers
        return offer(configured, workers)
