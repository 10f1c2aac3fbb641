"""Issue 11: chats keyed by (chat, user), exactly-once updates, /forget privacy, schema versions.

End to end: the real bot (``stylebot.app.App``) against the emulator, the real SQLite file and,
for the scale-out mirror, a real ``redis-server``.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

import pytest
from botkit import REPLY_S, RESULT_S, TEST_SIZE, User, deadline, picture, wait_idle, wait_until
from rediskit import redis_server

from stylebot import app as main
from stylebot.jobs.job import Job, JobStatus
from stylebot.playground.emulator import BotAPIEmulator
from stylebot.polling import parse_updates
from stylebot.store.base import STEP_STYLE, Dialog
from stylebot.store.sqlite_store import SCHEMA_VERSION, Store

GROUP = -100123
STALE = "out of date"


def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "stylebot.sqlite3"


def in_group(user: User, text: str) -> dict:
    return user.api.send_text(user.id, text, chat_id=GROUP)


def photo_in_group(user: User, data: bytes, reply_to: int | None = None) -> dict:
    """A photo addressed to the bot, as privacy mode requires in a group: captioned /style (a new
    photo to paint), or a reply to the bot's prompt (the style)."""
    return user.api.send_photo(user.id, data, chat_id=GROUP, caption=None if reply_to else "/style", reply_to=reply_to)


def group_texts(api: BotAPIEmulator) -> list[str]:
    return [m.get("text") or m.get("caption") or "" for m in api.bot_messages(GROUP)]


def wait_group_text(api: BotAPIEmulator, fragment: str, count: int = 1) -> None:
    wait_until(
        lambda: sum(fragment in t for t in group_texts(api)) >= count,
        60,
        what=f"{count}x {fragment!r} in the group",
        api=api,
    )


def answers(api: BotAPIEmulator) -> list[str]:
    return [c.params.get("text") or "" for c in api.calls("answerCallbackQuery") if c.status == 200]


def done_jobs(store: Store, user_id: int) -> int:
    return len(store.jobs_created_since(user_id, 0))


# --- (1) dialogs per chat --------------------------------------------------------


def test_private_photo_is_never_painted_into_a_group(make_bot, emulator: BotAPIEmulator):
    app = make_bot()
    user = User(emulator, 2101)
    private_photo = user.photo(picture((120, 80)))
    user.wait_text("Got the photo")
    # The same user posts a picture in a group: it is that chat's first photo, not a style.
    group_photo = photo_in_group(user, picture((90, 90), (20, 200, 20)))
    wait_group_text(emulator, "Got the photo")
    assert app.store.last_job(user.id) is None
    assert app.store.get_dialog(user.id).content_file_id == private_photo["photo"][-1]["file_id"]
    # A style in the group paints the group's photo, into the group only.
    photo_in_group(user, picture((64, 64), (20, 20, 220)), reply_to=emulator.bot_messages(GROUP)[-1]["message_id"])
    wait_until(
        lambda: any(m.get("photo") and "px" in (m.get("caption") or "") for m in emulator.bot_messages(GROUP)),
        90,
        what="the group's result",
        api=emulator,
    )
    job = app.store.last_job(user.id)
    assert job.chat_id == GROUP and job.content_file_id == group_photo["photo"][-1]["file_id"]
    assert not user.results()  # nothing went to the private chat
    assert app.store.get_dialog(user.id).step == STEP_STYLE  # the private dialog is untouched


def test_buttons_act_only_in_their_own_chat(make_bot, emulator: BotAPIEmulator):
    app = make_bot()
    user = User(emulator, 2102)
    user.photo(picture((120, 80)))
    user.wait_text("Got the photo")
    user.photo(picture((64, 64), (20, 20, 220)))
    result = user.wait_result()
    job = app.store.last_job(user.id)
    in_group(user, "/help")
    wait_group_text(emulator, "/settings")
    group_message = emulator.bot_messages(GROUP)[-1]["message_id"]
    # The private result's buttons, replayed on a group message: out of date, nothing sent there.
    for n, data in enumerate((f"full:{job.id}", f"rerun:{job.id}:stronger", f"restyle:{job.id}"), 1):
        emulator.send_callback_query(user.id, group_message, data, chat_id=GROUP)
        wait_until(
            lambda n=n: sum(STALE in a for a in answers(emulator)) >= n,
            REPLY_S,
            what=f"stale answer to {data}",
            api=emulator,
        )
    # A recent style picked in the group needs the group's own photo; the private one has none now.
    user.photo(picture((100, 70), (200, 200, 20)))  # private dialog: waiting for a style
    user.wait_text("tap one of your recent styles")
    emulator.send_callback_query(user.id, group_message, "style:1", chat_id=GROUP)
    wait_until(lambda: sum(STALE in a for a in answers(emulator)) >= 4, REPLY_S, what="stale style:1", api=emulator)
    assert app.store.last_job(user.id).id == job.id  # no second job
    assert not any(m.get("document") or m.get("photo") for m in emulator.bot_messages(GROUP))
    # The private buttons still work in their own chat.
    user.press(result, f"full:{job.id}")
    wait_until(lambda: any(m.get("document") for m in user.messages()), REPLY_S, what="the PNG", api=emulator)


