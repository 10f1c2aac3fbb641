"""The bot as an operator runs it: a process that starts, gets killed, restarts and stops.

These tests spawn ``python main.py`` against the emulator and treat it as a
black box: only what reaches the chat, the exit code and the log count.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from botkit import REPLY_S, ROOT, User, deadline, picture, spawn_bot, wait_until, weights_path

from stylebot.jobs.job import JobStatus
from stylebot.playground.emulator import BotAPIEmulator
from stylebot.store.sqlite_store import Store

pytestmark = pytest.mark.skipif(weights_path() is None, reason="VGG weights not found (see README)")

#: Big enough that the job is still painting when we kill the bot.
SLOW_SIZE = "384"


def start_slow_job(user: User) -> None:
    user.say("/start")
    user.wait_text("Send me the photo", timeout=60)
    user.photo(picture((300, 200)))
    user.wait_seen("Now send")
    user.photo(picture((128, 128), (20, 20, 220)))
    user.wait_seen("Painting", timeout=60)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(deadline(10))


def test_sigkill_mid_job_loses_nothing(emulator: BotAPIEmulator, tmp_path):
    user = User(emulator, 7001)
    log = tmp_path / "bot.log"
    first = spawn_bot(emulator, tmp_path / "data", log, STYLEBOT_IMAGE_SIZE=SLOW_SIZE)
    try:
        start_slow_job(user)
        first.send_signal(signal.SIGKILL)
        first.wait(deadline(10))
        assert not user.results()
        # A new process on the same data dir: the job is resumed and delivered, with smaller
        # settings for speed (size is stored in the job, so the result keeps its 384 px).
        second = spawn_bot(emulator, tmp_path / "data", log, STYLEBOT_IMAGE_SIZE=SLOW_SIZE)
        try:
            # wait_seen, not wait_text: the worker edits this very message into its progress at once,
            # so its first text can be gone before a poll sees it (CI hit that race).
            user.wait_seen("your job is back in the queue", timeout=60)
            result = user.wait_result(timeout=240)
            assert user.result_image(result).size == (300, 200)  # smaller than 384: kept as is
            assert len(user.results()) == 1
        finally:
            stop(second)
    finally:
        stop(first)
    assert emulator.token not in log.read_text(errors="replace")


def test_sigterm_requeues_the_running_job_and_exits_fast(emulator: BotAPIEmulator, tmp_path):
    user = User(emulator, 7002)
    log = tmp_path / "bot.log"
    bot = spawn_bot(emulator, tmp_path / "data", log, STYLEBOT_IMAGE_SIZE=SLOW_SIZE)
    try:
        start_slow_job(user)
        sent = time.monotonic()
        bot.send_signal(signal.SIGTERM)
        code = bot.wait(deadline(15))
        assert code == 0
        assert time.monotonic() - sent < deadline(10)
    finally:
        stop(bot)
    store = Store(tmp_path / "data" / "stylebot.sqlite3")
    job = store.last_job(user.id)
    assert job.status == JobStatus.QUEUED  # back in the line, not lost, not failed
    assert job.attempts == 0  # a graceful stop is not counted against the job
    assert "stopping" in log.read_text() and "stopped" in log.read_text()


def test_missing_token_exits_2_with_a_clear_message(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "STYLEBOT_"))}
    env["STYLEBOT_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=deadline(60)
    )
    assert done.returncode == 2
    assert "TELEGRAM_BOT_TOKEN" in done.stderr and "--playground" in done.stderr


def test_bad_setting_names_the_variable_not_the_value(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "STYLEBOT_"))}
    env.update(TELEGRAM_BOT_TOKEN="123456:SECRET-VALUE-NOT-TO-PRINT-abcdefgh", STYLEBOT_WORKERS="many")
    done = subprocess.run(
        [sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=deadline(60)
    )
    assert done.returncode == 2
    assert "STYLEBOT_WORKERS" in done.stderr
    assert "SECRET-VALUE" not in done.stderr + done.stdout


def test_polling_starts_despite_startup_errors(emulator: BotAPIEmulator, tmp_path):
    emulator.fail_next("getUpdates", 502, description="Bad Gateway", times=2)
    emulator.fail_next("deleteWebhook", 502, description="Bad Gateway")
    emulator.fail_next("setMyCommands", 500, description="Internal Server Error")
    user = User(emulator, 7003)
    bot = spawn_bot(emulator, tmp_path / "data", tmp_path / "bot.log")
    try:
        user.say("/start")
        user.wait_text("Hi!", timeout=60)
        wait_until(
            lambda: [c for c in emulator.calls("setMyCommands") if c.status == 200], timeout=REPLY_S, api=emulator
        )
    finally:
        stop(bot)
    assert emulator.token not in (tmp_path / "bot.log").read_text()


def test_missing_weights_exit_2_and_say_how_to_get_them(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "STYLEBOT_"))}
    env.update(
        TELEGRAM_BOT_TOKEN="123456:abcdefghijklmnopqrstuvwxyz",
        STYLEBOT_WEIGHTS=str(tmp_path / "none.pth"),
        STYLEBOT_DATA_DIR=str(tmp_path / "data"),
        TELEGRAM_API_URL="http://127.0.0.1:9",
    )
    done = subprocess.run(
        [sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=deadline(60)
    )
    assert done.returncode == 2
    assert "weights.py build" in done.stderr and "Traceback" not in done.stderr
