"""worker: ``python main.py worker``, an RQ worker that runs jobs with the engine loaded once.

:class:`WorkerRuntime` is what a worker process keeps between jobs (engine,
store, Telegram wrapper, the cancel listener and the reconciler), built from
the same pieces as the polling app (:mod:`stylebot.app`); :func:`perform` is
what an RQ message runs (``rq_queue.PERFORM``), and every job goes through the
same :func:`stylebot.jobs.run.run_job` as the in-process ``ThreadQueue``.

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
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from rq import SimpleWorker

from stylebot import decode_budget
from stylebot.app import build_context, build_telegram, cannot_start, gpu_flag, load_engine
from stylebot.config import Config
from stylebot.errors import ConfigError, WeightsError
from stylebot.hostmem import limit_malloc_arenas
from stylebot.jobs.job import JobStatus, Stop
from stylebot.jobs.positions import PositionWatcher
from stylebot.jobs.results import RESULT_HOURS, result_path, timelapse_path
from stylebot.jobs.run import run_job
from stylebot.jobs.status import announce_requeued
from stylebot.private import DataDirError, secure_dir
from stylebot.scaleout.rq_queue import (
    LEASE_SECONDS,
    MAX_RESULT_BYTES,
    QUEUE_NAME,
    RECONCILE_SECONDS,
    Lease,
    RQQueue,
    worker_identity,
)
from stylebot.scaleout.sizes import Heartbeat, withdraw
from stylebot.store.redis_store import RedisStore

log = logging.getLogger(__name__)


@dataclass
class Running:
    """The job this worker runs now, and how to stop it (cancel request, SIGTERM)."""

    job_id: str
    stop: Stop


class WorkerRuntime:
    """Everything a worker process keeps between jobs: engine, store, Telegram, threads.

    Built once per process by :func:`run_worker` (or lazily by the first job
    when someone starts a plain ``rq worker``).
    """

    def __init__(self, config: Config, engine: Any = None) -> None:
        if not config.redis_url:
            raise ConfigError("`python main.py worker` needs REDIS_URL (the scale-out mode)")
        limit_malloc_arenas()  # as the polling bot does (stylebot/hostmem.py)
        self.config = config
        secure_dir(config.data_dir)  # results are written here: 0700, files 0600 (stylebot/private.py)
        self.identity = worker_identity()
        self.stopping = threading.Event()
        self.tg = build_telegram(config, self.stopping)
        self.bot = self.tg.bot
        self.store = RedisStore(config.redis_url)
        self.store.ping()  # an unreachable Redis is said at once, before seconds of loading weights
        self.queue = RQQueue(self.store)
        self.engine = engine if engine is not None else load_engine(config)
        gpu = gpu_flag(config, self.engine)
        config, self.memory = config.fit_to_host(gpu)  # this worker's own limit: the sizes it can paint
        decode_budget.configure(self.memory.decode_bytes())  # arrivals decode beside the painting
        log.info("%s", self.memory.describe())
        self.config = config
        self.sizes = config.size_choices(gpu)
        self.heartbeat = Heartbeat(self.store, self.identity, self.sizes, self.stopping)
        self.ctx = build_context(config, self.store, self.tg, self.engine)  # RedisStore has Store's methods
        self.positions = PositionWatcher(self.tg)
        self._lock = threading.Lock()
        self._running: Running | None = None
        self._threads_started = False

    # --- background threads --------------------------------------------
    def start(self) -> None:
        """The cancel listener and the reconciler (idempotent)."""
        if self._threads_started:
            return
        self._threads_started = True
        self.heartbeat.start()  # publish the sizes this worker paints (sizes.py), renewed until it stops
        pubsub = self.store.r.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(**{self.store.key("cancel"): self._on_cancel_message})
        self._pubsub_thread = pubsub.run_in_thread(sleep_time=1.0, daemon=True, exception_handler=_pubsub_trouble)
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
        """A job is back in line: its user gets a fresh status message (as on a restart), and a worker wakes."""
        job = self.store.get_job(job_id)
        if job is None:
            return
        announce_requeued(self.tg, self.store, job, self.store.position(job_id) or 1)
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
        # Too many crashes during this job: run_job gives up itself, telling the user why.
        stop = Stop()
        lease = Lease(self.store, job.id, stop)
        timer = threading.Timer(self.ctx.timeout_for(job), stop.expire)  # STYLEBOT_JOB_TIMEOUT, scaled with size
        timer.daemon = True
        with self._lock:  # interrupt() sets `stopping` before it takes the lock: no signal is missed
            self._running = Running(job.id, stop)
            if self.stopping.is_set():
                stop.interrupt()
        log.info("job %s: started on %s (attempt %d)", job.id, self.identity, job.attempts)
        lease.start()
        timer.start()
        try:
            run_job(job, stop, self.ctx)
        finally:
            timer.cancel()
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
        """Copy the full-quality PNG and the timelapse to Redis: their buttons are pressed on the web process."""
        for kind, path in (
            ("png", result_path(self.ctx.results_dir, job_id)),
            ("gif", timelapse_path(self.ctx.results_dir, job_id)),
        ):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            if len(data) <= MAX_RESULT_BYTES:
                self.store.save_result(job_id, data, ttl=RESULT_HOURS * 3600, kind=kind)

    def close(self) -> None:
        self.stopping.set()
        try:
            withdraw(self.store, self.identity)
        except redis.RedisError:
            pass  # the TTL takes the sizes out of the offer soon anyway
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
    """The function RQ runs (``rq_queue.PERFORM``, with the job id and nothing else)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:  # a plain `rq worker` process: build the runtime on first use
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


def run_worker(config: Config) -> int:
    """``python main.py worker``: load the engine once, then run jobs until SIGTERM."""
    global _runtime
    if not config.redis_url:
        return cannot_start(
            "`python main.py worker` needs REDIS_URL (the scale-out mode); "
            "without it, run `python main.py`, which has its own worker threads."
        )
    try:
        runtime = WorkerRuntime(config)
    except (WeightsError, DataDirError) as exc:
        return cannot_start(str(exc))
    except redis.RedisError as exc:
        return cannot_start(f"cannot reach Redis at REDIS_URL ({type(exc).__name__})")
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
