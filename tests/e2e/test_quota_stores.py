"""The quota counts work in both stores: real SQLite and a real redis-server.

Each store records a job's size under the user's keyed hash (HMAC: the rate limit outlives /forget
without naming the user) and applies ``jobs.quota.job_cost`` when asked for the window's work.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from rediskit import redis_server

from stylebot.jobs.job import Job, JobStatus
from stylebot.store.sqlite_store import Store


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path: Path) -> Iterator:
    if request.param == "sqlite":
        s = Store(tmp_path / "db.sqlite3")
    else:
        from stylebot.store.redis_store import RedisStore

        s = RedisStore(request.getfixturevalue("redis_url"), prefix=f"test-{uuid.uuid4().hex[:8]}")
    yield s
    s.close()


def job(user: int, size: int, n: int) -> Job:
    return Job(user_id=user, chat_id=user, content_file_id=f"c{n}", style_file_id=f"s{n}", size=size, id=f"q{n:03d}")


def test_work_is_pixels_relative_to_the_default_and_outlives_forget(store) -> None:
    since = time.time() - 60
    for n, size in enumerate((512, 1024, 768, 256)):
        store.create_job(job(7, size, n))
        store.set_status(f"q{n:03d}", JobStatus.DONE)
    store.create_job(job(8, 512, 9))  # another user's work is not this one's
    assert [cost for _, cost in store.work_since(7, since, 512)] == [1.0, 4.0, 2.25, 1.0]
    assert [cost for _, cost in store.work_since(7, since, 768)] == [1.0, 1024**2 / 768**2, 1.0, 1.0]
    assert store.work_since(7, time.time() + 1, 512) == []
    store.forget_user(7)
    assert store.get_job("q001") is None
    assert sum(cost for _, cost in store.work_since(7, since, 512)) == 8.25  # /forget does not reset the quota


def test_rate_events_from_before_sizes_cost_one(tmp_path: Path) -> None:
    """A database of version 5 (rate events without sizes) upgrades, and its last hour counts as default jobs."""
    path = tmp_path / "db.sqlite3"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE rate_events DROP COLUMN size")
    db.execute("PRAGMA user_version = 5")
    salt = db.execute("SELECT value FROM meta WHERE key = 'rate_salt'").fetchone()[0]
    from stylebot.store.sqlite_schema import who

    db.execute("INSERT INTO rate_events (who, at) VALUES (?, ?)", (who(salt, 7), time.time() - 10))
    db.commit()
    db.close()
    store = Store(path)
    try:
        store.create_job(job(7, 1024, 1))
        assert [cost for _, cost in store.work_since(7, time.time() - 60, 512)] == [1.0, 4.0]
    finally:
        store.close()


def test_redis_members_without_a_size_cost_one(redis_url: str) -> None:
    from stylebot.store.redis_store import RedisStore

    store = RedisStore(redis_url, prefix=f"test-{uuid.uuid4().hex[:8]}")
    try:
        store.r.zadd(store._rate_key(7), {"0123456789abcdef": time.time() - 10})  # as written before sizes
        store.create_job(job(7, 1024, 1))
        assert [cost for _, cost in store.work_since(7, time.time() - 60, 512)] == [1.0, 4.0]
    finally:
        store.close()
