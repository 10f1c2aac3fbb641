"""The worker threads stop a job after its own timeout, scaled with its size (real SQLite store)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from stylebot.jobs.job import Job, JobStatus, Stop
from stylebot.jobs.threads import ThreadQueue
from stylebot.store.sqlite_store import Store


def test_each_job_gets_the_timeout_its_size_earns(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    outcomes: dict[int, bool] = {}
    took: dict[int, float] = {}
    done = threading.Event()

    def execute(job: Job, stop: Stop) -> None:
        t0 = time.monotonic()
        stop.event.wait(30)  # "paints" until stopped
        took[job.size] = time.monotonic() - t0
        outcomes[job.size] = stop.timed_out
        store.set_status(job.id, JobStatus.FAILED)
        if len(outcomes) == 2:
            done.set()

    limits = {48: 0.2, 96: 3.0}  # what run.Context.timeout_for gives: more for the larger job
    queue = ThreadQueue(store, execute, workers=2, job_timeout=lambda job: limits[job.size])
    queue.start()
    try:
        for n, size in enumerate((48, 96)):
            queue.submit(Job(user_id=n, chat_id=n, content_file_id="c", style_file_id="s", size=size))
        assert done.wait(30)
        assert outcomes == {48: True, 96: True}
        assert took[48] < limits[96] <= took[96]  # each by its own limit, not one for all
    finally:
        queue.stop(timeout=5)
        store.close()
