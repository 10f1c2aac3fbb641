"""Scale-out mode end to end: real redis-server, a webhook web process, two RQ workers.

Everything is a real process talking real protocols: the emulator (a local
Bot API server) POSTs updates to the web process's webhook; the web process
keeps dialogs in Redis and enqueues on RQ; ``python main.py worker`` processes
paint with the real engine (48 px, so jobs take seconds) and send results
through the emulator. Each worker has its own data folder, as on separate
machines. The tests run in order on one cluster (starting torch three times
is the slow part): three users, a duplicated update, a bad secret, a worker
SIGKILLed mid-job, a worker SIGTERMed mid-job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from botkit import REPLY_S, RESULT_S, User, deadline, picture, quiet, spawn_bot, wait_until, weights_path
from rediskit import free_port, redis_server

from stylebot import texts
from stylebot.jobs.job import Job, JobStatus
from stylebot.playground.emulator import BotAPIEmulator

SECRET = "s3cret-for-tests"
pytestmark = pytest.mark.skipif(
    weights_path() is None,
    reason="VGG weights not found: set STYLEBOT_WEIGHTS or put vgg19_cache.pth in the project root (see README)",
)


@dataclass
class Cluster:
    api: BotAPIEmulator
    redis_url: str
    webhook_url: str
    tmp: Path
    web: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)
    logs: dict[int, Path] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        return dict(REDIS_URL=self.redis_url, STYLEBOT_WEBHOOK_SECRET=SECRET, OMP_NUM_THREADS="1", **extra)

    def start_web(self) -> subprocess.Popen:
        port = self.webhook_url.split(":")[2].split("/")[0]
        log = self.tmp / "web.log"
        self.web = spawn_bot(
            self.api,
            self.tmp / "web-data",
            log,
            **self.env(STYLEBOT_MODE="webhook", PORT=port, STYLEBOT_WEBHOOK_URL=self.webhook_url),
        )
        self.logs[self.web.pid] = log
        return self.web

    def start_worker(self) -> subprocess.Popen:
        n = len(self.workers)
        log = self.tmp / f"worker{n}.log"
        worker = spawn_bot(self.api, self.tmp / f"worker{n}-data", log, "worker", **self.env())
        self.workers.append(worker)
        self.logs[worker.pid] = log
        return worker

    def alive_workers(self) -> list[subprocess.Popen]:
        return [w for w in self.workers if w.poll() is None]

    def log_of(self, pid: int) -> str:
        return self.logs[pid].read_text(errors="replace")

    def all_logs(self) -> str:
        return "\n".join(
            f"--- {path.name} ---\n{path.read_text(errors='replace')[-3000:]}" for path in self.logs.values()
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("scaleout")
    with redis_server(tmp / "redis") as url, BotAPIEmulator() as api:
        c = Cluster(api, url, f"http://127.0.0.1:{free_port()}/telegram", tmp)
        try:
            c.start_worker()
            c.start_worker()
            c.start_web()
            wait_until(lambda: api.calls("setWebhook"), 60, what="the web process to call setWebhook", api=api)
            store = _store(url)
            pids = {w.pid for w in c.workers}
            wait_until(lambda: _live_worker_count(url, pids) >= 2, 120, what="two RQ workers to register", api=api)
            store.close()
            yield c
        except BaseException:
            print(c.all_logs())
            raise
        finally:
            for process in [c.web, *c.workers]:
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait(deadline(10))


@pytest.fixture
def store(cluster):
    s = _store(cluster.redis_url)
    yield s
    s.close()


def _store(url: str):
    from stylebot.store.redis_store import RedisStore

    return RedisStore(url)


def _live_worker_count(url: str, pids: set[int]) -> int:
    """RQ workers registered in Redis whose process is one of ``pids`` (a SIGKILLed worker stays
    registered until its TTL runs out, minutes later, so the registry alone over-counts)."""
    from redis import Redis
    from rq import Worker

    with Redis.from_url(url) as connection:
        return sum(1 for w in Worker.all(connection=connection) if w.pid in pids)


def chat_once(user: User, content: bytes, style: bytes) -> None:
    """/start, the photo, the style: each step waits for the bot's answer, as a person would."""
    before = len(user.messages())
    user.say("/start")
    wait_until(lambda: len(user.messages()) > before, REPLY_S, what=f"/start answered for {user.id}", api=user.api)
    user.photo(content)
    user.wait_text(texts.t("en", "ask_style"), timeout=REPLY_S)
    user.photo(style)


def assert_aspect(image_size: tuple[int, int], content_size: tuple[int, int]) -> None:
    (w, h), (cw, ch) = image_size, content_size
    assert max(w, h) == 48, image_size
    assert abs(w / h - cw / ch) < 0.05, (image_size, content_size)


def post(url: str, body: dict, secret: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=deadline(10)) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


# --- the tests, in order ----------------------------------------------------------


