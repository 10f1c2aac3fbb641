"""RedisStore against storage.Store: the same calls give the same answers.

Each scenario runs once on SQLite and once on a real Redis server; the
observations (jobs reduced to the fields that don't depend on the clock) must
be identical, so the handlers and the runner can't tell the two apart.
"""

from __future__ import annotations

import inspect
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botkit import deadline, wait_until
from rediskit import lease_over, redis_server

from stylebot.jobs.job import Job, JobStatus
from stylebot.store.base import STEP_STYLE, Dialog, StateStore, UserSettings
from stylebot.store.sqlite_store import Store


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> str:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_store(redis_url):
    from stylebot.store.redis_store import RedisStore

    store = RedisStore(redis_url, prefix=f"test-{uuid.uuid4().hex[:8]}")
    yield store
    store.close()


def next_tick() -> None:
    """Wait until ``time.time()`` (the store's "used at" clock) has moved on: distinct stamps."""
    now = time.time()
    wait_until(lambda: time.time() > now, 5, "the clock to tick")


def view(job: Job | None) -> Any:
    if job is None:
        return None
    return (
        job.id,
        job.user_id,
        job.chat_id,
        job.content_file_id,
        job.style_file_id,
        job.size,
        job.strength,
        job.keep_colors,
        job.lang,
        job.status,
        job.status_message_id,
        job.attempts,
        job.error,
        job.started_at is not None,
        job.finished_at is not None,
    )


def make_job(n: int, user: int, **kw: Any) -> Job:
    return Job(
        user_id=user, chat_id=user, content_file_id=f"c{n}", style_file_id=f"s{n}", size=48, id=f"job{n:03d}", **kw
    )


def job_lifecycle(store) -> list:
    seen: list = []
    jobs = [make_job(1, 1), make_job(2, 2, strength=2.0, keep_colors=True, lang="ru"), make_job(3, 1), make_job(4, 3)]
    for job in jobs:
        store.create_job(job)
        seen.append(store.position(job.id))
    seen.append([view(j) for j in store.queued_jobs()])
    seen.append(view(store.active_job(1)))
    store.set_status_message("job002", 77)
    claimed = store.claim_next()
    seen.append(view(claimed))
    seen.append([store.position(j.id) for j in jobs])
    seen.append(view(store.claim_next(skip={"job002"})))
    seen.append(store.cancel_if_queued("job002"))
    seen.append(store.cancel_if_queued("job001"))  # running: not cancellable this way
    store.requeue("job001")
    seen.append(view(store.get_job("job001")))
    seen.append([store.position(j.id) for j in jobs])
    store.set_status("job003", JobStatus.FAILED, error="boom")
    seen.append(view(store.get_job("job003")))
    seen.append(view(store.claim_next()))
    seen.append([view(j) for j in store.recover()])
    store.set_status("job001", JobStatus.DONE)
    seen.append(view(store.active_job(1)))
    seen.append(view(store.last_job(1)))
    seen.append(view(store.last_job(99)))
    seen.append(view(store.get_job("nope")))
    seen.append(store.position("nope"))
    seen.append(len(store.jobs_created_since(1, time.time() - 60)))
    seen.append(store.jobs_created_since(1, time.time() + 60))
    seen.append(sorted(store.forget_user(1)))
    seen.append([view(j) for j in store.queued_jobs()])
    seen.append(view(store.last_job(1)))
    return seen


def dialog_settings_styles(store) -> list:
    seen: list = []
    seen.append(store.get_dialog(5))
    store.set_dialog(Dialog(5, STEP_STYLE, "photo-1"))
    seen.append(store.get_dialog(5))
    store.set_dialog(Dialog(5, STEP_STYLE, None))
    seen.append(store.get_dialog(5))
    store.reset_dialog(5)
    seen.append(store.get_dialog(5))
    seen.append(store.get_settings(5))
    store.save_settings(UserSettings(5, 768, 2.0, True))
    seen.append(store.get_settings(5))
    store.save_settings(UserSettings(5, None, 0.5, False))
    seen.append(store.get_settings(5))
    for n in range(7):
        store.remember_style(5, f"style{n}", f"thumb{n}" if n % 2 == 0 else None)
        next_tick()  # distinct "used at" times, as in real use
    store.remember_style(5, "style3", "thumb3-new")
    next_tick()
    store.remember_style(5, "style4", None)  # keeps its earlier thumbnail
    seen.append(store.recent_styles(5))
    seen.append(store.recent_styles(5, limit=2))
    seen.append(store.recent_styles(6))
    seen.append(store.add_album_item("g1", 5, 11, "a", "ta"))
    seen.append(store.add_album_item("g1", 5, 10, "b", None))
    seen.append(store.add_album_item("g1", 5, 10, "b", None))
    seen.append(store.add_album_item("g2", 6, 12, "c", None))
    store.forget_user(5)
    seen.append((store.get_dialog(5), store.get_settings(5), store.recent_styles(5)))
    seen.append(store.add_album_item("g1", 5, 13, "d", None))
    return seen


