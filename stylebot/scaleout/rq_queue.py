"""rq_queue: the scale-out job queue — jobs in Redis, run by RQ workers anywhere.

Two halves:

* :class:`RQQueue`, the ``jobs.JobQueue`` back-end the web process hands to
  ``bot.Handlers``: the job is stored in :class:`redis_store.RedisStore`, the
  user is told their place, and only then an RQ message ("run job X") is
  enqueued, so no worker can start a job before its "queued" message exists.
* :func:`run_worker`, ``python main.py worker``: an RQ ``SimpleWorker`` that
  loads the engine once and runs every job through the same
  :func:`runner.run_job` as the in-process ``ThreadQueue`` does.

Who owns what: the store is the truth about a job (queued, running, done);
an RQ message is only a wake-up call for one job id. A worker *claims* the
job before running it (queued -> running, one Lua script), so a duplicate or
stale message is harmless: its claim fails and it returns at once. That is
what lets recovery be simple and aggressive:

* a running job has a lease in Redis that its worker renews every few
  seconds; a worker that is SIGKILLed, loses power or its network stops
  renewing, and the next worker's reconciler (every worker runs one; a short
  Redis lock lets one at a time act) puts the job back in its place in line
  and enqueues a fresh message for it;
* the reconciler also re-sends the message of any queued job whose message
  was lost (a web process killed between storing and enqueueing, a worker
  killed between RQ's dequeue and our claim).

Why not RQ's own abandoned-job handling: in rq 3.0 a ``SimpleWorker`` does
not heartbeat while it runs a job, so RQ only notices a dead worker when the
job's whole timeout (plus a minute) has passed, and only in a maintenance
pass every ten minutes; a forking ``Worker`` heartbeats, but see below. Our
lease notices a death within ``LEASE_SECONDS``.

Why ``SimpleWorker`` (no fork per job): the point of a worker process is
to load the VGG weights once and keep them (and, on a GPU machine, the CUDA
context) warm. A forking worker would either reload the engine in every
child (a second or more per job, and the child's memory on top) or fork a
parent that already initialised torch — CUDA cannot be used in a forked
child at all, and torch's CPU thread pools are not fork-safe. Running jobs in
the worker process itself costs nothing and keeps cancellation simple: the
cancel listener and the lease renewal are threads beside the job.

SIGTERM (Heroku's daily restart, a deploy, ``docker stop``): the running
job's ``Stop.interrupt()`` makes the engine raise ``Cancelled`` within one
step, ``run_job`` puts the job back in the queue (attempt not counted), this
module re-enqueues its message at the front and tells the user, and RQ's warm
shutdown ends the process.

Nothing here is imported unless ``REDIS_URL`` is set: ``main`` imports this
module only for ``worker`` and the webhook mode.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import telebot

try:
    import redis
    from rq import Queue, SimpleWorker
    from rq.exceptions import InvalidJobOperation, NoSuchJobError
    from rq.job import Job as RQJob
    from rq.job import JobStatus as RQStatus
except ModuleNotFoundError as exc:  # the default install has neither: say what to do
    raise SystemExit(f"error: the scale-out mode needs `pip install -r requirements-scale.txt` "
                     f"({exc.name} is not installed)") from None

from stylebot import texts
from stylebot.jobs.job import MAX_ATTEMPTS, Job, JobStatus, Stop, store_and_announce
from stylebot.store.redis_store import RedisStore, connect
from stylebot.jobs.run import RESULT_HOURS, Context, result_path, run_job
from stylebot.tg import Telegram, TelegramError, UserGone, use_api_url

log = logging.getLogger(__name__)

QUEUE_NAME = "stylebot"
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
    """``host:pid``: unique among live workers, and says where to look when one misbehaves."""
    return f"{socket.gethostname()}:{os.getpid()}"


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
            perform,
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


@dataclass
class Running:
    job_id: str
    stop: Stop


class WorkerRuntime:
    """Everything a worker process keeps between jobs: engine, store, Telegram, threads.

    Built once per process by :func:`run_worker` (or lazily by the first job
    when someone starts a plain ``rq worker``).
    """

    def __init__(self, config: Any, engine: Any = None) -> None:
        from stylebot import app as main  # the shared wiring: engine loading, engine params, queue-position edits

        self.config = config
        self.identity = worker_identity()
        use_api_url(config.api_url)
        self.stopping = threading.Event()
        self.bot = telebot.TeleBot(config.token, threaded=False)
        self.tg = Telegram(self.bot, stop=self.stopping)
        self.store = RedisStore(config.redis_url)
        self.queue = RQQueue(self.store)
        self.engine = engine if engine is not None else main.load_engine(config)
        self.ctx = Context(
            store=self.store,  # duck-typed: RedisStore has Store's methods
            tg=self.tg,
            engine=self.engine,
            params=main.engine_params,
            results_dir=config.results_dir,
            job_timeout=float(config.job_timeout),
        )
        self.positions = main.PositionWatcher(self.tg)
        self._lock = threading.Lock()
        self._running: Running | None = None
        self._threads_started = False

    # --- background threads --------------------------------------------
    def start(self) -> None:
        """The cancel listener and the reconciler (idempotent)."""
        if self._threads_started:
            return
        self._threads_started = True
        pubsub = self.store.r.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(**{self.store.key("cancel"): self._on_cancel_message})
        self._pubsub_thread = pubsub.run_in_thread(sleep_time=1.0, daemon=True,
                                                   exception_handler=_pubsub_trouble)
        threading.Thread(target=self._reconcile_loop, name="reconciler", daemon=True).start()

    def _on_cancel_message(self, message: dict) -> None:
        with self._lock:
            running = self._running
        if running is not None and message.get("data") == running.job_id:
            running.stop.cancel()

    def interrupt(self) -> None:
        """SIGTERM: the running job goes back to the queue; Telegram retries stop waiting."""
        self.stopping.set()
        with self._lock:
            if self._running is not None:
                log.info("job %s: interrupted by shutdown", self._running.job_id)
                self._running.stop.interrupt()

    def _reconcile_loop(self) -> None:
        while not self.stopping.wait(RECONCILE_SECONDS):
            try:
                self.reconcile()
            except Exception:
                log.exception("reconcile failed; retrying in %.0f s", RECONCILE_SECONDS)

    def reconcile(self) -> None:
        """Give dead workers' jobs to the living, and re-send lost messages (one worker at a time)."""
        lock = self.store.key("reconciler")
        if not self.store.r.set(lock, self.identity, nx=True, px=int(RECONCILE_SECONDS * 900)):
            return
        for job_id in self.store.reap_expired():
            log.warning("job %s: its worker stopped renewing the lease; queued again", job_id)
            self._requeued(job_id)
        for job_id in self.queue.lost_messages(self.store.queued_jobs()):
            log.warning("job %s: its queue message was lost; sending it again", job_id)
            self.queue.dispatch(job_id, at_front=True)

    def _requeued(self, job_id: str) -> None:
        """A job is back in line: tell its user (a fresh status message) and wake a worker."""
        job = self.store.get_job(job_id)
        if job is None:
            return
        # The old status message may be a preview photo, which can't become text again.
        self.store.set_status_message(job_id, None)
        position = self.store.position(job_id) or 1
        try:
            message = self.tg.send_text(job.chat_id, texts.t(job.lang, "resumed", position=position))
            self.store.set_status_message(job_id, message.message_id)
        except (TelegramError, UserGone) as exc:
            log.info("could not tell user about requeued job %s: %s", job_id, exc)
        self.queue.dispatch(job_id, at_front=True)

    # --- one job -----------------------------------------------------------
    def perform(self, job_id: str) -> str:
        """Run ``job_id`` if it is still waiting; returns how it ended (RQ keeps it as the result)."""
        if self.stopping.is_set():  # dequeued just as SIGTERM came: leave the job to another worker
            self.queue.dispatch(job_id, at_front=True)
            return "skipped: shutting down"
        job = self.store.claim(job_id, owner=self.identity, lease=LEASE_SECONDS)
        if job is None:
            return "skipped: not queued"
        self.positions.notify(self.store.queued_jobs())
        if job.attempts > MAX_ATTEMPTS:
            log.error("job %s crashed a worker %d times; giving up", job.id, job.attempts - 1)
            self.store.set_status(job.id, JobStatus.FAILED, error="too many attempts")
            try:
                self.tg.send_text(job.chat_id, texts.t(job.lang, "failed"))
            except (TelegramError, UserGone):
                pass
            return JobStatus.FAILED.value
        stop = Stop()
        lease = Lease(self.store, job.id, stop)
        with self._lock:  # interrupt() sets `stopping` before it takes the lock: no signal is missed
            self._running = Running(job.id, stop)
            if self.stopping.is_set():
                stop.interrupt()
        log.info("job %s: started on %s (attempt %d)", job.id, self.identity, job.attempts)
        lease.start()
        try:
            run_job(job, stop, self.ctx)
        finally:
            lease.close()
            with self._lock:
                self._running = None
            self.store.clear_cancel(job.id)
        return self._after(job.id)

    def _after(self, job_id: str) -> str:
        job = self.store.get_job(job_id)
        if job is None:  # forgotten (/forget) while it ran
            return "forgotten"
        if job.status == JobStatus.QUEUED:  # interrupted by SIGTERM: runner put it back
            self._requeued(job_id)
        elif job.status == JobStatus.DONE:
            self._share_result(job_id)
        return job.status.value

    def _share_result(self, job_id: str) -> None:
        """Copy the full-quality PNG to Redis: the "Full quality file" button is pressed on the web process."""
        path = result_path(self.ctx.results_dir, job_id)
        try:
            png = path.read_bytes()
        except FileNotFoundError:
            return
        if len(png) <= MAX_RESULT_BYTES:
            self.store.save_result(job_id, png, ttl=RESULT_HOURS * 3600)

    def close(self) -> None:
        self.stopping.set()
        thread = getattr(self, "_pubsub_thread", None)
        if thread is not None:
            thread.stop()


