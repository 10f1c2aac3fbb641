"""Mixed styles end to end (issue 14, point 3): a 3-image album, "Mix with another style", the ratio buttons.

The real App and engine (48 px) behind the real telebot client, over HTTP to the local Bot API emulator.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from botkit import REPLY_S, TEST_SIZE, User, picture, wait_idle, wait_until
from rediskit import redis_server

from stylebot.playground.emulator import BotAPIEmulator
from stylebot.store.base import STEP_MIX, Dialog
from stylebot.store.redis_store import RedisStore
from stylebot.store.sqlite_store import Store


def file_id(message: dict) -> str:
    """The largest photo size's file id of a user's message (what the bot stores)."""
    return message["photo"][-1]["file_id"]


def keyboard(message: dict) -> list[tuple[str, str]]:
    return [(b["text"], b["callback_data"]) for row in message["reply_markup"]["inline_keyboard"] for b in row]


def answers(emulator: BotAPIEmulator) -> list[str]:
    return [c.params.get("text") or "" for c in emulator.calls("answerCallbackQuery")]


def test_album_of_three_is_photo_and_two_styles_mixed_in_one_result(make_bot, emulator: BotAPIEmulator, user: User):
    app = make_bot()
    sent = emulator.send_album(
        user.id, [picture((100, 50)), picture((64, 64), (200, 30, 30)), picture((64, 64), (20, 160, 40))]
    )
    result = user.wait_result()
    assert user.result_image(result).size == (TEST_SIZE, 24)
    assert "mixed styles: 50% first · 50% second" in result["caption"]
    job = app.store.last_job(user.id)
    assert job is not None and job.mix == 0.5
    assert (job.content_file_id, job.style_file_id, job.style2_file_id) == tuple(file_id(u) for u in sent)
    # One job for the whole album, and its result carries the ratio buttons, not "Mix with another style".
    assert len(app.store.jobs_created_since(user.id, 0)) == 1 and len(user.results()) == 1
    data = [d for _, d in keyboard(result)]
    assert [d for d in data if d.startswith("mix:")] == [f"mix:{job.id}:25", f"mix:{job.id}:50", f"mix:{job.id}:75"]
    assert not any(d.startswith("mixwith:") for d in data)
    # Both styles are now recent styles.
    assert {s.file_id for s in app.store.recent_styles(user.id)} == {job.style_file_id, job.style2_file_id}


def test_album_of_two_stays_photo_and_one_style(make_bot, emulator: BotAPIEmulator, user: User):
    app = make_bot()
    emulator.send_album(user.id, [picture((100, 50)), picture((64, 64), (0, 0, 255))])
    result = user.wait_result()
    job = app.store.last_job(user.id)
    assert job is not None and job.style2_file_id is None
    assert "mixed" not in result["caption"]
    assert f"mixwith:{job.id}" in [d for _, d in keyboard(result)]


def test_album_of_four_is_refused_with_a_clear_message(make_bot, emulator: BotAPIEmulator, user: User):
    app = make_bot()
    emulator.send_album(user.id, [picture((100, 50))] + [picture((64, 64), (40 * i, 0, 200)) for i in range(3)])
    user.wait_text("That album has 4 images")
    assert app.store.last_job(user.id) is None and user.results() == []


def test_mix_with_another_style_then_change_the_ratio(make_bot, emulator: BotAPIEmulator, user: User):
    app = make_bot()
    user.say("/start")
    user.wait_text("Send me the photo")
    user.photo(picture((120, 80)))
    user.wait_seen("Now send")
    user.photo(picture((64, 64), (30, 30, 220)))
    first = user.wait_result()
    one = app.store.last_job(user.id)
    assert one is not None and one.style2_file_id is None
    assert ("Mix with another style", f"mixwith:{one.id}") in keyboard(first)

    # "Mix with another style" -> the next picture is the second style: one mixed job, 50/50.
    wait_idle(app.store, user.id)  # the result shows a moment before its job is done
    user.press(first, f"mixwith:{one.id}")
    user.wait_seen("Send a second style picture")
    second_style = user.photo(picture((64, 64), (230, 200, 40)))
    second = user.wait_result(2)
    mixed = app.store.last_job(user.id)
    assert mixed is not None and mixed.id != one.id
    assert (mixed.content_file_id, mixed.style_file_id) == (one.content_file_id, one.style_file_id)
    assert mixed.style2_file_id == file_id(second_style) and mixed.mix == 0.5
    assert "mixed styles: 50% first · 50% second" in second["caption"]
    assert user.result_image(second).size == user.result_image(first).size
    ratios = [(t, d) for t, d in keyboard(second) if d.startswith("mix:")]
    assert ratios == [
        ("75/25", f"mix:{mixed.id}:25"),
        ("✓ 50/50", f"mix:{mixed.id}:50"),
        ("25/75", f"mix:{mixed.id}:75"),
    ]

    # The ratio in use: a short answer, no new job.
    user.press(second, f"mix:{mixed.id}:50")
    wait_until(
        lambda: "This result already has that mix." in answers(emulator), REPLY_S, what="the answer", api=emulator
    )
    assert app.store.last_job(user.id).id == mixed.id

    # 75: the same three images again (by file id: nothing uploaded), 75 % of the second style.
    downloads = len(emulator.calls("getFile"))
    wait_idle(app.store, user.id)  # the result shows a moment before its job is done
    user.press(second, f"mix:{mixed.id}:75")
    third = user.wait_result(3)
    more = app.store.last_job(user.id)
    assert more is not None and more.mix == 0.75
    assert (more.content_file_id, more.style_file_id, more.style2_file_id) == (
        mixed.content_file_id,
        mixed.style_file_id,
        mixed.style2_file_id,
    )
    assert "mixed styles: 25% first · 75% second" in third["caption"]
    assert ("✓ 25/75", f"mix:{more.id}:75") in keyboard(third)
    assert len(emulator.calls("getFile")) - downloads == 3  # the worker's three downloads, no user uploads

    # Stronger keeps the mix and its ratio.
    wait_idle(app.store, user.id)  # the result shows a moment before its job is done
    user.press(third, f"rerun:{more.id}:stronger")
    fourth = user.wait_result(4)
    strong = app.store.last_job(user.id)
    assert strong is not None and strong.style2_file_id == more.style2_file_id and strong.mix == 0.75
    assert "style strong" in fourth["caption"] and "25% first · 75% second" in fourth["caption"]


def test_mix_buttons_answer_only_their_own_user(make_bot, emulator: BotAPIEmulator, user: User):
    """A forged or replayed press on someone else's result changes nothing."""
    app = make_bot()
    emulator.send_album(
        user.id, [picture((100, 50)), picture((64, 64), (200, 30, 30)), picture((64, 64), (20, 160, 40))]
    )
    result = user.wait_result()
    job = app.store.last_job(user.id)
    other = User(emulator, 4242)
    other.say("/start")
    other.wait_text("Send me the photo")
    emulator.send_callback_query(other.id, other.messages()[0]["message_id"], f"mix:{job.id}:75")
    emulator.send_callback_query(other.id, other.messages()[0]["message_id"], f"mixwith:{job.id}")
    wait_until(
        lambda: answers(emulator).count("That button is out of date.") >= 2, REPLY_S, what="stale answers", api=emulator
    )
    assert app.store.last_job(other.id) is None and app.store.get_dialog(other.id).step == "content"
    assert len(user.results()) == 1 and result


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path: Path):
    """Both back-ends: a dialog waiting for the second style keeps the first (schema v4 / the Redis hash)."""
    if request.param == "sqlite":
        yield Store(tmp_path / "db.sqlite3")
        return
    with redis_server(tmp_path / "redis") as url:
        redis_store = RedisStore(url, prefix=f"test-{uuid.uuid4().hex[:8]}")
        yield redis_store
        redis_store.close()


def test_a_mix_dialog_keeps_its_first_style_in_either_store(store) -> None:
    store.set_dialog(Dialog(7, STEP_MIX, "photo", -100, style_file_id="first"))
    assert store.get_dialog(7, -100) == Dialog(7, STEP_MIX, "photo", -100, "first")
    assert store.get_dialog(7).style_file_id is None  # another chat's dialog is its own
    store.set_dialog(Dialog(7, "style", "photo", -100))  # a plain step clears it
    assert store.get_dialog(7, -100).style_file_id is None
    store.set_dialog(Dialog(7, STEP_MIX, "photo", -100, style_file_id="first"))
    store.reset_dialog(7, -100)
    assert store.get_dialog(7, -100) == Dialog(7, chat_id=-100)