@pytest.mark.parametrize("scenario", [job_lifecycle, dialog_settings_styles])
def test_same_answers_as_sqlite(scenario: Callable, redis_store, tmp_path: Path) -> None:
    sqlite = Store(tmp_path / "db.sqlite3")
    expected = scenario(sqlite)
    assert scenario(redis_store) == expected


def test_both_stores_have_every_state_store_method_as_declared() -> None:
    """The handlers and ``run_job`` are typed against ``StateStore`` and get either store: a method missing
    from one, or taking other arguments, would break only the mode (polling or scale-out) that uses it."""
    from stylebot.store.redis_store import RedisStore

    declared = {name for name, value in vars(StateStore).items() if callable(value) and not name.startswith("_")}
    assert {"create_job", "claim_next", "get_dialog", "add_album_item", "forget_user", "close"} <= declared
    for store_class in (Store, RedisStore):
        for name in sorted(declared):
            assert name in vars(store_class), f"{store_class.__name__} has no {name}"
            assert inspect.signature(getattr(store_class, name)) == inspect.signature(getattr(StateStore, name)), (
                f"{store_class.__name__}.{name} differs from StateStore.{name}"
            )


def test_album_second_item_seen_once_under_concurrency(redis_store) -> None:
    """Two updates of one album handled at once: exactly one handler sees both images."""
    for round_ in range(20):
        counts: list[int] = []
        barrier = threading.Barrier(2)

        def add(mid: int, barrier=barrier, counts=counts, group=f"race{round_}") -> None:
            barrier.wait()
            counts.append(len(redis_store.add_album_item(group, 7, mid, f"f{mid}", None)))

        threads = [threading.Thread(target=add, args=(m,)) for m in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(counts) == [1, 2]


def test_claim_is_a_gate_and_leases_expire(redis_store) -> None:
    store = redis_store
    store.create_job(make_job(1, 1))
    results: list = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        barrier.wait()
        results.append(store.claim("job001", owner="w", lease=0.3))

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1
    assert store.owner("job001") == "w"
    assert store.reap_expired() == []
    assert store.renew_lease("job001", 0.3)
    wait_until(lambda: lease_over(store, "job001"), 10, "job001's 0.3 s lease to run out")
    assert store.reap_expired() == ["job001"]
    job = store.get_job("job001")
    assert job.status == JobStatus.QUEUED and job.attempts == 1 and store.position("job001") == 1
    assert not store.renew_lease("job001", 5)  # a worker that lost its lease learns it
    assert store.owner("job001") is None
    assert store.claim("job001", lease=5).attempts == 2


def test_seen_update_cancel_signal_and_results(redis_store) -> None:
    store = redis_store
    assert store.seen_update(42) is False
    assert store.seen_update(42) is True
    assert store.seen_update(43) is False
    assert not store.cancel_requested("j")
    store.request_cancel("j")
    assert store.cancel_requested("j")
    store.clear_cancel("j")
    assert not store.cancel_requested("j")
    assert store.load_result("j") is None
    store.save_result("j", b"\x89PNG\x00\xff", ttl=60)
    assert store.load_result("j") == b"\x89PNG\x00\xff"


def test_finished_jobs_expire_active_ones_do_not(redis_store) -> None:
    store = redis_store
    store.create_job(make_job(1, 1))
    assert store.r.ttl(store.key("job", "job001")) == -1
    store.set_status("job001", JobStatus.DONE)
    assert store.r.ttl(store.key("job", "job001")) > 24 * 3600


def test_default_mode_imports_nothing_about_redis() -> None:
    """Without REDIS_URL the bot loads none of the scale-out modules, nor rq.

    (telebot itself imports the ``redis`` client when it happens to be
    installed, for its optional state storage; a default install has none.)
    """
    import subprocess
    import sys

    code = (
        "import sys, main, stylebot.app, stylebot.config; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'rq' "
        "or m.startswith(('stylebot.scaleout', 'stylebot.store.redis_store'))); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=deadline(120), check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