# --- (2) exactly once under redelivery ---------------------------------------------


def stop_polling(app: main.App) -> None:
    """As if the process died: polling ends (no further getUpdates confirms anything)."""
    app.stop(timeout=deadline(5))
    app._poller.join(deadline(10))
    assert not app._poller.is_alive()


def test_restart_does_not_handle_a_resent_style_again(make_bot, emulator: BotAPIEmulator):
    first = make_bot()
    user = User(emulator, 2201)
    user.photo(picture((120, 80)))
    user.wait_text("Got the photo")
    user.photo(picture((64, 64), (20, 20, 220)))
    user.wait_result()
    stop_polling(first)
    emulator.redeliver_last_update()  # Telegram sends the style photo again
    second = make_bot()
    user.say("/help")  # the same user's updates are handled in order: the re-sent one first
    user.wait_text("/settings")
    assert sum("Got the photo" in t for t in user.texts()) == 1, user.texts()
    assert done_jobs(second.store, user.id) == 1


def test_resent_button_press_makes_no_second_job(make_bot, emulator: BotAPIEmulator):
    first = make_bot()
    user = User(emulator, 2202)
    user.photo(picture((120, 80)))
    user.wait_text("Got the photo")
    user.photo(picture((64, 64), (20, 20, 220)))
    result = user.wait_result()
    wait_idle(first.store, user.id)  # the result shows a moment before its job is done
    user.press(result, user.button(result, "rerun:"))
    user.wait_result(2)
    stop_polling(first)
    emulator.redeliver_last_update()  # the "Stronger" press, same update id
    second = make_bot()
    user.say("/help")
    # Answered after the re-sent press (one user's updates are handled in order): a wrong job
    # would already be in the store.
    user.wait_text("/settings")
    assert done_jobs(second.store, user.id) == 2
    assert second.store.active_job(user.id) is None


def test_handled_update_ids_are_kept_across_restarts(tmp_path: Path):
    """Without the saved offset (an older file, or Telegram re-sending anyway) the ids still tell."""
    raw = [
        {
            "update_id": 41,
            "message": {
                "message_id": 1,
                "date": 0,
                "chat": {"id": 5, "type": "private"},
                "from": {"id": 5, "is_bot": False, "first_name": "A"},
                "text": "hi",
            },
        }
    ]
    store = Store(tmp_path / "db.sqlite3")
    assert [u.update_id for u in parse_updates(raw, store, 42)] == [41]
    assert parse_updates(raw, store, 42) == []
    store.close()
    again = Store(tmp_path / "db.sqlite3")
    assert again.poll_offset() == 42
    assert parse_updates(raw, again) == []
    assert again.accept_updates([41, 43]) == [43]


# --- (3) /forget leaves nothing, the rate limit stays ----------------------------------


