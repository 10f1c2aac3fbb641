""" "How it was painted": the timelapse under a result, over HTTP with the real engine and telebot client."""

from __future__ import annotations

import io

from botkit import REPLY_S, TEST_SIZE, User, picture, wait_until
from PIL import Image, ImageChops, ImageSequence, ImageStat

from stylebot.jobs import results
from stylebot.playground.emulator import BotAPIEmulator


def first_result(user: User) -> dict:
    user.say("/start")
    user.wait_text("Send me the photo")
    user.photo(picture((120, 80)))
    user.wait_seen("Now send")
    user.photo(picture((64, 64), (30, 30, 220)))
    return user.wait_result()


def gif_frames(data: bytes) -> list[Image.Image]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "GIF"
        return [frame.convert("RGB") for frame in ImageSequence.Iterator(image)]


def answers(emulator: BotAPIEmulator, query_id: str) -> list[str]:
    return [
        c.params.get("text") or ""
        for c in emulator.calls("answerCallbackQuery")
        if str(c.params.get("callback_query_id")) == query_id
    ]


def test_timelapse_button_sends_an_animation_of_the_painting(make_bot, emulator: BotAPIEmulator, user: User):
    make_bot()
    result = first_result(user)
    button = user.button(result, "lapse:")
    assert ("🎞 How it was painted", button) in [
        (b["text"], b["callback_data"]) for row in result["reply_markup"]["inline_keyboard"] for b in row
    ]

    user.press(result, button)
    message = wait_until(
        # the emulator records a call just after its message shows: wait for both
        lambda: emulator.calls("sendAnimation") and [m for m in user.messages() if m.get("animation")],
        timeout=REPLY_S,
        what="the timelapse animation (and its call recorded)",
        api=emulator,
    )[0]
    assert [c.status for c in emulator.calls("sendAnimation")] == [200]
    data = emulator.file_bytes(message["animation"]["file_id"])
    assert len(data) <= 2 * 1024 * 1024
    frames = gif_frames(data)
    assert len(frames) >= 10
    width, height = frames[0].size
    result_w, result_h = user.result_image(result).size
    assert (result_w, result_h) == (TEST_SIZE, 32)
    assert abs(width * result_h / result_w - height) <= 1  # the result's aspect, within rounding
    assert message["animation"]["width"] == width and message["animation"]["height"] == height
    # It ends on the painting that was delivered (held), and starts from something else: the photo.
    final = user.result_image(result).convert("RGB").resize((width, height))

    def distance(a: Image.Image, b: Image.Image) -> float:
        return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean)

    assert distance(frames[-1], final) < distance(frames[0], final)


def test_someone_elses_press_gets_a_short_answer_and_nothing_else(make_bot, emulator: BotAPIEmulator, user: User):
    make_bot()
    result = first_result(user)
    button = user.button(result, "lapse:")
    other = User(emulator, user.id + 1)
    # Counted by id, not by length: the job's status message may still be deleted after its result.
    last_id = max(m["message_id"] for m in user.messages())
    # Another user presses it where it sits (as in a group): the data is right, the presser is not.
    update = emulator.send_callback_query(other.id, result["message_id"], button, chat_id=user.id)
    query_id = update["callback_query"]["id"]
    short = wait_until(lambda: answers(emulator, query_id), what="the short answer to the other user", api=emulator)
    assert short[0].strip()  # a short answer ("out of date", or whose result it is), not a spinner
    # The owner's press after it is served: so the other press had its full chance to send something.
    user.press(result, button)
    wait_until(lambda: [m for m in user.messages() if m.get("animation")], what="the owner's animation", api=emulator)
    assert len(emulator.calls("sendAnimation")) == 1
    sent_since = [m for m in user.messages() if m["message_id"] > last_id]
    assert len(sent_since) == 1 and sent_since[0].get("animation"), sent_since
    assert other.messages() == []


def test_timelapse_gone_after_the_sweep_says_so(make_bot, emulator: BotAPIEmulator, user: User):
    app = make_bot()
    result = first_result(user)
    job_id = user.button(result, "lapse:").split(":", 1)[1]
    path = results.timelapse_path(app.config.results_dir, job_id)
    assert path.is_file()
    path.unlink()  # what the sweep does after RESULT_HOURS
    user.press(result, user.button(result, "lapse:"))
    user.wait_text("no longer stored")
    assert emulator.calls("sendAnimation") == []


def test_forget_deletes_the_timelapse_too(make_bot, emulator: BotAPIEmulator, user: User):
    app = make_bot()
    first_result(user)
    assert list(app.config.results_dir.glob("*.gif"))
    user.say("/forget")
    user.wait_text("Deleted everything")
    assert not list(app.config.results_dir.glob("*.gif"))
