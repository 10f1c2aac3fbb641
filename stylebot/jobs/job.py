"""jobs: the ``Job`` record, its status, and the in-process job queue.

The queue is the database: a job is ``QUEUED`` in SQLite before the user is
told so, a worker thread claims the oldest one atomically, and it only turns
``DONE`` after the result has been delivered. A restart (or SIGKILL) therefore
loses nothing: whatever was ``QUEUED`` or ``RUNNING`` is simply queued again.

No exception ends a worker thread (issue 11: a full disk made recording a
failure fail too, the exception escaped and the thread died while polling
kept saying "queued"). Trouble with the machine rather than the job (a full
disk, an unwritable database) turns :class:`Health` "degraded": the worker
stops taking jobs, probes every few seconds, and picks up again by itself.

The RQ back-end (``rq_queue.py``) offers the same small interface and runs the
same :func:`runner.run_job`.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Protocol

log = logging.getLogger(__name__)

#: A job that was running when the process died (SIGKILL, OOM, a deploy) goes
#: back in the queue; only after this many such deaths is it given up on (and its
#: user told why), so one poisonous image can't crash-loop the bot forever while
#: a few restarts during a job are not held against it.
MAX_CRASHES = 6
#: Kept for the RQ back-end, which checks it the same way.
MAX_ATTEMPTS = MAX_CRASHES
#: Default wall-clock bound on one job (seconds); ``runner.Context.job_timeout``.
JOB_TIMEOUT = 15 * 60.0


class JobStatus(str, Enum):
    """Stored verbatim in the database, so values are lowercase words."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        return self in (JobStatus.QUEUED, JobStatus.RUNNING)


@dataclass
class Job:
    """One style-transfer request: Telegram file ids and the settings to paint with.

    Only ``file_id``s are kept, never paths or downloaded bytes: the images
    are fetched when the job starts, so a restart needs nothing but this row.
    """

    user_id: int
    chat_id: int
    content_file_id: str
    style_file_id: str
    size: int
    strength: float = 1.0
    keep_colors: bool = False
    lang: str = "en"
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    status: JobStatus = JobStatus.QUEUED
    seq: int = 0
    status_message_id: int | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    error: str | None = None


def crashes(job: Job) -> int:
    """Earlier attempts at a just-claimed job that ended with the process dying.

    Every claim counts an attempt; a graceful stop gives it back and every other
    ending is final, so what is left over, less this attempt, is deaths.
    """
    return max(job.attempts - 1, 0)


# --- health: can this process take work now? -----------------------------------
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


class JobQueue(Protocol):
    """What the bot needs from a queue back-end (threads here, RQ on Redis)."""

    def submit(self, job: Job, announce: Callable[[int], int | None] | None = None) -> int:
        """Store and enqueue ``job``; return its queue position (1 = next).

        ``announce(position)`` tells the user (returns the status message id)
        after the job is stored but before any worker may start it, so the
        "queued" message always comes before the first progress edit.
        """

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued job, or stop a running one within one engine step."""

    def position(self, job_id: str) -> int | None:
        """1-based position among waiting jobs, ``None`` if not waiting."""

    def start(self) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...


def store_and_announce(store, job: Job, announce: Callable[[int], int | None] | None) -> int:
    """The first half of every back-end's ``submit``: write the job, then tell the user.

    The job is durable before anyone hears "queued"; the status message id is
    recorded before the job can start, so progress edits land on it.
    """
    store.create_job(job)
    position = store.position(job.id) or 1
    if announce is not None:
        message_id = announce(position)
        if message_id is not None:
            job.status_message_id = message_id
            store.set_status_message(job.id, message_id)
    return position


class Stop:
    """Why a running job should stop: the user cancelled it, we are shutting down, or it ran too long.

    The engine only sees ``event`` (a ``threading.Event``); the worker reads
    ``shutdown`` / ``timed_out`` afterwards to tell "cancelled" (final) from
    "interrupted by SIGTERM" (goes back in the queue) from "over its time".
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.shutdown = False
        self.timed_out = False

    def cancel(self) -> None:
        self.event.set()

    def interrupt(self) -> None:
        self.shutdown = True
        self.event.set()

    def expire(self) -> None:
        if not self.event.is_set():
            self.timed_out = True
            self.event.set()


#: ``execute(job, stop)`` runs one job to its end (``runner.run_job`` bound to
#: its context). It must set the job's final status itself.
Executor = Callable[[Job, Stop], None]