def test_forget_scrubs_every_file_and_keeps_the_rate_limit(make_bot, emulator: BotAPIEmulator, tmp_path: Path):
    app = make_bot(rate_limit=1)
    user = User(emulator, 987654321)
    sent = [
        user.photo(picture((120, 80))),
    ]
    user.wait_text("Got the photo")
    sent.append(user.photo(picture((64, 64), (20, 20, 220))))
    user.wait_result()
    job = app.store.last_job(user.id)
    assert (app.config.results_dir / f"{job.id}.png").is_file()
    sent.append(photo_in_group(user, picture((90, 90), (20, 200, 20))))  # a dialog in a group too
    wait_group_text(emulator, "Got the photo")
    user.say("/forget")
    user.wait_text("Deleted everything")
    secrets = {str(user.id), job.id} | {p["file_id"] for m in sent for p in m["photo"]}
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert any(p.name.endswith(".sqlite3") for p in files)
    for path in files:
        data = path.read_bytes()
        found = sorted(s for s in secrets if s.encode() in data)
        assert not found, f"{path.name} still holds {found}"
    assert not (app.config.results_dir / f"{job.id}.png").exists()
    # At the limit before /forget, still at it after.
    user.photo(picture((120, 80)))
    user.wait_text("Got the photo", after=len(user.messages()) - 1)
    user.photo(picture((64, 64), (20, 20, 220)))
    user.wait_text("jobs per hour")
    assert app.store.last_job(user.id) is None


# --- (4) schema versions ---------------------------------------------------------------

#: storage.py's schema in the first release (git HEAD before version 2), verbatim.
OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    user_id INTEGER NOT NULL,
    chat_id INTEGER NOT NULL,
    lang TEXT NOT NULL,
    content_file_id TEXT NOT NULL,
    style_file_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    strength REAL NOT NULL,
    keep_colors INTEGER NOT NULL,
    status TEXT NOT NULL,
    status_message_id INTEGER,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_user ON jobs (user_id, created_at);
