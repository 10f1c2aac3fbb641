"""The style gallery over HTTP: the sheet after the photo, picking, paging, uploads done once, stale presses.

Real App (handlers, SQLite, worker, engine at 48 px) and the real telebot client against the emulator.
Uploads are told from sends by ``file_id`` by the emulator's record of each call: an upload carries a file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from botkit import User, picture, wait_idle, wait_until

from stylebot import texts
from stylebot.chat.gallery import PAGE_SIZE
from stylebot.gallery.catalog import DEFAULT_DIR, load_gallery
from stylebot.playground.emulator import BotAPIEmulator

STYLES = load_gallery(DEFAULT_DIR)
PROMPT = texts.t("en", "ask_style")
STALE = texts.t("en", "stale_button")


def keyboard(message: dict) -> list[tuple[str, str]]:
    return [(b["text"], b["callback_data"]) for row in message["reply_markup"]["inline_keyboard"] for b in row]


def sends(emulator: BotAPIEmulator, caption: str) -> list:
    """The bot's successful sendPhoto calls with ``caption``; ``call.files`` is non-empty for an upload."""
    return [c for c in emulator.calls("sendPhoto") if c.status == 200 and c.params.get("caption") == caption]


def open_gallery(user: User, prompt: str = PROMPT, after: int = 0) -> dict:
    """Send a photo; the gallery sheet that asks for the style (a photo with the prompt as its caption)."""
    user.photo(picture((120, 80)))
    sheet = user.wait_text(prompt, after=after)
    assert sheet.get("photo"), "the prompt is the caption of the gallery sheet"
    return sheet


def message_now(user: User, message_id: int) -> dict:
    return next(m for m in user.messages() if m["message_id"] == message_id)


def answers(emulator: BotAPIEmulator) -> list[str]:
    return [c.params.get("text") or "" for c in emulator.calls("answerCallbackQuery")]


def test_gallery_pick_paints_with_that_style_and_credits_it(make_bot, emulator: BotAPIEmulator, user: User):
    app = make_bot()
    mosaic = next(s for s in STYLES if s.slug == "mosaic")
    sheet = open_gallery(user)
    buttons = keyboard(sheet)
    assert ("1. Mosaic", "gal:mosaic") in buttons
    assert len([d for _, d in buttons if d.startswith("gal:")]) == min(PAGE_SIZE, len(STYLES))
    user.press(sheet, "gal:mosaic")
    echo = user.wait_text("You picked: Mosaic")
    result = user.wait_result()
    assert mosaic.credit_text("en") in result["caption"]
    assert "Mosaic" in result["caption"]
    job = app.store.last_job(user.id)
    assert job.style_slug == "mosaic"
    # The job paints with the full-size gallery image, as Telegram holds it after the one upload.
    assert job.style_file_id == echo["photo"][-1]["file_id"]
    assert emulator.file_bytes(job.style_file_id) == mosaic.path.read_bytes()
    assert user.result_image(result).size == (48, 32)


def test_a_gallery_style_and_the_sheet_are_uploaded_once_across_two_users(make_bot, emulator: BotAPIEmulator):
    app = make_bot()
    a, b = User(emulator, 1001), User(emulator, 1002, lang="ru")
    a_sheet = open_gallery(a)
    a.press(a_sheet, "gal:woodcut")
    a.wait_result()
    b_prompt = texts.t("ru", "ask_style")
    b_sheet = open_gallery(b, b_prompt)
    woodcut = next(s for s in STYLES if s.slug == "woodcut")
    n = [s.slug for s in STYLES].index("woodcut") + 1
    assert (f"{n}. {woodcut.name('ru')}", "gal:woodcut") in keyboard(b_sheet)  # names in the user's language
    b.press(b_sheet, "gal:woodcut")
    b.wait_result()
    assert woodcut.credit_text("ru") in b.results()[0]["caption"]

    sheets = sends(emulator, PROMPT) + sends(emulator, b_prompt)
    assert [bool(c.files) for c in sheets] == [True, False]  # B's sheet went by file_id
    assert sheets[1].params["photo"] == a_sheet["photo"][-1]["file_id"]
    picks = sends(emulator, "You picked: Woodcut") + sends(emulator, f"Вы выбрали: {woodcut.name('ru')}")
    assert [bool(c.files) for c in picks] == [True, False]  # the full image: one upload for both users
    # Both jobs painted with the one uploaded file.
    assert (
        app.store.last_job(a.id).style_file_id
        == app.store.last_job(b.id).style_file_id
        == picks[0].response["result"]["photo"][-1]["file_id"]
    )


def test_pages_turn_in_place_and_a_style_from_page_two_works(make_bot, emulator: BotAPIEmulator, user: User):
    app = make_bot()
    assert len(STYLES) > PAGE_SIZE, "the shipped gallery has more than one page"
    sheet = open_gallery(user)
    assert ("▶", "galp:1") in keyboard(sheet)
    user.press(sheet, "galp:1")
    second = [s.slug for s in STYLES[PAGE_SIZE : 2 * PAGE_SIZE]]
    page2 = wait_until(
        lambda: (
            (m := message_now(user, sheet["message_id"]))
            and [d[4:] for _, d in keyboard(m) if d.startswith("gal:")] == second
            # the emulator records a call after applying it: the edit may show before its record
            and emulator.calls("editMessageMedia")
            and m
        ),
        what="the sheet edited to page 2 (and the edit recorded)",
        api=emulator,
    )
    assert page2["caption"] == PROMPT  # the prompt stays
    assert ("2/2", "galp:1") in keyboard(page2)
    assert page2["photo"][-1]["file_id"] != sheet["photo"][-1]["file_id"]  # another picture
    edits = emulator.calls("editMessageMedia")
    assert len(edits) == 1 and edits[0].files  # page 2 drawn and uploaded once
    user.press(page2, "galp:0")
    wait_until(
        lambda: (
            message_now(user, sheet["message_id"])["photo"][-1]["file_id"] == sheet["photo"][-1]["file_id"]
            and len(emulator.calls("editMessageMedia")) >= 2
        ),  # the edit's record comes just after it shows
        what="back to page 1 (and the edit recorded)",
        api=emulator,
    )
    assert not emulator.calls("editMessageMedia")[1].files  # page 1 again: by file_id
    user.press(message_now(user, sheet["message_id"]), "galp:1")
    wait_until(lambda: len(emulator.calls("editMessageMedia")) == 3, what="page 2 again", api=emulator)
    assert not emulator.calls("editMessageMedia")[2].files
    user.press(message_now(user, sheet["message_id"]), f"gal:{second[-1]}")
    result = user.wait_result()
    assert STYLES[-1].credit_text("en") in result["caption"]
    assert app.store.last_job(user.id).style_slug == second[-1]


