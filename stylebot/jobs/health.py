"""health: whether this process can take work now, and which failures are the machine's.

No exception ends a worker (issue 11: a full disk made recording a failure
fail too, the exception escaped and the thread died while polling kept saying
"queued"). Trouble with the machine rather than the job (a full disk, an
unwritable database, Redis gone) turns :class:`Health` "degraded": the worker
stops taking jobs, probes every few seconds, and picks up again by itself.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
import time
from collections.abc import Callable

from stylebot.errors import TelegramError, UserGone

log = logging.getLogger(__name__)


class Health:
    """Whether this process can take new work, and if not, why (shared, thread-safe).

    Workers set it; handlers consult ``ok`` before queueing (a full disk must
    answer "busy, try later" rather than accept jobs it cannot record), and the
    webhook's ``GET /healthz`` reports it. Every change is logged once, so the
    operator sees exactly when a worker went degraded and when it came back.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._since = time.monotonic()

    @property
    def ok(self) -> bool:
        return self._reason is None

    @property
    def reason(self) -> str | None:
        return self._reason

    def degrade(self, reason: str) -> None:
        with self._lock:
            if self._reason == reason:
                return
            self._reason, self._since = reason, time.monotonic()
        log.warning("health: degraded: %s; not taking new jobs until it clears", reason)

    def recover(self) -> None:
        with self._lock:
            if self._reason is None:
                return
            reason, self._reason = self._reason, None
            down = time.monotonic() - self._since
            self._since = time.monotonic()
        log.warning("health: back to normal after %.0f s (was: %s)", down, reason)


def resource_trouble(exc: BaseException) -> str | None:
    """A short reason when ``exc`` is the machine's trouble, not the job's; ``None`` otherwise.

    Such a job is not failed: it waits (still queued) until the trouble clears.
    """
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return "disk full" if "full" in text else f"database unavailable ({text[:60]})"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk full"
    if isinstance(exc, OSError) and exc.errno in (errno.EIO, errno.EROFS):
        return f"disk error ({errno.errorcode.get(exc.errno, exc.errno)})"
    if type(exc).__module__.split(".")[0] == "redis":
        return f"redis unavailable ({type(exc).__name__})"
    return None


def upstream_failure(exc: BaseException) -> str | None:
    """The text key for a failure that was the Bot API's (a redirect, a 5xx, a timeout), else ``None``.

    Such a job is not retried (Telegram may be down for a while, and the user is there to decide), but its
    user is told what happened in words of its own rather than "something went wrong".
    """
    upstream = getattr(exc, "upstream", None)
    if upstream is None or not isinstance(exc, TelegramError) or isinstance(exc, UserGone):
        return None
    return f"upstream_{upstream.value}"


class OutcomeNotRecorded(Exception):
    """A job ended (its user was told) but the store refused to record how.

    ``write`` records it; the worker retries it until the store takes writes
    again, and only then takes new jobs, so the job is neither lost nor run twice.
    """

    def __init__(self, job_id: str, write: Callable[[], None], cause: BaseException) -> None:
        super().__init__(f"job {job_id}: outcome not recorded: {cause}")
        self.job_id = job_id
        self.write = write
        self.reason = resource_trouble(cause) or type(cause).__name__
