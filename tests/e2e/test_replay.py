"""Issue 11: an update taken but not finished when the bot dies is handled again at start-up.

Exactly-once effects stay (ids are recorded before handling; a redelivered update is ignored),
and now nobody is left unanswered: a taken update keeps its raw JSON until its handler
returns, and the next process replays what is left. These check the other side of that
promise: a replay makes no second job and no second "queued" message, a finished update
is never replayed, and /forget leaves no pending raw update behind. End to end: the real bot
(a SIGKILLed subprocess, or ``stylebot.app.App``) against the emulator, and the real SQLite file.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from botkit import REPLY_S, User, deadline, picture, spawn_bot, wait_until

from stylebot import texts
from stylebot.playground.emulator import BotAPIEmulator
from stylebot.store.base import STEP_CONTENT
from stylebot.store.sqlite_store import Store

QUEUED = (texts.t("en", "queued_next"), texts.t("en", "queued", position=1).split(":")[0])
ALREADY = texts.t("en", "already_queued")
HELP = "neural style transfer"  # in the /help answer only


def db_path(data: Path) -> Path:
    return data / "stylebot.sqlite3"


def queued_sends(emulator: BotAPIEmulator, user: User) -> list[str]:
    """Every "queued" message the bot sent this user (the calls: the message is edited later)."""
    sent = [
        str(c.params.get("text") or "")
        for c in emulator.calls("sendMessage")
        if str(c.params.get("chat_id")) == str(user.id)
    ]
    return [t for t in sent if t.startswith(QUEUED)]


def message_update(update_id: int, user_id: int, text: str, message_id: int = 1) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "date": 1700000000,
            "text": text,
            "chat": {"id": user_id, "type": "private"},
            "from": {"id": user_id, "is_bot": False, "first_name": "A", "language_code": "en"},
        },
    }


def _stop(bot: subprocess.Popen) -> None:
    if bot.poll() is None:
        bot.kill()
        bot.wait(deadline(30))


@pytest.mark.timeout(300)
def test_a_style_replayed_after_a_kill_makes_no_second_job_nor_queued_message(emulator, tmp_path):
    """SIGKILL after the style's job was stored and "queued" sent, before its handler returned
    (the reply's answer stalls). The restarted bot handles the style again: it finds the job
    derived from the same update, so one job, one "queued" message, one result."""
    data, log = tmp_path / "data", tmp_path / "bot.log"
    user = User(emulator, 8301)
    bot = spawn_bot(emulator, data, log)
    try:
        user.photo(picture((120, 80)))
        user.wait_text("Got the photo", timeout=90)
        emulator.stall_next("sendMessage", 120)  # the "queued" message goes out; its answer never comes
        style_id = user.photo(picture((64, 64), (20, 20, 220)))["photo"][-1]["file_id"]
        wait_until(lambda: queued_sends(emulator, user), 60, what="the 'queued' message", api=emulator)
        bot.send_signal(signal.SIGKILL)
        bot.wait(deadline(30))
        bot = spawn_bot(emulator, data, log)
        user.wait_result(timeout=180)
        store = Store(db_path(data))
        try:
            # The replayed style handler ran to its end: the style remembered, the dialog over.
            wait_until(
                lambda: [s.file_id for s in store.recent_styles(user.id)] == [style_id],
                60,
                what="the replayed style update to be handled",
                api=emulator,
            )
            assert store.get_dialog(user.id).step == STEP_CONTENT
            wait_until(lambda: not store.unfinished_updates(), REPLY_S, what="the replay to be finished", api=emulator)
            jobs = store._db().execute("SELECT COUNT(*) FROM jobs WHERE user_id = ?", (user.id,)).fetchone()[0]
        finally:
            store.close()
        assert jobs == 1
        assert len(queued_sends(emulator, user)) == 1, user.seen()
        assert not any(t.startswith(ALREADY) for t in user.seen()), user.seen()
        assert len(user.results()) == 1
    finally:
        _stop(bot)


def test_an_unfinished_update_is_handled_at_start_and_then_finished(make_bot, emulator: BotAPIEmulator, tmp_path: Path):
    """What a dead process leaves (taken, raw JSON kept) is answered by the next one before it polls;
    one telebot cannot parse is marked finished instead of being replayed at every start."""
    user = User(emulator, 8302)
    store = Store(db_path(tmp_path / "data"))
    broken = {"update_id": 501, "message": {"message_id": "not a number"}}
    assert store.accept_updates([500, 501], None, raw={500: message_update(500, user.id, "/help"), 501: broken}) == [
        500,
        501,
    ]
    store.close()
    user.say("/start")  # waits in Telegram's queue: polled only after the replay
    app = make_bot()
    user.wait_text("Hi! I repaint")
    texts_seen = user.texts()
    assert [HELP in t for t in texts_seen] == [True, False], texts_seen  # the replayed /help first
    wait_until(
        lambda: not app.store.unfinished_updates(), REPLY_S, what="the replayed updates to be finished", api=emulator
    )
    assert app.store.accept_updates([500, 501]) == []  # still recorded: a redelivery is ignored


def test_a_finished_update_is_not_replayed(make_bot, emulator: BotAPIEmulator):
    first = make_bot()
    user = User(emulator, 8303)
    user.say("/help")
    user.wait_text(HELP)
    wait_until(lambda: not first.store.unfinished_updates(), REPLY_S, what="/help to be marked finished", api=emulator)
    first.stop(timeout=deadline(5))
    first._poller.join(deadline(10))
    make_bot()
    user.say("/start")  # one sender's updates run in order: a replayed /help would come first
    user.wait_text("Hi! I repaint")
    assert sum(HELP in t for t in user.texts()) == 1, user.texts()


def test_forget_removes_the_users_pending_raw_updates(tmp_path: Path):
    """The raw JSON names the user and their file ids: /forget (``forget_user``) leaves none of it on
    disk, nor replays it; another user's pending update stays."""
    path = tmp_path / "data" / "stylebot.sqlite3"
    store = Store(path)
    gone, kept = 77012345, 77054321
    photo = message_update(11, gone, "")
    photo["message"]["photo"] = [
        {"file_id": "secret-file-id-of-77012345", "file_unique_id": "u1", "width": 90, "height": 60}
    ]
    store.accept_updates(
        [11, 12, 13],
        14,
        raw={11: photo, 12: message_update(12, gone, "/forget", 2), 13: message_update(13, kept, "/help")},
    )
    store.finish_update(12)  # a finished one keeps neither its JSON nor its sender
    store.forget_user(gone)
    assert [u["update_id"] for u in store.unfinished_updates()] == [13]
    store.close()
    for file in path.parent.rglob("*"):
        data = file.read_bytes()
        for secret in ("secret-file-id-of-77012345", str(gone)):
            assert secret.encode() not in data, f"{file.name} still holds {secret}"
    again = Store(path)
    assert again.accept_updates([11, 12]) == []  # forgotten, but still not handled twice
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM updates WHERE user_id IS NOT NULL").fetchone()[0] == 1
    again.close()
