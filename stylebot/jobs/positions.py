"""positions: waiting users' "in the queue" messages, edited as the queue moves.

Off the worker thread and rate-limited (issue 11: editing every waiting
message on every claim cost n²/2 edits and 429s from Telegram). Both back-ends
use it: ``ThreadQueue``'s ``on_move`` and the RQ worker after each claim.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from stylebot import texts
from stylebot.errors import TelegramError, UserGone
from stylebot.jobs.job import Job
from stylebot.tg import Telegram

log = logging.getLogger("stylebot")


class TokenBucket:
    """``rate`` calls per second on average, bursts up to ``burst``; ``take()`` waits its turn."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._tokens, self._at = burst, clock()
        self._lock = threading.Lock()

    def take(self) -> None:
        while True:
            with self._lock:
                now = self.clock()
                self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
                self._at = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.rate
            time.sleep(wait)


class PositionWatcher:
    """Edits waiting users' "in the queue" messages when the queue moves, off the worker thread.

    Issue 11: editing every waiting message on every claim made n queued jobs
    cost n²/2 edits (50 users: 1,226 ``editMessageText``; Telegram answers 429).
    Now, per job: an edit only when the text shown changes; exact positions
    only near the front (``exact``), "more than N ahead" beyond; at least
    ``min_interval`` s between a job's edits and at most ``max_edits`` in all,
    the last kept for "you are next". All edits share one token bucket well
    under Telegram's ~30 messages/s. The store is read here, at most once per
    ``min_gap`` s, not on the worker thread.
    """

    exact = 4
    thresholds = (3, 10, 20, 50, 100, 200, 500, 1000)

    def __init__(
        self, tg: Telegram, min_interval: float = 15.0, max_edits: int = 3, rate: float = 20.0, min_gap: float = 1.0
    ) -> None:
        self.tg = tg
        self.min_interval = min_interval
        self.max_edits = max_edits
        self.min_gap = min_gap
        self.bucket = TokenBucket(rate, burst=rate)
        self._latest: list[Job] | Callable[[], list[Job]] | None = None
        self._source: Callable[[], list[Job]] | None = None
        self._shown: dict[str, str] = {}
        self._edits: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._recheck_at: float | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="positions", daemon=True)
        self._thread.start()

    def notify(self, waiting: list[Job] | Callable[[], list[Job]]) -> None:
        """The queue moved: ``waiting`` is the queued jobs, or a callable that reads them."""
        with self._cond:
            self._latest = waiting
            if callable(waiting):
                self._source = waiting
            self._cond.notify()

    def text(self, job: Job, position: int) -> str:
        if position == 1:
            return texts.t(job.lang, "queued_next")
        if position <= self.exact:
            return texts.t(job.lang, "queued", position=position)
        ahead = max(t for t in self.thresholds if t < position - 1 or t == self.thresholds[0])
        return texts.t(job.lang, "queued_many", ahead=ahead)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._latest is None:
                    timeout = None if self._recheck_at is None else max(0.0, self._recheck_at - time.monotonic())
                    self._cond.wait(timeout)
                    if (
                        self._latest is None
                        and self._recheck_at is not None
                        and self._source is not None
                        and time.monotonic() >= self._recheck_at
                    ):
                        self._latest = self._source  # deferred edits are due: look again
                waiting, self._latest = self._latest, None
            try:
                self._update(waiting() if callable(waiting) else waiting)
            except Exception:
                log.exception("position updates failed")
            time.sleep(self.min_gap)  # coalesce bursts of claims into one look at the queue

    def _update(self, waiting: list[Job]) -> None:
        now = time.monotonic()
        self._recheck_at = None
        present = {job.id for job in waiting}
        for gone in [j for j in self._last if j not in present]:
            self._shown.pop(gone, None), self._edits.pop(gone, None), self._last.pop(gone, None)
        for position, job in enumerate(waiting, 1):
            if job.status_message_id is None:
                continue
            if job.id not in self._last:  # first sight: the handler's "queued" message was its first text
                self._last[job.id] = now
                self._edits[job.id] = 0
                if position > 1:
                    continue
            text = self.text(job, position)
            edits = self._edits[job.id]
            if text == self._shown.get(job.id) or edits >= self.max_edits:
                continue
            if position > 1 and edits >= self.max_edits - 1:
                continue  # the last edit is kept for "you are next"
            due = self._last[job.id] + self.min_interval
            if now < due and position > 1:
                self._recheck_at = due if self._recheck_at is None else min(self._recheck_at, due)
                continue
            self.bucket.take()
            self._shown[job.id], self._edits[job.id], self._last[job.id] = text, edits + 1, time.monotonic()
            try:
                self.tg.edit_text(job.chat_id, job.status_message_id, text)
            except (TelegramError, UserGone) as exc:
                log.info("position update for job %s failed: %s", job.id, exc)
