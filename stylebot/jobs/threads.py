"""threads: ``ThreadQueue``, the in-process queue back-end (SQLite + worker threads).

A worker thread claims the oldest queued job atomically and runs it through
``execute`` (``run.run_job`` bound to its context). Nothing ends a worker:
machine trouble degrades :class:`~stylebot.jobs.health.Health` and the thread
backs off, probes, and resumes by itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from stylebot.jobs.health import Health, OutcomeNotRecorded, resource_trouble
from stylebot.jobs.job import JOB_TIMEOUT, Job, Stop, store_and_announce

log = logging.getLogger(__name__)

#: ``execute(job, stop)`` runs one job to its end (``runner.run_job`` bound to
#: its context). It must set the job's final status itself.
Executor = Callable[[Job, Stop], None]


class ThreadQueue:
    """FIFO queue in SQLite with ``workers`` threads in this process.

    ``on_move(waiting)`` is called whenever waiting jobs move up, so the bot
    can refresh queue positions; ``waiting`` is a callable returning the queued
    jobs, so the (possibly throttled) listener queries the store only when it
    actually edits, off the worker thread. ``probe()`` raises while the disk is
    still unusable; ``job_timeout`` bounds one job's wall-clock time (seconds, or
    a function of the job: ``run.Context.timeout_for`` scales it with the size).
    """

    #: Back-off between retries while the store or disk refuses (seconds).
    retry_min = 0.5
    retry_max = 10.0

    def __init__(
        self,
        store: Any,
        execute: Executor,
        workers: int = 1,
        on_move: Callable[[Callable[[], list[Job]]], None] | None = None,
        health: Health | None = None,
        probe: Callable[[], None] | None = None,
        job_timeout: float | Callable[[Job], float] = JOB_TIMEOUT,
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
        self._deferred: list[Callable[[], None]] = []
        self._deferring = threading.Lock()  # one worker runs the deferred steps; the others wait for them

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

    def defer(self, step: Callable[[], None]) -> None:
        """Have the workers run ``step`` before they claim any job, retried until it succeeds.

        Start-up recovery on a full disk (issue 11): putting the dead process's job back
        cannot be written yet, so instead of exiting the bot comes up degraded and the
        worker loop finishes the recovery once the disk takes writes again.
        """
        with self._wake:
            self._deferred.append(step)

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
        self._run_deferred()
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
        limit = self.job_timeout(job) if callable(self.job_timeout) else self.job_timeout  # scaled with size
        timer = threading.Timer(limit, stop.expire)
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

    def _run_deferred(self) -> None:
        """Run the :meth:`defer`-red steps in order; raises (keeping the rest) while one still fails."""
        with self._deferring:
            while True:
                with self._wake:
                    if not self._deferred:
                        return
                    step = self._deferred[0]
                step()
                with self._wake:
                    self._deferred.pop(0)
                log.info("deferred start-up step done")

    def _moved(self) -> None:
        if self.on_move is None:
            return
        try:
            self.on_move(self.store.queued_jobs)
        except Exception:
            log.exception("on_move callback failed")