def test_wrong_secret_is_refused_with_403(cluster) -> None:
    update = {
        "update_id": 999999,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": 5, "type": "private"},
            "from": {"id": 5, "is_bot": False, "first_name": "Eve"},
            "text": "/start",
        },
    }
    assert post(cluster.webhook_url, update, "not-the-secret") == 403
    assert post(cluster.webhook_url, update, None) == 403
    assert post(cluster.webhook_url.replace("/telegram", "/other"), update, SECRET) == 404
    assert post(cluster.webhook_url, {"no": "update_id"}, SECRET) == 400
    # An update telebot cannot parse is acknowledged (re-sending won't fix it) and logged, nothing else.
    assert post(cluster.webhook_url, {"update_id": 999998, "message": {"bogus": True}}, SECRET) == 200
    # Nothing was handled: a marker from the same chat, posted after it, is answered, and that
    # answer is the chat's only message (one chat's updates are handled in order).
    assert cluster.api.bot_messages(5) == []
    User(cluster.api, 5).say("/start")  # the marker, through the emulator (it knows chat 5 from then on)
    wait_until(lambda: cluster.api.bot_messages(5), REPLY_S, what="the answer to the marker /start", api=cluster.api)
    assert [m.get("text", "").split("\n")[0] for m in cluster.api.bot_messages(5)] == [
        texts.t("en", "start").split("\n")[0]
    ], cluster.api.bot_messages(5)
    assert cluster.web.poll() is None


def test_three_users_each_get_exactly_one_result(cluster, store) -> None:
    api = cluster.api
    shapes = {101: (120, 80), 102: (80, 120), 103: (96, 96)}
    colors = {101: (200, 40, 40), 102: (40, 40, 200), 103: (40, 160, 40)}
    users = {uid: User(api, uid) for uid in shapes}
    for uid, user in users.items():
        chat_once(user, picture(shapes[uid], colors[uid]), picture((90, 90), (240, 220, 20)))
    for uid, user in users.items():
        result = user.wait_result(timeout=RESULT_S)
        assert_aspect(user.result_image(result).size, shapes[uid])
    # A duplicate delivery would come from a second run of a job: wait until every job is
    # recorded done, then a window in which a late second run would still deliver.
    wait_until(
        lambda: all((j := store.last_job(uid)) and j.status == JobStatus.DONE for uid in users),
        REPLY_S,
        what="all three jobs recorded done",
        api=api,
    )
    quiet(2)
    for uid, user in users.items():
        assert len(user.results()) == 1, (uid, user.texts())
        job = store.last_job(uid)
        assert job.status == JobStatus.DONE and job.attempts == 1
    # The "Full quality file" button works though the PNG was written on a worker's disk.
    user = users[101]
    user.press(user.results()[0], user.button(user.results()[0], "full:"))
    wait_until(lambda: any(m.get("document") for m in user.messages()), REPLY_S, what="the full-quality PNG", api=api)
    # So does "How it was painted": the timelapse too was written on a worker's disk.
    user.press(user.results()[0], user.button(user.results()[0], "lapse:"))
    wait_until(
        lambda: any(m.get("animation") for m in user.messages()), REPLY_S, what="the timelapse animation", api=api
    )
    assert not any("no longer" in t for t in user.texts())


def test_duplicated_update_is_handled_once(cluster) -> None:
    user = User(cluster.api, 104)
    user.say("/help")
    user.wait_text("/settings", timeout=REPLY_S)
    wait_until(  # the emulator records the update as delivered once our 200 reaches it
        lambda: (u := cluster.api._last_update) and u.get("message", {}).get("from", {}).get("id") == user.id,
        REPLY_S,
        what="the emulator to record /help as delivered",
        api=cluster.api,
    )
    assert cluster.api.redeliver_last_update() == 200
    wait_until(
        lambda: "already handled; ignored" in cluster.log_of(cluster.web.pid),
        REPLY_S,
        what="the web process to recognise the re-sent update",
        api=cluster.api,
    )
    # Handled once: a marker /help after it is answered, and that makes two answers, not three
    # (one chat's updates are handled in order).
    user.say("/help")
    wait_until(lambda: len(user.messages()) >= 2, REPLY_S, what="the answer to the marker /help", api=cluster.api)
    assert len(user.messages()) == 2, user.texts()


