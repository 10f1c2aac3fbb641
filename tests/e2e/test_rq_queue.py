"""RQQueue on a real redis-server and real RQ, in-process (no workers, no engine).

The end-to-end behaviour is in test_scaleout.py; these pin down the
contracts that are hard to see from outside: the user is told before a
message exists, cancel works on both sides of the claim, and the
reconciler's idea of a "lost" message.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from rediskit import redis_server

from stylebot.jobs.job import Job, JobStatus


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def queue(redis_url):
    from stylebot.scaleout.rq_queue import RQQueue
    from stylebot.store.redis_store import RedisStore

    store = RedisStore(redis_url, prefix=f"t{uuid.uuid4().hex[:8]}")
    q = RQQueue(store, name=f"q{uuid.uuid4().hex[:8]}")
    yield q
    store.close()


def job(n: int) -> Job:
    return Job(user_id=n, chat_id=n, content_file_id="c", style_file_id="s", size=48)


def test_user_is_told_before_any_worker_can_see_the_job(queue) -> None:
    seen = {}

    def announce(position: int) -> int:
        seen["position"], seen["messages"] = position, queue.rq.count
        seen["stored"] = queue.store.get_job(j.id).status
        return 555

    j = job(1)
    assert queue.submit(job(2)) == 1
    assert queue.submit(j, announce) == 2
    assert seen == {"position": 2, "messages": 1, "stored": JobStatus.QUEUED}
    assert queue.rq.count == 2
    message = queue.rq.jobs[-1]
    assert message.args == (j.id,) and message.func_name == "stylebot.scaleout.worker.perform"
    assert queue.store.get_job(j.id).status_message_id == 555
    assert queue.store.dispatch(j.id) == message.id


def test_cancel_before_and_after_the_claim(queue) -> None:
    waiting, running, done = job(1), job(2), job(3)
    for j in (waiting, running, done):
        queue.submit(j)
    assert queue.store.claim(running.id, owner="w", lease=30)
    queue.store.claim(done.id)
    queue.store.set_status(done.id, JobStatus.DONE)

    assert queue.cancel(waiting.id) is True
    assert queue.store.get_job(waiting.id).status == JobStatus.CANCELLED
    assert queue.store.dispatch(waiting.id) not in queue.rq.job_ids  # its message is gone too

    assert not queue.store.cancel_requested(running.id)
    assert queue.cancel(running.id) is True  # the worker hears it and stops the engine
    assert queue.store.cancel_requested(running.id)
    assert queue.store.get_job(running.id).status == JobStatus.RUNNING

    assert queue.cancel(done.id) is False
    assert queue.cancel("no-such-job") is False
    assert queue.position(waiting.id) is None


def test_lost_messages(queue) -> None:
    from stylebot.scaleout.rq_queue import LOST_MESSAGE_SECONDS

    fine, finished, never_sent, taken = job(1), job(2), job(3), job(4)
    queue.submit(fine)
    queue.submit(finished)
    queue.store.create_job(never_sent)  # as if the web process died before enqueueing
    queue.submit(taken)
    message = queue.rq.fetch_job(queue.store.dispatch(finished.id))
    message.set_status("finished")
    # Dequeued by a worker that died before its claim: "started" long ago, job still queued.
    message = queue.rq.fetch_job(queue.store.dispatch(taken.id))
    message.started_at = datetime.now(UTC) - timedelta(seconds=LOST_MESSAGE_SECONDS + 5)
    message.save()
    message.set_status("started")
    queued = queue.store.queued_jobs()
    assert queue.lost_messages(queued) == [finished.id, taken.id]
    later = time.time() + LOST_MESSAGE_SECONDS + 1
    assert queue.lost_messages(queued, now=later) == [finished.id, never_sent.id, taken.id]
    for lost in (finished, never_sent, taken):
        queue.dispatch(lost.id)
    assert queue.lost_messages(queue.store.queued_jobs(), now=later) == []
