"""The RQ worker's own paths, in-process: real redis-server, real emulator, the real engine.

test_scaleout.py runs whole worker processes; these pin down two things that are hard to
force there: a requeued job leaves the chat the way a restarted polling bot does (the old
status message goes, a fresh "back in the queue" one comes), and a job that crashed workers
too often is given up by ``run_job`` with its clear reason, not the generic "failed".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botkit import User, wait_until
from rediskit import lease_over, redis_server

from stylebot import texts
from stylebot.config import Config
from stylebot.jobs.job import MAX_CRASHES, Job, JobStatus
from stylebot.playground.emulator import BotAPIEmulator


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def runtime(emulator: BotAPIEmulator, engine: Any, tmp_path: Path, redis_url: str) -> Iterator[Any]:
    from stylebot.scaleout.worker import WorkerRuntime

    config = Config(
        token=emulator.token, api_url=emulator.base_url, data_dir=tmp_path / "data", device="cpu", redis_url=redis_url
    )
    rt = WorkerRuntime(config, engine=engine)
    yield rt
    rt.close()
    rt.store.close()


def job_for(user: User, **fields: Any) -> Job:
    return Job(user_id=user.id, chat_id=user.id, content_file_id="c", style_file_id="s", size=48, **fields)


def test_requeued_job_replaces_its_old_status_message(runtime: Any, emulator: BotAPIEmulator) -> None:
    user = User(emulator, 301)
    user.say("hi")  # the chat exists
    old = runtime.tg.send_text(user.id, "Painting… 40%")  # what the dead worker left on screen
    job = runtime.store.create_job(job_for(user, status_message_id=old.message_id))
    assert runtime.store.claim(job.id, owner="dead-host:1", lease=0.05) is not None
    wait_until(lambda: lease_over(runtime.store, job.id), 10, "the dead worker's 0.05 s lease to run out")

    runtime.reconcile()

    resumed = texts.t("en", "resumed", position=1)
    assert user.texts() == [resumed]  # the old status message is gone, not left behind
    back = runtime.store.get_job(job.id)
    assert back.status == JobStatus.QUEUED
    assert back.status_message_id == user.messages()[0]["message_id"]
    assert runtime.store.dispatch(job.id) is not None  # and a worker is woken for it


def test_worker_gives_up_a_job_that_crashed_it_too_often_with_the_reason(
    runtime: Any, emulator: BotAPIEmulator
) -> None:
    user = User(emulator, 302)
    user.say("hi")
    status = runtime.tg.send_text(user.id, texts.t("en", "queued_next"))
    job = runtime.store.create_job(job_for(user, attempts=MAX_CRASHES, status_message_id=status.message_id))

    assert runtime.perform(job.id) == JobStatus.FAILED.value

    gave_up = texts.t("en", "gave_up_crashes", times=MAX_CRASHES)
    assert user.texts() == [gave_up]  # the reason, and the stale status message removed
    assert texts.t("en", "failed") not in user.seen()
    assert "gave up after" in (runtime.store.get_job(job.id).error or "")