def test_worker_killed_mid_job_loses_nothing(cluster, store) -> None:
    api, user = cluster.api, User(cluster.api, 105)
    chat_once(user, picture((120, 80)), picture((90, 90), (20, 200, 200)))
    # Killed the moment Redis says it runs (deterministic on any machine speed): from the
    # system's point of view this is the same as dying mid-painting; only the lease can tell.
    job = wait_until(
        lambda: (j := store.active_job(105)) and j.status == JobStatus.RUNNING and store.owner(j.id) and j,
        60,
        what="the job to start",
        api=api,
    )
    victim_pid = int(store.owner(job.id).split(":")[1])  # host:pid:nonce
    victim = next(w for w in cluster.workers if w.pid == victim_pid)
    os.kill(victim_pid, signal.SIGKILL)
    victim.wait(deadline(10))
    result = user.wait_result(timeout=RESULT_S)
    assert_aspect(user.result_image(result).size, (120, 80))
    wait_until(lambda: store.get_job(job.id).status == JobStatus.DONE, REPLY_S, what="the job recorded done", api=api)
    quiet(2)  # a late second delivery (the killed run's) would show up here
    assert len(user.results()) == 1
    done = store.get_job(job.id)
    assert done.status == JobStatus.DONE and done.attempts == 2  # the killed run counts as an attempt
    survivor = cluster.alive_workers()[0]
    assert f"job {job.id}: started" in cluster.log_of(survivor.pid)
    resumed = texts.t("en", "resumed", position=1)  # the status message, since deleted: look at the calls
    assert any(
        c.params.get("text") == resumed and str(c.params.get("chat_id")) == "105" for c in api.calls("sendMessage")
    )


def start_long_job(user: User, store) -> Job:
    """A job that is seen painting and has far more left to paint (1024 px setting, 1200x800 photo).

    The largest size, so the job still takes tens of seconds on one thread however
    fast the engine's preset gets: a small job can finish between the first progress
    edit and the test's signal or /cancel.
    """
    user.say("/settings")
    menu = user.wait_text(texts.t("en", "settings"), timeout=REPLY_S)
    user.press(menu, "set:size:1024")
    wait_until(lambda: store.get_settings(user.id).size == 1024, REPLY_S, what="the size setting", api=user.api)
    chat_once(user, picture((1200, 800)), picture((90, 90), (90, 20, 200)))
    job = wait_until(
        lambda: (j := store.active_job(user.id)) and j.status == JobStatus.RUNNING and j,
        60,
        what="the job to start",
        api=user.api,
    )
    user.wait_text("%", timeout=60)  # a progress edit: the engine is mid-painting
    return job


def test_cancel_stops_a_job_running_on_a_worker(cluster, store) -> None:
    user = User(cluster.api, 107)
    job = start_long_job(user, store)
    user.say("/cancel")
    asked = time.monotonic()
    user.wait_text(texts.t("en", "job_cancelled_status"), timeout=REPLY_S)
    assert time.monotonic() - asked < deadline(15)  # one engine step, not the rest of the job
    assert store.get_job(job.id).status == JobStatus.CANCELLED
    assert user.results() == []


def one_worker_left(cluster: Cluster) -> subprocess.Popen:
    """Stop idle workers until one is left (starting one if none is) and return it.

    The SIGTERM test needs a job put back to stay queued, so no other worker may be
    there to take it. In the full run an earlier test has SIGKILLed one; run alone,
    this stops the spare here instead, so the test does not depend on the order.
    """
    alive = cluster.alive_workers()
    for spare in alive[1:]:
        spare.send_signal(signal.SIGTERM)
        assert spare.wait(deadline(30)) == 0, cluster.log_of(spare.pid)[-3000:]
    if not alive:
        alive = [cluster.start_worker()]
    pids = {alive[0].pid}
    wait_until(
        lambda: _live_worker_count(cluster.redis_url, pids) == 1,
        120,
        what="the one RQ worker left registered",
        api=cluster.api,
    )
    return alive[0]


def test_sigterm_puts_the_running_job_back_and_exits(cluster, store) -> None:
    user = User(cluster.api, 106)
    worker = one_worker_left(cluster)
    job = start_long_job(user, store)
    worker.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert worker.wait(deadline(20)) == 0, cluster.log_of(worker.pid)[-3000:]
    assert time.monotonic() - started < deadline(15)  # well inside Heroku's 30 s
    back = store.get_job(job.id)
    assert back.status == JobStatus.QUEUED and back.attempts == 0, back  # back in line, attempt not counted
    assert store.dispatch(job.id) in cluster_queue_ids(cluster)  # and a worker will be woken for it
    resumed = texts.t("en", "resumed", position=1)
    user.wait_text(resumed, timeout=REPLY_S)
    user.say("/cancel")  # no worker left; cancelling the waiting job ends it for good
    user.wait_text(texts.t("en", "cancelled_job"), timeout=REPLY_S)
    assert store.get_job(job.id).status == JobStatus.CANCELLED


def cluster_queue_ids(cluster) -> list[str]:
    from redis import Redis
    from rq import Queue

    with Redis.from_url(cluster.redis_url) as connection:
        return Queue("stylebot", connection=connection).job_ids


def test_web_process_stops_on_sigterm(cluster) -> None:
    cluster.web.send_signal(signal.SIGTERM)
    assert cluster.web.wait(deadline(10)) == 0, cluster.log_of(cluster.web.pid)[-3000:]