def test_stale_gallery_presses_get_the_stale_answer(make_bot, emulator: BotAPIEmulator, user: User):
    app = make_bot()
    sheet = open_gallery(user)
    # A style no longer in the gallery (or a forged one), and a page that is not there.
    emulator.send_callback_query(user.id, sheet["message_id"], "gal:no_such_style")
    emulator.send_callback_query(user.id, sheet["message_id"], "galp:7")
    wait_until(lambda: answers(emulator).count(STALE) == 2, what="two stale answers", api=emulator)
    # A real style, but the dialog has moved on (/cancel): nothing waits for a style.
    user.say("/cancel")
    user.wait_text("Cancelled")
    user.press(sheet, "gal:mosaic")
    wait_until(lambda: answers(emulator).count(STALE) == 3, what="the stale answer after /cancel", api=emulator)
    # Another user pressing this user's sheet has no photo waiting: stale, and nothing else.
    emulator.send_callback_query(1002, sheet["message_id"], "gal:mosaic", chat_id=user.id)
    wait_until(lambda: answers(emulator).count(STALE) == 4, what="the stale answer to another user", api=emulator)
    assert app.store.last_job(user.id) is None
    assert not any("You picked" in (c.params.get("caption") or "") for c in emulator.calls("sendPhoto"))


def test_stronger_another_style_and_recent_styles_keep_the_gallery_style(
    make_bot, emulator: BotAPIEmulator, user: User
):
    app = make_bot()
    ink = next(s for s in STYLES if s.slug == "ink_wash")
    sheet = open_gallery(user)
    user.press(sheet, "gal:ink_wash")
    first = user.wait_result()
    wait_idle(app.store, user.id)  # the result shows a moment before its job is done
    user.press(first, user.button(first, "rerun:").replace("weaker", "stronger"))
    second = user.wait_result(2)
    assert "style strong" in second["caption"] and ink.credit_text("en") in second["caption"]
    # Another style: the gallery again (its own caption), then the recent styles, the pick among them.
    user.press(second, user.button(second, "restyle:"))

    def newer(fragment: str) -> dict | None:
        return next(
            (
                m
                for m in user.messages()
                if m["message_id"] > second["message_id"] and fragment in (m.get("text") or m.get("caption") or "")
            ),
            None,
        )

    offer = wait_until(lambda: newer("recent styles"), what="the recent styles offer", api=emulator)
    gallery_again = newer(texts.t("en", "gallery_caption"))  # sent before the offer
    assert gallery_again is not None and gallery_again["message_id"] < offer["message_id"]
    assert any(d == "gal:mosaic" for _, d in keyboard(gallery_again))
    user.press(offer, "style:1")
    third = user.wait_result(3)
    assert ink.credit_text("en") in third["caption"]  # a recent gallery style keeps its credit
    assert app.store.last_job(user.id).style_slug == "ink_wash"
    uploads = [c for c in emulator.calls("sendPhoto") if c.files and "You picked" in (c.params.get("caption") or "")]
    assert len(uploads) == 1


def test_styles_dir_setting_a_changed_file_is_uploaded_again_and_an_empty_one_asks_in_words(
    make_bot, emulator: BotAPIEmulator, tmp_path: Path
):
    folder = tmp_path / "styles"
    shutil.copytree(DEFAULT_DIR, folder)
    make_bot(styles_dir=folder)
    a, b = User(emulator, 1001), User(emulator, 1002)
    a.press(open_gallery(a), "gal:mosaic")
    a.wait_result()
    # The operator replaces the picture: the next pick uploads the new bytes (and the sheet is redrawn).
    (folder / "mosaic.jpg").write_bytes(picture((64, 64), (20, 200, 20)))
    b.press(open_gallery(b), "gal:mosaic")
    b.wait_result()
    picks = [c for c in emulator.calls("sendPhoto") if "You picked" in (c.params.get("caption") or "")]
    assert [bool(c.files) for c in picks] == [True, True]
    assert picks[1].files["photo"] == (folder / "mosaic.jpg").read_bytes()
    assert [bool(c.files) for c in sends(emulator, PROMPT)] == [True, True]


def test_without_a_gallery_the_bot_asks_for_a_style_in_words(
    make_bot, emulator: BotAPIEmulator, user: User, tmp_path: Path
):
    make_bot(styles_dir=tmp_path / "no-such-folder")
    user.photo(picture((120, 80)))
    user.wait_text(texts.t("en", "ask_style_no_gallery"))
    assert not emulator.calls("sendPhoto")
    user.photo(picture((64, 64), (30, 30, 220)))
    assert "\n" not in user.wait_result()["caption"]  # no credit line for a picture the user sent
