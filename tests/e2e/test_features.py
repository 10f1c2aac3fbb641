"""Settings, result buttons, recent styles, albums, live preview, privacy and quotas, over HTTP."""

from __future__ import annotations

import json

from botkit import TEST_SIZE, User, decode, picture, wait_idle, wait_until

from stylebot.playground.emulator import BotAPIEmulator


def first_job(user: User, content: bytes | None = None, style: bytes | None = None) -> dict:
    user.say("/start")
    user.wait_text("Send me the photo")
    user.photo(content or picture((120, 80)))
    user.wait_seen("Now send")
    user.photo(style or picture((64, 64), (30, 30, 220)))
    return user.wait_result()


def keyboard(message: dict) -> list[tuple[str, str]]:
    return [(b["text"], b["callback_data"]) for row in message["reply_markup"]["inline_keyboard"] for b in row]


def test_settings_change_the_next_job_and_show_in_its_caption(make_bot, user: User):
    make_bot()
    user.say("/settings")
    menu = user.wait_text("Settings")
    buttons = keyboard(menu)
    assert ("✓ 48 px", "set:size:48") in buttons  # the operator's default is selected
    assert ("✓ normal", "set:strength:normal") in buttons
    sizes = [data for _, data in buttons if data.startswith("set:size:")]
    assert sizes == ["set:size:48", "set:size:512", "set:size:768", "set:size:1024"]  # CPU: capped at 1024

    user.press(menu, "set:strength:strong")
    wait_until(
        lambda: ("✓ strong", "set:strength:strong") in keyboard(user.messages()[0]),
        what="the keyboard to show the new choice",
        api=user.api,
    )
    user.press(user.messages()[0], "set:colors:1")
    wait_until(lambda: any("Original colours: on" in t for t, _ in keyboard(user.messages()[0])), api=user.api)
    assert user.api.calls("answerCallbackQuery")

    result = first_job(user)
    assert "style strong" in result["caption"]
    assert "colours original" in result["caption"]


def test_stronger_and_weaker_rerun_without_uploading_again(make_bot, emulator: BotAPIEmulator, user: User):
    app = make_bot()
    first = first_job(user)
    downloads_before = len(emulator.calls("getFile"))
    wait_idle(app.store, user.id)  # the result shows a moment before its job is done
    user.press(first, user.button(first, "rerun:").replace("weaker", "stronger"))
    second = user.wait_result(2)
    assert "style strong" in second["caption"]
    wait_idle(app.store, user.id)  # the result shows a moment before its job is done
    user.press(second, user.button(second, "rerun:").replace("weaker", "stronger"))
    third = user.wait_result(3)
    assert "style ×4" in third["caption"]
    assert user.result_image(third).size == user.result_image(first).size
    # Re-runs reuse the stored file_ids: no new uploads, only the worker's downloads.
    assert len(emulator.calls("getFile")) - downloads_before == 4
    weaker = next(d for _, d in keyboard(first) if d.endswith(":weaker"))
    wait_idle(app.store, user.id)  # the result shows a moment before its job is done
    user.press(first, weaker)
    assert "style weak" in user.wait_result(4)["caption"]


def test_full_quality_file_is_the_png(make_bot, emulator: BotAPIEmulator, user: User):
    make_bot()
    result = first_job(user)
    user.press(result, user.button(result, "full:"))
    document = wait_until(lambda: [m for m in user.messages() if m.get("document")], what="the PNG", api=emulator)[0]
    assert document["document"]["file_name"].endswith(".png")
    png = decode(emulator.file_bytes(document["document"]["file_id"]))
    assert png.format == "PNG" and png.size == user.result_image(result).size == (TEST_SIZE, 32)


def test_another_style_keeps_the_photo_and_offers_recent_styles(make_bot, emulator: BotAPIEmulator, user: User):
    make_bot()
    result = first_job(user, content=picture((80, 120)))
    user.press(result, user.button(result, "restyle:"))
    offer = user.wait_text("recent styles")
    assert ("🎨 Style 1", "style:1") in keyboard(offer)
    user.photo(picture((64, 64), (220, 200, 30)))  # a new style: the photo is kept
    second = user.wait_result(2)
    assert user.result_image(second).size == (32, 48)