def _pubsub_trouble(exc: BaseException, pubsub: Any, thread: Any) -> None:
    """Keep listening through Redis hiccups (the lease poll covers the gap)."""
    log.warning("cancel listener: %s; reconnecting", type(exc).__name__)
    time.sleep(1.0)


_runtime: WorkerRuntime | None = None
_runtime_lock = threading.Lock()


def perform(job_id: str) -> str:
    """The function RQ runs: ``rq_queue.perform(job_id)`` (the message carries nothing else)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:  # a plain `rq worker` process: build the runtime on first use
            from config import Config

            _runtime = WorkerRuntime(Config.from_env())
            _runtime.start()
    return _runtime.perform(job_id)


class StyleWorker(SimpleWorker):
    """``SimpleWorker`` whose first SIGTERM also interrupts the running job.

    RQ's warm shutdown alone would wait for the job to end (minutes on a CPU,
    more than Heroku's 30 s); interrupting puts the job back in the queue
    for another worker and lets this one exit within a few seconds. A second
    signal is RQ's cold shutdown; the lease covers whatever that leaves.
    """

    def request_stop(self, signum: int, frame: Any) -> None:
        if _runtime is not None:
            _runtime.interrupt()
        super().request_stop(signum, frame)


def run_worker(config: Any) -> int:
    """``python main.py worker``: load the engine once, then run jobs until SIGTERM."""
    global _runtime
    if not config.redis_url:
        print("error: `python main.py worker` needs REDIS_URL (the scale-out mode); "
              "without it, run `python main.py`, which has its own worker threads.", file=sys.stderr)
        return 2
    try:
        runtime = WorkerRuntime(config)
    except ValueError as exc:
        if type(exc).__name__ == "WeightsError":
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
    except redis.RedisError as exc:
        print(f"error: cannot reach Redis at REDIS_URL ({type(exc).__name__})", file=sys.stderr)
        return 2
    with _runtime_lock:
        _runtime = runtime
    runtime.start()
    device = getattr(runtime.engine, "device", "?")
    name = f"stylebot-{runtime.identity.replace(':', '-')}"
    worker = StyleWorker([runtime.queue.rq], connection=runtime.queue.connection, name=name)
    log.info("worker %s ready on %s, queue %r", runtime.identity, device, QUEUE_NAME)
    try:
        worker.work(with_scheduler=False, logging_level="INFO")
    finally:
        runtime.close()
        log.info("worker %s stopped", runtime.identity)
    return 0
