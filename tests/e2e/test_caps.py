"""Per-user caps on dialogs and album items (issue 18): the same rule (stylebot/store/caps.py) in
SQLite and in a real Redis, and through the bot: a user who opens more dialogs than the cap loses
the oldest, whose late style picture then gets the group hint instead of a job."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botkit import picture, wait_until
from rediskit import redis_server

from stylebot.playground.emulator import BotAPIEmulator
from stylebot.store.base import STEP_CONTENT, STEP_STYLE, Dialog
from stylebot.store.caps import MAX_ALBUM_ITEMS_PER_USER, MAX_DIALOGS_PER_USER, oldest_beyond
from stylebot.store.sqlite_store import Store

USER, OTHER = 7001, 7002


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        store: Any = Store(tmp_path / "db.sqlite")
    else:
        from stylebot.store.redis_store import RedisStore

        store = RedisStore(request.getfixturevalue("redis_url"), prefix=f"caps-{uuid.uuid4().hex[:8]}")
    yield store
    store.close()


def held_album_items(store: Any, user_id: int) -> int:
    """How many album images the store holds for ``user_id``, read from the back-end itself."""
    if isinstance(store, Store):
        return store._db().execute("SELECT COUNT(*) FROM album_items WHERE user_id = ?", (user_id,)).fetchone()[0]
    albums = store.r.smembers(store.key("user", user_id, "albums"))
    return sum(store.r.hlen(store.key("album", album)) for album in albums)


def test_the_rule_keeps_the_newest_and_drops_the_oldest_first() -> None:
    entries = [("a", 1.0), ("b", 5.0), ("c", 3.0), ("d", 4.0), ("e", 2.0)]
    assert oldest_beyond(entries, 3) == ["e", "a"]
    assert oldest_beyond(entries, 5) == [] and oldest_beyond(entries, 9) == []
    assert oldest_beyond([("x", 1.0), ("y", 1.0)], 1) == ["x"]  # a tie: the earlier entry is the older


def test_thirty_groups_leave_at_most_the_cap_of_dialogs_newest_kept(store: Any) -> None:
    chats = [-1000 - n for n in range(30)]
    store.set_dialog(Dialog(USER, STEP_STYLE, "private-photo"))  # the private chat first: the oldest
    for n, chat in enumerate(chats):
        store.set_dialog(Dialog(USER, STEP_STYLE, f"photo-{n}", chat))
    store.set_dialog(Dialog(OTHER, STEP_STYLE, "others", chats[0]))  # someone else's count is their own
    open_chats = [c for c in [USER, *chats] if store.get_dialog(USER, c).step == STEP_STYLE]
    assert open_chats == chats[-MAX_DIALOGS_PER_USER:]
    assert store.get_dialog(USER, chats[-1]).content_file_id == f"photo-{len(chats) - 1}"
    assert store.get_dialog(USER).step == STEP_CONTENT  # the oldest (the private one) went first
    assert store.get_dialog(OTHER, chats[0]).content_file_id == "others"
    # Touching an old dialog again makes it the newest: the next one to go is another.
    store.set_dialog(Dialog(USER, STEP_STYLE, "again", chats[-MAX_DIALOGS_PER_USER]))
    store.set_dialog(Dialog(USER, STEP_STYLE, "newest", USER))
    assert store.get_dialog(USER, chats[-MAX_DIALOGS_PER_USER]).content_file_id == "again"
    assert store.get_dialog(USER, chats[-MAX_DIALOGS_PER_USER + 1]).step == STEP_CONTENT
    assert store.forget_user(USER) == []
    assert all(store.get_dialog(USER, c).step == STEP_CONTENT for c in [USER, *chats])


def test_album_items_per_user_are_capped_oldest_first(store: Any) -> None:
    albums = [(f"g{n}", -2000 - n) for n in range(5)]
    last: list = []
    for n, (group, chat) in enumerate(albums):
        for m in range(10):  # Telegram's largest album
            last = store.add_album_item(group, USER, 100 * n + m, f"f{n}-{m}", None, chat_id=chat)
    store.add_album_item("theirs", OTHER, 1, "their-file", None, chat_id=albums[0][1])
    # The album arriving now is whole; the oldest albums are gone, the cap holds across chats.
    assert [i.file_id for i in last] == [f"f4-{m}" for m in range(10)]
    held = {group: store.add_album_item(group, USER, 99_999, "probe", None, chat_id=chat) for group, chat in albums[:3]}
    # Each probe is the newest item and pushes the oldest one out: the first albums hold only probes.
    assert [i.file_id for i in held["g0"]] == ["probe"]
    assert [i.file_id for i in held["g1"]] == ["probe"]
    assert [i.file_id for i in held["g2"]] == ["probe"]
    newest = store.add_album_item("g4", USER, 409, "f4-9", None, chat_id=albums[4][1])
    assert len(newest) == 10  # not touched by the probes: 3 probes + 7 of g3 + 10 of g4 = the cap
    assert held_album_items(store, USER) == MAX_ALBUM_ITEMS_PER_USER
    assert [i.file_id for i in store.add_album_item("theirs", OTHER, 1, "their-file", None, chat_id=albums[0][1])] == [
        "their-file"
    ]


def test_the_bot_keeps_the_cap_and_an_evicted_prompt_gets_the_hint(make_bot, emulator: BotAPIEmulator) -> None:
    """Through the real bot: /style in more groups than the cap, then a style to the oldest prompt."""
    app = make_bot()
    api = emulator
    groups = [-100900 - n for n in range(MAX_DIALOGS_PER_USER + 2)]
    prompts = {}
    for chat in groups:
        photo = api.send_photo(USER, picture((60, 40)), caption="/style", chat_id=chat, first_name="Una")
        prompts[chat] = wait_until(
            lambda chat=chat, photo=photo: next(
                (
                    m
                    for m in api.bot_messages(chat)
                    if (m.get("reply_to_message") or {}).get("message_id") == photo["message_id"]
                    and "Got the photo" in (m.get("text") or "")
                ),
                None,
            ),
            60,
            what=f"the prompt in {chat}",
            api=api,
        )
    db = sqlite3.connect(app.config.db_path)
    try:
        rows = db.execute("SELECT chat_id FROM dialogs WHERE user_id = ?", (USER,)).fetchall()
    finally:
        db.close()
    assert sorted(r[0] for r in rows) == sorted(groups[-MAX_DIALOGS_PER_USER:])
    # The oldest prompt's dialog is gone: a style sent to it gets the hint, and no job starts.
    oldest = groups[0]
    late = api.send_photo(
        USER, picture((50, 50)), chat_id=oldest, reply_to=prompts[oldest]["message_id"], first_name="Una"
    )
    wait_until(
        lambda: next(
            (
                m
                for m in api.bot_messages(oldest)
                if (m.get("reply_to_message") or {}).get("message_id") == late["message_id"]
                and "Reply /style to a photo" in (m.get("text") or "")
            ),
            None,
        ),
        60,
        what="the hint under the late style",
        api=api,
    )
    assert app.store.last_job(USER) is None
