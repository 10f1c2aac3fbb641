"""Private at rest and in logs (issue 18, parts 4 and 5), through the real bot.

Modes: after a real job (result, "Full quality", the timelapse) every folder of the data directory is
0700 and every file 0600, with the process umask at 0 so nothing comes from the umask; an older data
directory (0755, a 0644 file) is tightened at start-up. Logs: the process logging is set up as
``main.py`` does it, every line is captured during a whole conversation and ``/forget``, and none
holds the user's id, a chat id, a file id, the user's name or what they wrote.
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botkit import User, picture, wait_until

from stylebot.logs import setup_logging, who
from stylebot.playground.emulator import BotAPIEmulator

USER = 7319046
GROUP = -1009182736
NAME = "Zebulonia"
SECRET = "my secret diary entry xyzzy"


def modes(root: Path) -> dict[str, int]:
    """Every folder and file under ``root`` (itself included) with its permission bits."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[path.relative_to(root).as_posix()] = stat.S_IMODE(path.lstat().st_mode)
    return found


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)  # without the private opener, new files would be 0666 and folders 0777
    yield
    os.umask(old)


def full_job(user: User) -> dict:
    user.say("/start")
    user.wait_text("Send me the photo")
    user.photo(picture((120, 80)))
    user.wait_seen("Now send")
    user.photo(picture((64, 64), (30, 30, 220)))
    return user.wait_result()


def test_data_at_rest_is_0700_and_0600_after_a_real_job(
    emulator: BotAPIEmulator, make_bot, tmp_path: Path, open_umask: None
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "results").mkdir()
    (data / "results").chmod(0o777)
    old = data / "results" / "from-an-older-release.png"
    old.write_bytes(b"x")
    old.chmod(0o644)
    make_bot()
    user = User(emulator, 1901)
    result = full_job(user)
    user.press(result, user.button(result, "full:"))
    wait_until(
        lambda: [m for m in user.messages() if m.get("document")], 60, what="the full-quality file", api=emulator
    )
    user.press(result, user.button(result, "lapse:"))
    wait_until(lambda: [m for m in user.messages() if m.get("animation")], 60, what="the timelapse", api=emulator)
    found = modes(data)
    for name in ("stylebot.sqlite3", "stylebot.sqlite3-wal", "stylebot.sqlite3-shm", "delivered.ledger"):
        assert name in found, f"{name} missing: {sorted(found)}"
    assert any(n.endswith(".png") and "older" not in n for n in found) and any(n.endswith(".gif") for n in found)
    loose = {n: oct(m) for n, m in found.items() if m != (0o700 if (data / n).is_dir() else 0o600)}
    assert loose == {}, f"not private: {loose}"


def test_a_data_directory_owned_by_someone_else_is_refused_at_start(tmp_path: Path, emulator: BotAPIEmulator) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the folder to another user (chown)")
    from botkit import weights_path

    from stylebot.app import WeightsMissing, build_app
    from stylebot.config import Config

    data = tmp_path / "theirs"
    data.mkdir()
    os.chown(data, 65534, 65534)
    config = Config(token=emulator.token, api_url=emulator.base_url, data_dir=data, weights=weights_path() or data)
    with pytest.raises(WeightsMissing) as refused:  # exit status 2, the message on stderr
        build_app(config)
    assert refused.value.code == 2
    assert not (data / "stylebot.sqlite3").exists()


@pytest.fixture
def captured(emulator: BotAPIEmulator) -> Iterator[io.StringIO]:
    """The process logging as main.py sets it up (at DEBUG: the most it ever says), written to a buffer."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    levels = {name: logging.getLogger(name).level for name in ("TeleBot", "urllib3")}
    setup_logging(emulator.token, level=logging.DEBUG)
    buffer = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    yield buffer
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def file_ids(value: Any) -> set[str]:
    """Every ``file_id`` and ``file_unique_id`` anywhere in a message (photo sizes, documents, animations)."""
    if isinstance(value, dict):
        found = {v for k, v in value.items() if k in ("file_id", "file_unique_id") and isinstance(v, str)}
        return found.union(*(file_ids(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(file_ids(v) for v in value))
    return set()


def test_logs_name_no_one_through_a_whole_conversation_and_forget(
    emulator: BotAPIEmulator, make_bot, captured: io.StringIO
) -> None:
    app = make_bot()
    user = User(emulator, USER)
    emulator.send_text(USER, "/start", first_name=NAME)
    user.wait_text("Send me the photo")
    emulator.send_text(USER, SECRET, first_name=NAME)
    emulator.send_photo(USER, picture((120, 80)), first_name=NAME)
    user.wait_seen("Now send")
    emulator.send_photo(USER, picture((64, 64), (30, 30, 220)), first_name=NAME)
    result = user.wait_result()
    user.press(result, user.button(result, "rerun:").replace("weaker", "stronger"))
    user.wait_result(2)
    user.press(result, user.button(result, "full:"))
    wait_until(
        lambda: [m for m in user.messages() if m.get("document")], 60, what="the full-quality file", api=emulator
    )
    emulator.send_photo(USER, picture((40, 40)), first_name=NAME, chat_id=GROUP)  # chatter: not for the bot
    emulator.send_text(USER, "/help@style_test_bot", first_name=NAME, chat_id=GROUP)
    wait_until(lambda: emulator.bot_messages(GROUP), 60, what="the bot's answer in the group", api=emulator)
    emulator.send_text(USER, "/forget", first_name=NAME)
    user.wait_text("Deleted everything")

    log = captured.getvalue()
    assert "queued job" in log  # the capture works: the bot did log about this user
    ids = file_ids(emulator.chat_history(USER)) | file_ids(emulator.chat_history(GROUP))
    assert len(ids) >= 6
    leaks = {
        needle: [line for line in log.splitlines() if needle in line]
        for needle in (str(USER), str(GROUP), str(abs(GROUP)), NAME, "xyzzy", *ids)
    }
    assert {k: v for k, v in leaks.items() if v} == {}
    # Lines name the user by pseudonym; /forget deleted the salt, so today's name is another one.
    names = set(re.findall(r"(u:[0-9a-f]{8}) queued job", log))
    assert len(names) == 1
    assert who(app.store, USER) not in names


def test_redis_salt_is_shared_by_every_process_and_forget_deletes_it(tmp_path: Path) -> None:
    pytest.importorskip("redis")
    from rediskit import redis_server

    from stylebot.store.redis_store import RedisStore

    with redis_server(tmp_path / "redis") as url:
        web, worker = RedisStore(url), RedisStore(url)  # two clients: as the webhook and an RQ worker
        name = who(web, USER)
        assert name.startswith("u:") and str(USER) not in name
        assert who(worker, USER) == name and who(web, USER) == name
        assert web.r.exists(web.key("salt", USER))
        web.forget_user(USER)
        assert not web.r.exists(web.key("salt", USER))
        assert who(worker, USER) != name
