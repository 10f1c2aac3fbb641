"""Whole conversations with the real bot over HTTP (telebot → emulator).

Each test starts ``stylebot.app.App`` (handlers, SQLite store, worker threads, the
real engine at a tiny size) against a fresh local Bot API server and chats
with it as a Telegram user would.
"""

from __future__ import annotations

from botkit import REPLY_S, RESULT_S, TEST_SIZE, User, picture, wait_until

from stylebot.playground.emulator import BotAPIEmulator


def run_job(user: User, content: bytes, style: bytes) -> dict:
    user.say("/start")
    user.wait_text("Send me the photo")
    user.photo(content)
    user.wait_text("Now send the picture")
    user.photo(style)
    return user.wait_result()


def test_whole_conversation(make_bot, emulator: BotAPIEmulator, user: User):
    make_bot(edit_every=0.2)
    user.say("/start")
    assert "Send me the photo to repaint" in user.wait_text("Hi!")["text"]
    user.photo(picture((120, 80), (200, 40, 40)))
    user.wait_text("Got the photo")
    user.photo(picture((90, 90), (30, 60, 220)))
    assert "next in the queue" in user.wait_seen("queue")
    result = user.wait_result()

    image = user.result_image(result)
    # Long side is STYLEBOT_IMAGE_SIZE, aspect ratio is the content's to the pixel (120:80 → 48:32).
    assert image.size == (TEST_SIZE, 32)
    assert f"{TEST_SIZE}×32" in result["caption"]
    buttons = [b["text"] for row in result["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == [
        "Stronger",
        "Weaker",
        "Another style",
        "Full quality file",
        "🎞 How it was painted",
        "Mix with another style",
    ]

    # The status message was edited in place with progress, then removed on delivery.
    edits = emulator.calls("editMessageText") + emulator.calls("editMessageCaption")
    assert any("Painting" in (c.params.get("text") or c.params.get("caption") or "") for c in edits)
    assert emulator.calls("sendChatAction")
    assert emulator.calls("deleteMessage")
    assert not emulator.unknown_calls()


def test_commands_registered_in_both_languages(make_bot, emulator: BotAPIEmulator):
    make_bot()
    calls = wait_until(
        lambda: len(emulator.calls("setMyCommands")) >= 2 and emulator.calls("setMyCommands"), api=emulator
    )
    commands = [c.params["commands"] for c in calls]
    for name in ("start", "help", "cancel", "settings", "forget"):
        assert all(f'"{name}"' in c for c in commands)
    assert any(c.params.get("language_code") == "ru" for c in calls)


def test_russian_user_gets_russian_texts(make_bot, emulator: BotAPIEmulator):
    make_bot()
    ivan = User(emulator, 2002, lang="ru")
    ivan.say("/start")
    assert "Привет" in ivan.wait_text("Привет")["text"]
    ivan.say("/help")
    assert "Приватность" in ivan.wait_text("Приватность")["text"]


def test_help_states_retention_policy(make_bot, user: User):
    make_bot()
    user.say("/help")
    text = user.wait_text("Privacy")["text"]
    assert "file ids" in text and "hours" in text


def test_document_image_works_like_a_photo(make_bot, user: User):
    make_bot()
    user.say("/start")
    user.file(picture((60, 100), fmt="PNG"), "portrait.png", "image/png")
    user.wait_text("Got the photo")
    user.file(picture((64, 64), (20, 200, 20), fmt="WEBP"), "style.webp", "image/webp")
    image = user.result_image(user.wait_result())
    assert image.size == (29, TEST_SIZE)  # 60:100 → 28.8:48, rounded


def test_second_request_while_queued_is_refused_kindly(make_bot, user: User):
    make_bot(image_size=384)  # the first job is still running when the second request comes
    user.say("/start")
    user.photo(picture())
    user.wait_text("Got the photo")
    user.photo(picture(color=(10, 10, 200)))
    user.wait_seen("queue")
    user.photo(picture())
    user.wait_text("Got the photo", after=3)
    user.photo(picture(color=(10, 200, 10)))
    user.wait_text("already have a job")
    user.say("/cancel")
    user.wait_text("Cancelled your job")


def test_cancel_running_job_then_worker_takes_next(make_bot, emulator: BotAPIEmulator, user: User):
    make_bot(image_size=384)  # big enough to still be running when /cancel arrives
    user.say("/start")
    user.photo(picture((300, 200)))
    user.wait_text("Got the photo")
    user.photo(picture((200, 200), (20, 20, 200)))
    user.wait_seen("Painting")
    user.say("/cancel")
    user.wait_text("Cancelled your job")
    user.wait_seen("Cancelled.")  # the status message says so too
    assert not user.results()

    # The worker is free again: another user's job goes through.
    other = User(emulator, 3003)
    other.say("/start")
    other.photo(picture((40, 30)))  # smaller than the output size: stays 40×30
    other.wait_text("Got the photo")
    other.photo(picture((40, 40), (20, 200, 20)))
    assert other.result_image(other.wait_result(timeout=RESULT_S)).size == (40, 30)
    assert not user.results()


def test_cancel_with_nothing_to_cancel_still_answers(make_bot, user: User):
    make_bot()
    user.say("/cancel")
    user.wait_text("nothing to cancel")
    user.say("/start")
    user.photo(picture())
    user.wait_text("Got the photo")
    user.say("/cancel")  # resets the half-done dialog
    user.wait_text("Cancelled. Send /start")
    user.photo(picture())
    user.wait_text("Got the photo", after=len(user.messages()) - 1)


def test_two_users_at_once_get_their_own_results(make_bot, emulator: BotAPIEmulator):
    make_bot(workers=2)
    wide, tall = User(emulator, 4001), User(emulator, 4002)
    for u in (wide, tall):
        u.say("/start")
    wide.photo(picture((160, 80)))
    tall.photo(picture((60, 120), (40, 200, 40)))
    wide.wait_text("Got the photo")
    tall.wait_text("Got the photo")
    wide.photo(picture((64, 64), (0, 0, 255)))
    tall.photo(picture((64, 64), (255, 255, 0)))
    assert wide.result_image(wide.wait_result()).size == (48, 24)
    assert tall.result_image(tall.wait_result()).size == (24, 48)
    assert len(wide.results()) == len(tall.results()) == 1


def test_queue_positions_move_for_everyone_waiting(make_bot, emulator: BotAPIEmulator):
    make_bot(image_size=256)
    users = [User(emulator, 5000 + n) for n in range(3)]
    for u in users:
        u.say("/start")
        u.photo(picture((120, 120)))
        u.wait_text("Got the photo")
    users[0].photo(picture(color=(0, 0, 200)))
    users[0].wait_seen("Painting")
    users[1].photo(picture(color=(0, 200, 0)))
    assert "next" in users[1].wait_seen("queue")
    users[2].photo(picture(color=(200, 200, 0)))
    users[2].wait_seen("position 2")
    # When the first job ends, the third user's message is edited to "next".
    users[2].wait_seen("You are next", timeout=120)
    for u in users:
        u.wait_result(timeout=180)


def test_429_on_send_photo_is_retried(make_bot, emulator: BotAPIEmulator, user: User):
    make_bot(first_look=False)  # the armed 429 is for the result's sendPhoto, not the draft's
    emulator.fail_next("sendPhoto", 429, retry_after=1)
    result = run_job(user, picture(), picture(color=(0, 0, 255)))
    assert result["photo"]
    failed = [c for c in emulator.calls("sendPhoto") if c.status == 429]
    assert failed, "the 429 was not exercised"
    ok = [c for c in emulator.calls("sendPhoto") if c.status == 200 and "rerun" in c.params.get("reply_markup", "")]
    assert ok and ok[0].time - failed[0].time >= 0.9  # waited retry_after


def test_5xx_on_send_photo_is_retried_with_backoff(make_bot, emulator: BotAPIEmulator, user: User):
    make_bot(first_look=False)  # the armed 502s are for the result's sendPhoto, not the draft's
    emulator.fail_next("sendPhoto", 502, description="Bad Gateway", times=2)
    assert run_job(user, picture(), picture(color=(0, 0, 255)))["photo"]


def test_not_modified_on_edit_is_ignored(make_bot, emulator: BotAPIEmulator, user: User):
    make_bot(edit_every=0.1)
    emulator.fail_next(
        "editMessageText",
        400,
        times=3,
        description=(
            "Bad Request: message is not modified: specified new message content and reply markup are "
            "exactly the same as a current content and reply markup of the message"
        ),
    )
    assert run_job(user, picture(), picture(color=(0, 0, 255)))["photo"]
    assert not [m for m in user.texts() if "went wrong" in m]


def test_blocked_user_ends_job_quietly_and_queue_goes_on(make_bot, emulator: BotAPIEmulator):
    app = make_bot(image_size=256)
    blocker, other = User(emulator, 6001), User(emulator, 6002)
    for u in (blocker, other):
        u.say("/start")
        u.photo(picture())
        u.wait_text("Got the photo")
    blocker.photo(picture(color=(0, 0, 200)))
    blocker.wait_seen("Painting")
    emulator.block_user(blocker.id)
    other.photo(picture(color=(0, 200, 0)))
    other.wait_result(timeout=RESULT_S)
    job = app.store.last_job(blocker.id)
    wait_until(lambda: app.store.get_job(job.id).status.value == "failed", what="blocked job ended", api=emulator)
    assert "user gone" in app.store.get_job(job.id).error


def test_first_get_updates_502_does_not_kill_polling(make_bot, emulator: BotAPIEmulator, user: User):
    emulator.fail_next("getUpdates", 502, description="Bad Gateway")
    emulator.fail_next("getMe", 502, description="Bad Gateway")
    make_bot()
    user.say("/start")
    user.wait_text("Hi!", timeout=REPLY_S)


# The token stays out of the log (the real setup_logging, a real failing telebot call): tests/unit/test_logs.py.
# The language tables (every English key has a Russian text, same placeholders): tests/unit/test_texts.py.
