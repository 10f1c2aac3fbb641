"""job: the ``Job`` record, its status, ``Stop``, and what every queue back-end shares.

The queue is the database: a job is ``QUEUED`` in the store before the user is
told so, a worker claims it atomically, and it only turns ``DONE`` after the
result has been delivered. A restart (or SIGKILL) therefore loses nothing:
whatever was ``QUEUED`` or ``RUNNING`` is simply queued again.

Back-ends: :class:`stylebot.jobs.threads.ThreadQueue` (worker threads in this
process) and :class:`stylebot.scaleout.rq_queue.RQQueue` (RQ workers); both run
the same :func:`stylebot.jobs.run.run_job`. Machine health (full disk, store
refusing writes) is :mod:`stylebot.jobs.health`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: A job that was running when the process died (SIGKILL, OOM, a deploy) goes
#: back in the queue; only after this many such deaths is it given up on (and its
#: user told why), so one poisonous image can't crash-loop the bot forever while
#: a few restarts during a job are not held against it.
MAX_CRASHES = 6
#: Default wall-clock bound on one job (seconds); ``run.Context.job_timeout``.
JOB_TIMEOUT = 15 * 60.0
#: A job's speed (``Job.speed``): painted by the Gatys engine, or answered with the draft network (quick mode).
PAINTED = "painted"
QUICK = "quick"
SPEEDS = (PAINTED, QUICK)


class JobStatus(str, Enum):  # noqa: UP042 - StrEnum would change str(member), which logs and f-strings use
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
    #: A gallery style's slug (its credit goes in the caption); None for a picture the user sent.
    style_slug: str | None = None
    #: Mixed styles: the second style and its share of the style statistics (0..1).
    style2_file_id: str | None = None
    style2_slug: str | None = None
    mix: float = 0.5
    #: In a group, the user's message the result replies to (None in a private chat).
    reply_to_message_id: int | None = None
    #: PAINTED or QUICK (the draft network, in about a second); rows and hashes from before it read PAINTED.
    speed: str = PAINTED


def crashes(job: Job) -> int:
    """Earlier attempts at a just-claimed job that ended with the process dying.

    Every claim counts an attempt; a graceful stop gives it back and every other
    ending is final, so what is left over, less this attempt, is deaths.
    """
    return max(job.attempts - 1, 0)


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


def store_and_announce(store: Any, job: Job, announce: Callable[[int], int | None] | None) -> int:
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
        #: Held by the status reporter around each progress send, and by :meth:`cancel` while it sets
        #: the event: once ``cancel`` returns (and the user hears "Job cancelled"), no preview or
        #: progress edit is in flight and none will start (jobs/status.py).
        self.gate = threading.Lock()

    def cancel(self) -> None:
        with self.gate:
            self.event.set()

    def interrupt(self) -> None:
        self.shutdown = True
        self.event.set()

    def expire(self) -> None:
        if not self.event.is_set():
            self.timed_out = True
            self.event.set()