class ThreadQueue:
    """FIFO queue in SQLite with ``workers`` threads in this process.

    ``on_move(waiting)`` is called whenever waiting jobs move up, so the bot
    can refresh queue positions; ``waiting`` is a callable returning the queued
    jobs, so the (possibly throttled) listener queries the store only when it
    actually edits, off the worker thread. ``probe()`` raises while the disk is
    still unusable; ``job_timeout`` bounds one job's wall-clock time.
    """

    #: Back-off between retries while the store or disk refuses (seconds).
    retry_min = 0.5
    retry_max = 10.0

    def __init__(
        self,
        store,
        execute: Executor,
        workers: int = 1,
        on_move: Callable[[Callable[[], list[Job]]], None] | None = None,
        health: Health | None = None,
        probe: Callable[[], None] | None = None,
        job_timeout: float = JOB_TIMEOUT,
    ) -> None:
        self.store = store
        self.execute = execute
        self.workers = workers
        self.on_move = on_move
        self.health = health or Health()
        self.probe = probe
        self.job_timeout = job_timeout
        self._wake = threading.Condition()
        self._running: dict[str, Stop] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._announcing: set[str] = set()
        self._unrecorded: dict[str, Callable[[], None]] = {}

    # --- the interface -------------------------------------------------
    def submit(self, job: Job, announce: Callable[[int], int | None] | None = None) -> int:
        with self._wake:
            self._announcing.add(job.id)
        try:
            position = store_and_announce(self.store, job, announce)
        finally:
            with self._wake:
                self._announcing.discard(job.id)
                self._wake.notify()
        return position

    def cancel(self, job_id: str) -> bool:
        with self._wake:
            stop = self._running.get(job_id)
        if stop is not None:
            stop.cancel()
            return True
        if self.store.cancel_if_queued(job_id):
            self._moved()
            return True
        return False

    def position(self, job_id: str) -> int | None:
        return self.store.position(job_id)

    def start(self) -> None:
        for n in range(self.workers):
            thread = threading.Thread(target=self._loop, name=f"worker-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Interrupt running jobs (they go back to ``QUEUED``) and join the workers."""
        self._stopping.set()
        with self._wake:
            for stop in self._running.values():
                stop.interrupt()
            self._wake.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        # A job that didn't stop in time is still RUNNING in the store; the
        # next start re-queues it, so nothing is lost either way.

    def running_ids(self) -> list[str]:
        with self._wake:
            return list(self._running)

    def alive_workers(self) -> int:
        return sum(t.is_alive() for t in self._threads)

    # --- the worker ----------------------------------------------------
    def _loop(self) -> None:
        delay = 0.0
        while not self._stopping.is_set():
            try:
                worked = self._step()
                delay = 0.0
            except Exception as exc:  # nothing may end a worker: report, back off, try again
                reason = resource_trouble(exc) or f"worker error ({type(exc).__name__})"
                if self.health.ok:
                    log.error("worker: %s", exc, exc_info=exc)
                self.health.degrade(reason)
                delay = min(max(delay * 2, self.retry_min), self.retry_max)
                self._stopping.wait(delay)
                continue
            if not worked:
                with self._wake:
                    self._wake.wait(timeout=1.0)

    def _step(self) -> bool:
        """One turn: settle unrecorded outcomes, recheck health, run one job. Raises on trouble."""
        self._record_pending()
        if not self.health.ok:
            if self.probe is not None:
                self.probe()
            self.health.recover()
        with self._wake:
            skip = set(self._announcing)
        job = self.store.claim_next(skip=skip)
        if job is None:
            return False
        self._moved()
        self._run(job)
        return True

    def _run(self, job: Job) -> None:
        stop = Stop()
        timer = threading.Timer(self.job_timeout, stop.expire)
        timer.daemon = True
        with self._wake:
            self._running[job.id] = stop
        timer.start()
        try:
            self.execute(job, stop)
        except OutcomeNotRecorded as exc:
            with self._wake:
                self._unrecorded[job.id] = exc.write
            self.health.degrade(exc.reason)
        except Exception as exc:  # the executor records failures; this is a last resort
            log.error("job %s: executor raised: %s", job.id, exc, exc_info=exc)
            # Not the job's fault as far as we know: back in line (the attempt counts as a crash).
            with self._wake:
                self._unrecorded[job.id] = lambda: self.store.release(job.id)
            raise
        finally:
            timer.cancel()
            with self._wake:
                self._running.pop(job.id, None)

    def _record_pending(self) -> None:
        """Write outcomes the store refused earlier; raises (keeping the rest) while it still refuses."""
        with self._wake:
            pending = list(self._unrecorded.items())
        for job_id, write in pending:
            write()
            with self._wake:
                self._unrecorded.pop(job_id, None)
            log.info("job %s: outcome recorded after the store came back", job_id)

    def _moved(self) -> None:
        if self.on_move is None:
            return
        try:
            self.on_move(self.store.queued_jobs)
        except Exception:
            log.exception("on_move callback failed")
