"""rq_queue: the scale-out job queue — jobs in Redis, run by RQ workers anywhere.

:class:`RQQueue` is the ``JobQueue`` back-end the web process hands to the
handlers: the job is stored in :class:`~stylebot.store.redis_store.RedisStore`,
the user is told their place, and only then an RQ message ("run job X") is
enqueued, so no worker can start a job before its "queued" message exists.
The message names :func:`stylebot.scaleout.worker.perform` by its import path
(``PERFORM``); the worker process is :mod:`stylebot.scaleout.worker`.

Who owns what: the store is the truth about a job (queued, running, done);
an RQ message is only a wake-up call for one job id. A worker *claims* the
job before running it (queued -> running, one Lua script), so a duplicate or
stale message is harmless: its claim fails and it returns at once. That is
what lets recovery be simple and aggressive:

* a running job has a lease in Redis that its worker renews every few
  seconds (:class:`Lease`); a worker that is SIGKILLed, loses power or its
  network stops renewing, and the next worker's reconciler (every worker runs
  one; a short Redis lock lets one at a time act) puts the job back in its
  place in line and enqueues a fresh message for it;
* the reconciler also re-sends the message of any queued job whose message
  was lost (a web process killed between storing and enqueueing, a worker
  killed between RQ's dequeue and our claim): :meth:`RQQueue.lost_messages`.

Why not RQ's own abandoned-job handling: in rq 3.0 a ``SimpleWorker`` does
not heartbeat while it runs a job, so RQ only notices a dead worker when the
job's whole timeout (plus a minute) has passed, and only in a maintenance
pass every ten minutes. Our lease notices a death within ``LEASE_SECONDS``.

Nothing here is imported unless ``REDIS_URL`` is set: ``main`` imports the
scale-out modules only for ``worker`` and the webhook mode.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

try:
    import redis
    from rq import Queue
    from rq.exceptions import InvalidJobOperation, NoSuchJobError
    from rq.job import Job as RQJob
    from rq.job import JobStatus as RQStatus
except ModuleNotFoundError as exc:  # the default install has neither: say what to do
    raise SystemExit(
        f"error: the scale-out mode needs `pip install -r requirements-scale.txt` ({exc.name} is not installed)"
    ) from None

from stylebot.jobs.job import Job, JobStatus, Stop, store_and_announce
from stylebot.store.redis_store import RedisStore, connect

log = logging.getLogger(__name__)

QUEUE_NAME = "stylebot"
#: What an RQ message runs, by import path (the worker module imports this one, not the reverse).
PERFORM = "stylebot.scaleout.worker.perform"
#: A running job whose worker has not renewed its lease for this long is given to another worker.
LEASE_SECONDS = 15.0
#: How often a worker renews the lease of the job it runs (several renewals fit in one lease).
RENEW_SECONDS = 3.0
#: How often a worker checks for a cancel request (pub/sub also delivers it at once).
CANCEL_POLL_SECONDS = 1.0
#: How often some worker looks for expired leases and lost messages.
RECONCILE_SECONDS = 3.0
#: A queued job whose RQ message is missing or stuck is re-sent after this long (it covers the
#: web process's "queued" message, which goes out between storing the job and enqueueing it).
LOST_MESSAGE_SECONDS = 120.0
#: RQ's hard limit on one job; the engine normally ends far sooner.
JOB_TIMEOUT = 3 * 3600
#: Full-quality PNGs above this stay on the worker's disk only (Redis memory is small on Heroku).
MAX_RESULT_BYTES = 8 * 1024 * 1024

_DONE_MESSAGES = {RQStatus.FINISHED, RQStatus.FAILED, RQStatus.STOPPED, RQStatus.CANCELED}


def worker_identity() -> str:
    """``host:pid:nonce``: says where to look when a worker misbehaves, and is unique among live ones.

    The random nonce matters in containers: every worker there is pid 1, and with host networking
    every container has the host's name, so ``host:pid`` alone made RQ refuse the second worker
    ("There exists an active worker named ...").
    """
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class RQQueue:
    """``jobs.JobQueue`` on Redis + RQ: what the web process (and the workers) enqueue with."""

    def __init__(self, store: RedisStore, connection: redis.Redis | None = None, name: str = QUEUE_NAME) -> None:
        self.store = store
        # RQ stores pickled payloads: it needs a client that returns bytes.
        self.connection = connection if connection is not None else connect(store.url, decode=False)
        self.rq = Queue(name, connection=self.connection)

    # --- the interface -------------------------------------------------
    def submit(self, job: Job, announce: Callable[[int], int | None] | None = None) -> int:
        position = store_and_announce(self.store, job, announce)
        self.dispatch(job.id)
        return position

    def cancel(self, job_id: str) -> bool:
        if self.store.cancel_if_queued(job_id):
            self._drop_message(job_id)
            return True
        job = self.store.get_job(job_id)
        if job is not None and job.status == JobStatus.RUNNING:
            self.store.request_cancel(job_id)
            return True
        return False

    def position(self, job_id: str) -> int | None:
        return self.store.position(job_id)

    def start(self) -> None:
        """Nothing to start: workers are their own processes (``python main.py worker``)."""

    def stop(self, timeout: float = 10.0) -> None:
        """Nothing to stop here: a worker's SIGTERM puts its running job back itself."""

    # --- messages --------------------------------------------------------
    def dispatch(self, job_id: str, at_front: bool = False) -> str:
        """Enqueue the RQ message that makes some worker run ``job_id``; returns its RQ id.

        The message id is recorded first, so the reconciler never judges a
        job by a message that has already been replaced.
        """
        token = uuid.uuid4().hex
        self.store.set_dispatch(job_id, token)
        self.rq.enqueue(
            PERFORM,
            job_id,
            job_id=token,
            job_timeout=JOB_TIMEOUT,
            result_ttl=3600,
            failure_ttl=24 * 3600,
            at_front=at_front,
            description=f"stylebot job {job_id}",
        )
        return token

    def _drop_message(self, job_id: str) -> None:
        """Best effort: take a cancelled job's message out of RQ (if it stays, its claim just fails)."""
        token = self.store.dispatch(job_id)
        if not token:
            return
        try:
            RQJob.fetch(token, connection=self.connection).cancel()
        except (NoSuchJobError, InvalidJobOperation, redis.RedisError) as exc:  # taken or expired: fine
            log.debug("job %s: message %s not cancelled: %s", job_id, token, type(exc).__name__)

    def lost_messages(self, queued: list[Job], now: float | None = None) -> list[str]:
        """Queued jobs that no RQ message will ever run (see the module docstring)."""
        now = time.time() if now is None else now
        tokens = {job.id: self.store.dispatch(job.id) for job in queued}
        known = [t for t in tokens.values() if t]
        messages = dict(zip(known, RQJob.fetch_many(known, connection=self.connection))) if known else {}
        lost = []
        for job in queued:
            token = tokens[job.id]
            if token is None:
                if now - job.created_at > LOST_MESSAGE_SECONDS:
                    lost.append(job.id)
                continue
            message = messages.get(token)
            if message is None:
                lost.append(job.id)
                continue
            if _will_never_run(message, now):
                lost.append(job.id)
        return lost


