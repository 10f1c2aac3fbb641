"""jobs: the ``Job`` record, its status, and the in-process job queue.

The queue is the database: a job is ``QUEUED`` in SQLite before the user is
told so, a worker thread claims the oldest one atomically, and it only turns
``DONE`` after the result has been delivered. A restart (or SIGKILL) therefore
loses nothing: whatever was ``QUEUED`` or ``RUNNING`` is simply queued again.

The RQ back-end (``rq_queue.py``) offers the same small interface and runs the
same :func:`runner.run_job`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Protocol

log = logging.getLogger(__name__)

#: A job that crashed the whole process this many times is given up on,
#: so that one poisonous image can't crash-loop the bot forever.
MAX_ATTEMPTS = 3


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
    """Why a running job should stop: the user cancelled it, or we are shutting down.

    The engine only sees ``event`` (a ``threading.Event``); the worker reads
    ``shutdown`` afterwards to tell "cancelled" (final) from "interrupted by
    SIGTERM" (goes back in the queue).
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.shutdown = False

    def cancel(self) -> None:
        self.event.set()

    def interrupt(self) -> None:
        self.shutdown = True
        self.event.set()


#: ``execute(job, stop)`` runs one job to its end (``runner.run_job`` bound to
#: its context). It must set the job's final status itself.
Executor = Callable[[Job, Stop], None]


class ThreadQueue:
    """FIFO queue in SQLite with ``workers`` threads in this process.

    ``on_move`` is called (off the worker's critical path) whenever waiting
    jobs move up, so the bot can refresh everyone's queue position.
    """

    def __init__(
        self,
        store,
        execute: Executor,
        workers: int = 1,
        on_move: Callable[[list[Job]], None] | None = None,
    ) -> None:
        self.store = store
        self.execute = execute
        self.workers = workers
        self.on_move = on_move
        self._wake = threading.Condition()
        self._running: dict[str, Stop] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._announcing: set[str] = set()

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

    # --- the worker ----------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping.is_set():
            with self._wake:
                skip = set(self._announcing)
            job = self.store.claim_next(skip=skip)
            if job is None:
                with self._wake:
                    self._wake.wait(timeout=1.0)
                continue
            self._moved()
            if job.attempts > MAX_ATTEMPTS:
                log.error("job %s crashed the process %d times; giving up", job.id, job.attempts - 1)
                self.store.set_status(job.id, JobStatus.FAILED, error="too many attempts")
                continue
            stop = Stop()
            with self._wake:
                self._running[job.id] = stop
            try:
                self.execute(job, stop)
            except Exception:  # the executor records failures; this is a last resort
                log.exception("job %s: executor raised", job.id)
                self.store.set_status(job.id, JobStatus.FAILED, error="executor crashed")
            finally:
                with self._wake:
                    self._running.pop(job.id, None)

    def _moved(self) -> None:
        if self.on_move is None:
            return
        try:
            self.on_move(self.store.queued_jobs())
        except Exception:
            log.exception("on_move callback failed")
