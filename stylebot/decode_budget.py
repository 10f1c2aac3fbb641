"""decode_budget: one process-wide budget of bytes that every image decode is admitted through.

A 186 KB PNG can claim 7000×7000 RGBA, 196 MB once decoded; 32 of them at once
stacked up to almost 1 GB. So no decode starts before it has reserved its
estimated peak (from the header: pixels × bytes per pixel, plus its reduced
copy) here. When the budget is taken, a decode waits its turn, first come first
served, until a deadline; many big images at once then cost one budget, paid in
turns, rather than one budget each. A request larger than the whole budget can
never be admitted and is refused at once (:class:`OverBudget`), and one that
waited past its deadline gets :class:`BudgetBusy`, so its sender is told
rather than left waiting.

The budget knows nothing about images; :mod:`stylebot.images` says what a
decode costs. :func:`configure` resizes it (a host with less memory).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["DEFAULT_BYTES", "BudgetBusy", "DecodeBudget", "OverBudget", "configure", "shared"]

MB = 1024 * 1024
#: The default: one 49 MP RGBA image (the largest we accept, 196 MB decoded) at a time,
#: or several smaller ones beside each other.
DEFAULT_BYTES = 256 * MB
#: Releasing at least this much also hands free heap memory back to the OS (see :func:`_trim`).
TRIM_ABOVE = 8 * MB


@dataclass
class OverBudget(Exception):
    """The decode needs more than the whole budget: it could never start."""

    needed: int
    total: int


@dataclass
class BudgetBusy(Exception):
    """The budget stayed taken until the deadline."""

    needed: int
    waited: float


class DecodeBudget:
    """A counting semaphore of bytes with a first-come-first-served queue.

    First come first served so that a big request is not starved by a stream
    of small ones, and so the first of many equal requests finishes first:
    its thread is free again after one decode, not after all of them.
    """

    def __init__(self, total: int) -> None:
        if total <= 0:
            raise ValueError(f"a decode budget must be positive, not {total}")
        self.total = total
        self._used = 0
        self._peak = 0
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()

    @property
    def used(self) -> int:
        return self._used

    @property
    def peak(self) -> int:
        """The most bytes ever reserved at once (tests check that reservations never stacked past the total)."""
        return self._peak

    def acquire(self, needed: int, timeout: float) -> int:
        """Reserve ``needed`` bytes, waiting up to ``timeout`` s; returns what to pass to :meth:`release`."""
        needed = max(0, int(needed))
        if needed > self.total:
            raise OverBudget(needed, self.total)
        ticket = object()
        started = time.monotonic()
        deadline = started + timeout
        with self._cond:
            self._queue.append(ticket)
            try:
                while self._queue[0] is not ticket or self._used + needed > self.total:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise BudgetBusy(needed, time.monotonic() - started)
                    self._cond.wait(left)
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()  # the next in line may fit now (or the head changed)
            self._used += needed
            self._peak = max(self._peak, self._used)
        return needed

    def release(self, reserved: int) -> None:
        """Give ``reserved`` back; after a big decode, its freed memory goes back to the OS first."""
        if reserved >= TRIM_ABOVE:
            _trim()
        with self._cond:
            self._used -= reserved
            self._cond.notify_all()

    @contextmanager
    def reserve(self, needed: int, timeout: float) -> Iterator[None]:
        """``with budget.reserve(n, timeout=60): decode()``: held for exactly the decode."""
        reserved = self.acquire(needed, timeout)
        try:
            yield
        finally:
            self.release(reserved)


def _load_trim():
    """glibc's ``malloc_trim``, or None elsewhere (musl, macOS: nothing to do)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


_malloc_trim = _load_trim()


def _trim() -> None:
    """Return free heap pages to the OS.

    Decodes run on many handler threads, each with its own glibc malloc
    arena; what a decode freed in an arena (band copies, decoder buffers,
    images below the mmap threshold) stays in the process until trimmed.
    ``malloc_trim(0)`` releases it in every arena (the engine does the same
    between its levels, :mod:`stylebot.engine.platform`).
    """
    if _malloc_trim is not None:
        _malloc_trim(0)


_shared = DecodeBudget(DEFAULT_BYTES)
_shared_lock = threading.Lock()


def shared() -> DecodeBudget:
    """The process-wide budget every decode of user images goes through."""
    return _shared


def configure(total: int) -> DecodeBudget:
    """Replace the process-wide budget (at start, e.g. from the host's memory limit); returns the new one.

    Decodes already holding the old budget finish in it; new ones use the new one.
    """
    global _shared
    with _shared_lock:
        _shared = DecodeBudget(total)
        return _shared
