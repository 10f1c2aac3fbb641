"""A result's buttons work the moment the result is shown (found by ``bin/test --busy``, issue 18).

The worker used to send the result, then tidy up (the ledger, the status message, a sweep of old
files) and only then record the job done. A press on the result's "Stronger" in between is
refused with "You already have a job in the queue": the job whose result the user is looking at
still counts as theirs. Idle, the gap is a few milliseconds; on a busy machine it is seconds,
and test_gallery's "Stronger" right after a result met it. Here the tidy-up is made slow on
purpose (the ledger note after delivery waits on the press), so the gap is always there; the
handlers know the job whose result's button was pressed (``Handlers.submit(shown_from=...)``).
"""

from __future__ import annotations

import threading

import pytest
from botkit import User, picture, wait_until

from stylebot import texts
from stylebot.jobs import run
from stylebot.playground.emulator import BotAPIEmulator


def test_stronger_pressed_as_soon_as_the_result_shows_makes_a_second_job(
    make_bot, emulator: BotAPIEmulator, user: User, monkeypatch: pytest.MonkeyPatch
):
    pressed = threading.Event()
    note = run._note_delivered

    def note_after_the_press(ctx, job):  # the step between the result shown and DONE, held until the press
        pressed.wait(30)
        return note(ctx, job)

    monkeypatch.setattr(run, "_note_delivered", note_after_the_press)
    make_bot()
    user.photo(picture((120, 80)))
    user.wait_text("Got the photo")
    user.photo(picture((64, 64), (20, 20, 220)))
    first = user.wait_result()
    before = len(user.messages())
    user.press(first, user.button(first, "rerun:").replace("weaker", "stronger"))
    # The press has been handled once the bot answered it (a job queued, or the refusal).
    refused = texts.t("en", "already_queued")
    wait_until(
        lambda: len(emulator.calls("answerCallbackQuery")) >= 1 or any(refused in t for t in user.texts()),
        what="the press to be handled",
        api=emulator,
    )
    pressed.set()
    assert not any(refused in t for t in user.texts()[before - 1 :]), user.texts()
    user.wait_result(2)