CREATE TABLE IF NOT EXISTS dialogs (
    user_id INTEGER PRIMARY KEY,
    step TEXT NOT NULL,
    content_file_id TEXT,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    user_id INTEGER PRIMARY KEY,
    size INTEGER,
    strength REAL NOT NULL DEFAULT 1.0,
    keep_colors INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS styles (
    user_id INTEGER NOT NULL,
    file_id TEXT NOT NULL,
    thumb_file_id TEXT,
    used_at REAL NOT NULL,
    PRIMARY KEY (user_id, file_id)
);
CREATE TABLE IF NOT EXISTS album_items (
    group_id TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    file_id TEXT NOT NULL,
    thumb_file_id TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (group_id, message_id)
);
"""


def old_database(path: Path, jobs: list[tuple]) -> None:
    """A file as the previous release left it: its schema, user_version 0, WAL mode, queued jobs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(OLD_SCHEMA)
    db.executemany(
        "INSERT INTO jobs (id, user_id, chat_id, lang, content_file_id, style_file_id, size, strength, "
        "keep_colors, status, created_at, attempts) VALUES (?, ?, ?, 'en', ?, ?, ?, 1.0, 0, 'queued', ?, 0)",
        jobs,
    )
    db.execute("INSERT INTO dialogs VALUES (?, 'style', 'old-photo', ?)", (jobs[0][1], time.time()))
    db.commit()
    db.close()


def test_old_database_is_upgraded_and_its_jobs_delivered(make_bot, emulator: BotAPIEmulator, tmp_path: Path):
    user = User(emulator, 2401)
    content = user.photo(picture((120, 80)))["photo"][-1]["file_id"]
    style = user.photo(picture((64, 64), (20, 20, 220)))
    style_id = style["photo"][-1]["file_id"]
    # Telegram had these updates confirmed by the old process long ago.
    emulator.handle("getUpdates", {"offset": str(2 + 1), "timeout": "0"}, {})
    old_database(db_path(tmp_path), [("oldjob000001", user.id, user.id, content, style_id, TEST_SIZE, time.time())])
    app = make_bot()
    assert app.store.schema_version() == SCHEMA_VERSION == 8
    user.wait_seen("your job is back in the queue")
    user.wait_result(timeout=RESULT_S)
    wait_until(
        lambda: app.store.get_job("oldjob000001").status == JobStatus.DONE, REPLY_S, what="job done", api=emulator
    )
    assert app.store.get_dialog(user.id).content_file_id is None  # no chat recorded: not guessed


def test_unknown_job_columns_are_ignored(tmp_path: Path):
    """A database touched by a newer release (an extra column) still reads as jobs here."""
    store = Store(tmp_path / "db.sqlite3")
    store._db().execute("ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 3")
    store.close()
    store = Store(tmp_path / "db.sqlite3")
    job = store.create_job(Job(user_id=1, chat_id=1, content_file_id="a", style_file_id="b", size=64))
    assert store.get_job(job.id).content_file_id == "a"
    assert [j.id for j in store.recover()] == [job.id]
    # And a row without a column this release's Job has (one that has a default) reads with the default.
    store._db().execute("ALTER TABLE jobs DROP COLUMN error")
    assert store.get_job(job.id).error is None and store.get_job(job.id).content_file_id == "a"


def test_migrations_run_once_and_in_order(tmp_path: Path):
    old_database(tmp_path / "db.sqlite3", [("j1", 7, 7, "c", "s", 64, time.time())])
    first = Store(tmp_path / "db.sqlite3")
    salt = first._salt
    assert first.schema_version() == 8 and first.get_job("j1").status == JobStatus.QUEUED
    assert first.get_job("j1").mix == 0.5 and first.get_job("j1").style_slug is None  # v3 columns, defaults
    assert len(first.jobs_created_since(7, time.time() - 60)) == 1  # the last hour still counts
    again = Store(tmp_path / "db.sqlite3")
    assert again._salt == salt and len(again.jobs_created_since(7, time.time() - 60)) == 1


# --- (5) malformed callbacks ---------------------------------------------------------


def test_malformed_callbacks_get_the_stale_answer(make_bot, emulator: BotAPIEmulator):
    make_bot()
    user = User(emulator, 2501)
    user.say("/settings")
    message = wait_until(
        lambda: next((m for m in user.messages() if m.get("reply_markup")), None),
        REPLY_S,
        what="the settings keyboard",
        api=emulator,
    )
    bad = [
        "set:",
        "set:size",
        "set:size:",
        "set:colors:",
        "rerun:",
        "rerun:nope:stronger",
        "style:x",
        "style:",
        "full:",
        "",
    ]
    for data in bad:
        emulator.send_callback_query(user.id, message["message_id"], data)
    wait_until(
        lambda: sum(STALE in a for a in answers(emulator)) == len(bad),
        REPLY_S,
        what="every malformed press answered as stale",
        api=emulator,
    )
    assert not any("went wrong" in t for t in user.seen())


# --- RedisStore mirrors (1)-(3) -------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


def chats_and_privacy(store) -> list:
    seen: list = []
    store.set_dialog(Dialog(5, STEP_STYLE, "private-photo"))
    store.set_dialog(Dialog(5, STEP_STYLE, "group-photo", GROUP))
    seen.append((store.get_dialog(5), store.get_dialog(5, GROUP), store.get_dialog(5, -7)))
    store.reset_dialog(5, GROUP)
    seen.append((store.get_dialog(5), store.get_dialog(5, GROUP)))
    store.set_dialog(Dialog(5, STEP_STYLE, "group-photo", GROUP))
    seen.append([i.file_id for i in store.add_album_item("g", 5, 1, "a", None, chat_id=GROUP)])
    seen.append([i.file_id for i in store.add_album_item("g", 5, 2, "b", None)])  # same group id, other chat
    seen.append([i.file_id for i in store.add_album_item("g", 5, 3, "c", None, chat_id=GROUP)])
    for n in range(2):
        store.create_job(
            Job(
                user_id=5,
                chat_id=GROUP,
                content_file_id="x",
                style_file_id="y",
                size=64,
                id=f"j{n}",
                status=JobStatus.DONE,
            )
        )
    seen.append(len(store.jobs_created_since(5, time.time() - 60)))
    seen.append(sorted(store.forget_user(5)))
    seen.append((store.get_dialog(5), store.get_dialog(5, GROUP), store.last_job(5)))
    seen.append(len(store.jobs_created_since(5, time.time() - 60)))  # the limit survives /forget
    seen.append(len(store.jobs_created_since(6, time.time() - 60)))
    seen.append(store.seen_update(77))
    seen.append(store.seen_update(77))
    return seen


def test_redis_store_mirrors_chats_forget_and_updates(redis_url, tmp_path: Path):
    from stylebot.store.redis_store import RedisStore

    expected = chats_and_privacy(Store(tmp_path / "db.sqlite3"))
    store = RedisStore(redis_url, prefix=f"test-{uuid.uuid4().hex[:8]}")
    try:
        assert chats_and_privacy(store) == expected
        keys = store.r.keys(f"{store.prefix}:*")
        assert not [k for k in keys if ":5:" in k or k.endswith(":5")], keys  # nothing keyed by the user
        assert not any("photo" in str(store.r.dump(k)) for k in keys)
    finally:
        store.close()