def test_recent_styles_are_one_tap(make_bot, emulator: BotAPIEmulator, user: User):
    make_bot()
    first_job(user, style=picture((64, 64), (10, 200, 10)))
    user.say("/start")
    user.photo(picture((100, 100)))
    offer = user.wait_text("recent styles", after=1)
    # The thumbnails are shown by file_id (no upload), numbered like the buttons.
    thumbs = emulator.calls("sendPhoto")[-1]
    assert thumbs.params.get("caption") == "1" and not thumbs.files
    user.press(offer, "style:1")
    second = user.wait_result(2)
    assert user.result_image(second).size == (TEST_SIZE, TEST_SIZE)


def test_album_of_two_is_photo_then_style(make_bot, emulator: BotAPIEmulator, user: User):
    make_bot()
    emulator.send_album(user.id, [picture((100, 50)), picture((64, 64), (0, 0, 255))])
    result = user.wait_result()
    assert user.result_image(result).size == (TEST_SIZE, 24)


def test_live_preview_replaces_the_status_message(make_bot, emulator: BotAPIEmulator, user: User):
    # Without the first look, which would otherwise be the photo that replaces the status message
    # (tests/e2e/test_first_look.py covers that); here the painting's own previews are checked.
    make_bot(image_size=128, preview_every=0.2, edit_every=0.2, first_look=False)
    first_job(user, content=picture((128, 96)))
    previews = [c for c in emulator.calls("sendPhoto") if "Painting" in (c.params.get("caption") or "")]
    assert previews, "no preview photo was sent"
    assert decode(previews[0].files["photo"]).size[0] <= 320  # small, cheap
    media = [json.loads(c.params["media"]) for c in emulator.calls("editMessageMedia") if c.status == 200]
    assert media and all("Painting" in m["caption"] for m in media)


def test_forget_deletes_everything(make_bot, emulator: BotAPIEmulator, user: User, tmp_path):
    app = make_bot()
    result = first_job(user)
    results_dir = tmp_path / "data" / "results"
    assert list(results_dir.glob("*.png"))
    user.say("/forget")
    user.wait_text("Deleted everything")
    assert app.store.last_job(user.id) is None
    assert app.store.recent_styles(user.id) == []
    assert not list(results_dir.glob("*.png"))
    user.press(result, user.button(result, "full:"))
    wait_until(
        lambda: [c for c in emulator.calls("answerCallbackQuery") if "out of date" in (c.params.get("text") or "")],
        what="stale button answer",
        api=emulator,
    )


def test_only_file_ids_and_results_are_stored(make_bot, user: User, tmp_path):
    make_bot()
    first_job(user)
    stored = sorted(p.relative_to(tmp_path / "data").as_posix() for p in (tmp_path / "data").rglob("*") if p.is_file())
    # The database, and per job only what the bot made: the result PNG and its timelapse GIF.
    job = user.results()[0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"].split(":")[1]
    results = {p for p in stored if p.startswith("results/")}
    assert results == {f"results/{job}.png", f"results/{job}.gif"}
    # Besides: the database, and the delivered-jobs ledger (digests of job ids only, never the ids).
    assert all(p.startswith("stylebot.sqlite3") or p == "delivered.ledger" for p in set(stored) - results)
    ledger = tmp_path / "data" / "delivered.ledger"
    assert not ledger.exists() or job.encode() not in ledger.read_bytes()


def test_rate_limit_says_when_to_come_back(make_bot, user: User):
    app = make_bot(rate_limit=2)
    first = first_job(user)
    wait_idle(app.store, user.id)  # the result shows a moment before its job is done
    user.press(first, user.button(first, "rerun:").replace("weaker", "stronger"))
    user.wait_result(2)
    wait_idle(app.store, user.id)  # the result shows a moment before its job is done
    user.press(first, next(d for _, d in keyboard(first) if d.endswith(":weaker")))
    assert "try again in" in user.wait_text("2 jobs per hour")["text"]