def _will_never_run(message: RQJob, now: float) -> bool:
    """Consumed already, or taken long ago by a worker that died before claiming the job."""
    status = message.get_status(refresh=False)
    if status in _DONE_MESSAGES:
        return True
    started = message.started_at
    return status == RQStatus.STARTED and started is not None and now - started.timestamp() > LOST_MESSAGE_SECONDS


# --- the worker side -------------------------------------------------------


class Lease(threading.Thread):
    """Beside a running job: renews its lease and turns a cancel request into ``Stop.cancel()``.

    A lost lease (Redis unreachable for longer than ``LEASE_SECONDS``) is
    only logged: the job keeps going, because stopping it could clobber the
    state another worker has since written. At worst the user gets the result
    twice; never none.
    """

    def __init__(self, store: RedisStore, job_id: str, stop: Stop) -> None:
        super().__init__(name=f"lease-{job_id}", daemon=True)
        self.store, self.job_id, self.stop = store, job_id, stop
        self._done = threading.Event()
        self.lost = False

    def run(self) -> None:
        renewed = time.monotonic()
        while not self._done.wait(CANCEL_POLL_SECONDS):
            try:
                if self.store.cancel_requested(self.job_id):
                    self.stop.cancel()
                if time.monotonic() - renewed >= RENEW_SECONDS:
                    renewed = time.monotonic()
                    if not self.store.renew_lease(self.job_id, LEASE_SECONDS) and not self.lost:
                        self.lost = True
                        log.warning("job %s: lease lost (no longer running here per Redis)", self.job_id)
            except redis.RedisError as exc:
                log.warning("job %s: lease renewal failed: %s", self.job_id, type(exc).__name__)

    def close(self) -> None:
        self._done.set()
        if self.ident is not None:
            self.join(timeout=5)
