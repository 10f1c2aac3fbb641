"""Scale-out: each RQ worker reads its own memory limit and publishes the sizes it can paint; the
webhook offers in /settings only what every live worker can do (real redis-server, real processes)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from botkit import User, spawn_bot, wait_until, weights_path
from rediskit import free_port, redis_server

from stylebot import texts
from stylebot.playground.emulator import BotAPIEmulator

pytestmark = pytest.mark.skipif(weights_path() is None, reason="VGG weights not found (see README)")

SECRET = "s3cret-for-tests"


def size_buttons(message: dict) -> list[int]:
    rows = message["reply_markup"]["inline_keyboard"]
    return [
        int(b["callback_data"].split(":")[2]) for row in rows for b in row if b["callback_data"].startswith("set:size:")
    ]


def settings_menu(user: User) -> list[int]:
    before = len(user.messages())
    user.say("/settings")
    return size_buttons(user.wait_text(texts.t("en", "settings"), timeout=30, after=before))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[BotAPIEmulator, str, dict[str, subprocess.Popen], Path]]:
    with redis_server(tmp_path / "redis") as url, BotAPIEmulator() as api:
        common = dict(REDIS_URL=url, STYLEBOT_WEBHOOK_SECRET=SECRET, OMP_NUM_THREADS="1")
        port = free_port()
        procs = {
            "small": spawn_bot(
                api, tmp_path / "w1", tmp_path / "small.log", "worker", STYLEBOT_MEMORY_LIMIT="512M", **common
            ),
            "big": spawn_bot(api, tmp_path / "w2", tmp_path / "big.log", "worker", **common),
            "web": spawn_bot(
                api,
                tmp_path / "web",
                tmp_path / "web.log",
                STYLEBOT_MODE="webhook",
                PORT=str(port),
                STYLEBOT_WEBHOOK_URL=f"http://127.0.0.1:{port}/telegram",
                **common,
            ),
        }
        try:
            yield api, url, procs, tmp_path
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)


def test_the_webhook_offers_what_every_live_worker_can_paint(cluster) -> None:
    api, url, procs, tmp = cluster
    from stylebot.hostmem import cpu_has_native_bf16
    from stylebot.scaleout.sizes import SIZES_TTL, published
    from stylebot.store.redis_store import RedisStore

    small = [48, 512] if cpu_has_native_bf16() else [48]  # 512 px fits 512 MiB only with native bf16 (DESIGN.md)

    store = RedisStore(url)
    try:
        wait_until(lambda: len(published(store)) == 2, 180, what="both workers to publish their sizes", api=api)
        by_worker = sorted(published(store).values())
        assert by_worker == sorted([small, [48, 512, 768, 1024]])  # 512M: 768 and 1024 do not fit; no limit: all
        for key in store.r.scan_iter(match=store.key("sizes", "*")):
            assert 0 < store.r.ttl(key) <= SIZES_TTL  # renewed by the heartbeat, gone soon after a crash
        assert "memory limit 512 MiB from STYLEBOT_MEMORY_LIMIT" in (tmp / "small.log").read_text()

        wait_until(lambda: api.calls("setWebhook"), 120, what="the web process to call setWebhook", api=api)
        user = User(api, 4242)
        assert settings_menu(user) == small

        procs["small"].send_signal(signal.SIGTERM)  # the small worker leaves: its sizes leave with it
        procs["small"].wait(60)
        wait_until(lambda: len(published(store)) == 1, 60, what="the stopped worker's sizes to go", api=api)
        offered = wait_until(
            lambda: (sizes := settings_menu(user)) == [48, 512, 768, 1024] and sizes,
            60,
            what="the larger offer",
            api=api,
        )
        assert offered == [48, 512, 768, 1024]
    finally:
        store.close()
