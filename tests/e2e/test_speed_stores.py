"""Quick mode's data in both stores (real SQLite, a real redis-server): a user's speed choice in their
settings, each job's speed, rows and hashes from before it reading as "no choice" / painted, and the
``auto`` rule reading the real queue."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from rediskit import redis_server

from stylebot.chat.speed import SpeedRule
from stylebot.jobs.job import PAINTED, QUICK, Job, JobStatus
from stylebot.store.base import UserSettings
from stylebot.store.sqlite_schema import SCHEMA_VERSION
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


def job(user: int, n: int, speed: str = PAINTED) -> Job:
    return Job(
        user_id=user,
        chat_id=user,
        content_file_id=f"c{n}",
        style_file_id=f"s{n}",
        size=48,
        id=f"sp{n:03d}",
        speed=speed,
    )


def test_the_speed_choice_is_stored_per_user_and_can_be_changed_back(store) -> None:
    assert store.get_settings(5).speed is None  # nobody chose: the operator's mode decides
    store.save_settings(UserSettings(5, size=48, strength=2.0, keep_colors=True, speed=QUICK))
    store.save_settings(UserSettings(6, size=None))
    got = store.get_settings(5)
    assert (got.size, got.strength, got.keep_colors, got.speed) == (48, 2.0, True, QUICK)
    assert store.get_settings(6).speed is None
    store.save_settings(UserSettings(5, size=48, speed=PAINTED))
    assert store.get_settings(5).speed == PAINTED
    store.forget_user(5)
    assert store.get_settings(5).speed is None


def test_a_job_carries_its_speed(store) -> None:
    store.create_job(job(7, 1, QUICK))
    store.create_job(job(8, 2))
    assert store.get_job("sp001").speed == QUICK
    assert store.get_job("sp002").speed == PAINTED
    assert [j.speed for j in store.queued_jobs()] == [QUICK, PAINTED]
    claimed = store.claim_next()
    assert claimed is not None and claimed.speed == QUICK


def test_auto_reads_the_queue_of_the_real_store(store) -> None:
    rule = SpeedRule("auto", quick_available=True, bound=30.0, default_size=512)
    assert rule.for_job(None, store) == PAINTED
    store.create_job(job(1, 1))
    assert rule.for_job(None, store) == PAINTED  # 20 s: under the bound
    store.create_job(job(2, 2))
    assert rule.for_job(None, store) == QUICK  # 40 s
    assert rule.for_job(PAINTED, store) == PAINTED  # an explicit choice wins
    store.set_status("sp001", JobStatus.CANCELLED)
    assert rule.for_job(None, store) == PAINTED


def test_a_version_7_database_upgrades_and_its_rows_read_as_painted_and_no_choice(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    store.create_job(job(7, 1))
    store.save_settings(UserSettings(7, size=48))
    store.close()
    db = sqlite3.connect(path)  # back to version 7, as a release before quick mode left it
    db.execute("ALTER TABLE jobs DROP COLUMN speed")
    db.execute("ALTER TABLE settings DROP COLUMN speed")
    db.execute("PRAGMA user_version = 7")
    db.commit()
    db.close()
    store = Store(path)
    try:
        assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 8
        assert store.get_job("sp001").speed == PAINTED
        assert store.get_settings(7).speed is None
        assert store.get_settings(7).size == 48
    finally:
        store.close()


def test_redis_hashes_from_before_quick_mode_read_as_painted_and_no_choice(redis_url: str) -> None:
    from stylebot.store.redis_store import RedisStore

    store = RedisStore(redis_url, prefix=f"test-{uuid.uuid4().hex[:8]}")
    try:
        store.create_job(job(7, 1, QUICK))
        store.r.hdel(store.key("job", "sp001"), "speed")  # as written before the field existed
        store.r.hset(store.key("settings", 7), mapping={"size": json.dumps(48), "strength": "1.0", "keep_colors": "0"})
        assert store.get_job("sp001").speed == PAINTED
        assert store.get_settings(7).speed is None
        assert store.get_settings(7).size == 48
    finally:
        store.close()


def test_migration_8_runs_again_on_a_rewound_version_without_losing_choices(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    store.save_settings(UserSettings(7, size=48, speed=QUICK))
    store.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 7")  # the columns stay: only the version says "before speed"
    db.commit()
    db.close()
    store = Store(path)
    try:
        assert store.get_settings(7).speed == QUICK
    finally:
        store.close()
