"""The Bot API emulator against the real pyTelegramBotAPI client, over HTTP.

Why: every bot test trusts this server to answer like Telegram. If it drifted (a wrong JSON shape, a
missing error), the bot tests would pass against a fiction. These tests pin the shapes and errors the
bot relies on, using the same client the bot uses.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import requests
import telebot
from PIL import Image
from telebot import apihelper, types
from telebot.apihelper import ApiTelegramException

from stylebot.playground.emulator import NOT_MODIFIED, BotAPIEmulator

USER = 1000


def image_bytes(size: tuple[int, int] = (400, 300), fmt: str = "JPEG", color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, fmt)
    return out.getvalue()


@pytest.fixture
def bot(emulator: BotAPIEmulator) -> Iterator[telebot.TeleBot]:
    """A real TeleBot whose API and file URLs point at the emulator (restored afterwards)."""
    saved = apihelper.API_URL, apihelper.FILE_URL
    apihelper.API_URL = emulator.base_url + "/bot{0}/{1}"
    apihelper.FILE_URL = emulator.base_url + "/file/bot{0}/{1}"
    try:
        yield telebot.TeleBot(emulator.token, threaded=False)
    finally:
        apihelper.API_URL, apihelper.FILE_URL = saved


def test_get_me_and_unknown_method(emulator: BotAPIEmulator, bot: telebot.TeleBot) -> None:
    me = bot.get_me()
    assert me.is_bot and me.id == 123456
    answer = requests.get(f"{emulator.base_url}/bot{emulator.token}/sendDice")
    assert answer.status_code == 404
    assert answer.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    assert [c.method for c in emulator.unknown_calls()] == ["sendDice"]
    wrong_token = requests.get(f"{emulator.base_url}/bot1:nope/getMe")
    assert wrong_token.status_code == 401


def test_updates_text_photo_and_download(emulator: BotAPIEmulator, bot: telebot.TeleBot) -> None:
    emulator.send_text(USER, "/start", language_code="ru")
    emulator.send_photo(USER, image_bytes((1000, 500)), caption="hi")
    updates = bot.get_updates(offset=0, long_polling_timeout=0)
    assert [u.update_id for u in updates] == [1, 2]
    start, photo = updates[0].message, updates[1].message
    assert start.text == "/start" and start.entities[0].type == "bot_command"
    assert start.from_user.language_code == "ru" and start.chat.id == USER
    sizes = photo.photo
    assert [s.width for s in sizes] == sorted(s.width for s in sizes) and len(sizes) >= 3
    assert (sizes[-1].width, sizes[-1].height) == (1000, 500) and photo.caption == "hi"
    assert len({s.file_id for s in sizes}) == len(sizes)
    data = bot.download_file(bot.get_file(sizes[0].file_id).file_path)
    assert max(Image.open(io.BytesIO(data)).size) == 90
    # Confirming by offset drops the delivered updates.
    assert bot.get_updates(offset=3, long_polling_timeout=0) == []


def test_long_poll_wakes_on_new_update(emulator: BotAPIEmulator, bot: telebot.TeleBot) -> None:
    threading.Timer(0.2, emulator.send_text, (USER, "hello")).start()
    updates = bot.get_updates(timeout=5, long_polling_timeout=5)
    assert updates and updates[0].message.text == "hello"


def test_document_and_album(emulator: BotAPIEmulator, bot: telebot.TeleBot) -> None:
    emulator.send_document(USER, b"%PDF-1.4", "a.pdf", "application/pdf")
    album = emulator.send_album(USER, [image_bytes(), image_bytes(color="blue")])
    updates = bot.get_updates(long_polling_timeout=0)
    document = updates[0].message.document
    assert (document.file_name, document.mime_type, document.file_size) == ("a.pdf", "application/pdf", 8)
    assert emulator.file_bytes(document.file_id) == b"%PDF-1.4"
    groups = {u.message.media_group_id for u in updates[1:]}
    assert len(updates) == 3 and len(groups) == 1 and None not in groups
    assert album[0]["media_group_id"] == album[1]["media_group_id"]


def test_send_edit_delete_and_markup(emulator: BotAPIEmulator, bot: telebot.TeleBot) -> None:
    emulator.send_text(USER, "/start")
    keyboard = types.InlineKeyboardMarkup()
    keyboard.add(types.InlineKeyboardButton("Stronger", callback_data="stronger"))
    sent = bot.send_message(USER, "<b>Queue</b>: 1", parse_mode="HTML", reply_markup=keyboard)
    assert sent.text == "Queue: 1" and sent.reply_markup.keyboard[0][0].callback_data == "stronger"
    bot.edit_message_text("50%", USER, sent.message_id, reply_markup=keyboard)
    with pytest.raises(ApiTelegramException) as same:
        bot.edit_message_text("50%", USER, sent.message_id, reply_markup=keyboard)
    assert same.value.error_code == 400 and same.value.description == NOT_MODIFIED
    with pytest.raises(ApiTelegramException) as missing:
        bot.edit_message_text("x", USER, 999)
    assert missing.value.description == "Bad Request: message to edit not found"
    bot.edit_message_reply_markup(USER, sent.message_id)  # no markup: the keyboard goes away
    [state] = emulator.bot_messages(USER)
    assert state["text"] == "50%" and state["edits"] == 2 and "reply_markup" not in state
    bot.delete_message(USER, sent.message_id)
    assert emulator.bot_messages(USER) == []
    with pytest.raises(ApiTelegramException, match="chat not found"):
        bot.send_message(4242, "nobody wrote to me")


def test_photo_document_media_group_and_edit_media(emulator: BotAPIEmulator, bot: telebot.TeleBot) -> None:
    emulator.send_text(USER, "/start")
    png = image_bytes((64, 48), "PNG")
    photo = bot.send_photo(USER, png, caption="result")
    assert emulator.file_bytes(photo.photo[-1].file_id) == png  # kept verbatim for the tests
    assert (photo.photo[-1].width, photo.photo[-1].height) == (64, 48)
    bot.edit_message_caption("result, again", USER, photo.message_id)
    bot.edit_message_media(types.InputMediaPhoto(image_bytes((32, 24), "PNG"), caption="new"), USER, photo.message_id)
    [state] = emulator.bot_messages(USER)
    assert state["caption"] == "new" and state["photo"][-1]["width"] == 32 and state["edits"] == 2
    document = bot.send_document(USER, b"PNGDATA", visible_file_name="result.png")
    assert document.document.file_name == "result.png" and document.document.mime_type == "image/png"
    group = bot.send_media_group(USER, [types.InputMediaPhoto(png), types.InputMediaPhoto(photo.photo[-1].file_id)])
    assert len(group) == 2 and group[0].media_group_id == group[1].media_group_id
    sent = emulator.calls("sendPhoto")[0]
    assert set(sent.files) == {"photo"} and sent.params["chat_id"] == str(USER)


def test_photo_limits_and_big_file(emulator: BotAPIEmulator, bot: telebot.TeleBot) -> None:
    emulator.send_text(USER, "/start")
    with pytest.raises(ApiTelegramException, match="PHOTO_INVALID_DIMENSIONS"):
        bot.send_photo(USER, image_bytes((9000, 1500), "PNG"))
    with pytest.raises(ApiTelegramException, match="IMAGE_PROCESS_FAILED"):
        bot.send_photo(USER, b"not an image")
    big = emulator.send_document(USER, b"\0" * (20 * 1024 * 1024 + 1), "big.png", "image/png")
    with pytest.raises(ApiTelegramException, match="file is too big"):
        bot.get_file(big["document"]["file_id"])


def test_faults_blocked_user_and_rate_limit(emulator: BotAPIEmulator, bot: telebot.TeleBot) -> None:
    emulator.send_text(USER, "/start")
    emulator.fail_next("sendMessage", 429, retry_after=3)
    with pytest.raises(ApiTelegramException) as limited:
        bot.send_message(USER, "hi")
    assert limited.value.error_code == 429
    assert limited.value.result_json["parameters"] == {"retry_after": 3}
    assert limited.value.description == "Too Many Requests: retry after 3"
    bot.send_message(USER, "hi")  # only the next call failed
    emulator.fail_next("getUpdates", 502, times=2)
    for _ in range(2):
        with pytest.raises(ApiTelegramException, match="Bad Gateway"):
            bot.get_updates(long_polling_timeout=0)
    with pytest.raises(ValueError):
        emulator.fail_next("sendMesage")
    emulator.block_user(USER)
    with pytest.raises(ApiTelegramException) as blocked:
        bot.send_chat_action(USER, "typing")
    assert blocked.value.error_code == 403 and "blocked by the user" in blocked.value.description
    assert [c.status for c in emulator.calls("sendMessage")] == [429, 200]


def test_callback_query_and_answer(emulator: BotAPIEmulator, bot: telebot.TeleBot) -> None:
    emulator.send_text(USER, "/start")
    keyboard = types.InlineKeyboardMarkup().add(types.InlineKeyboardButton("Again", callback_data="again"))
    sent = bot.send_message(USER, "done", reply_markup=keyboard)
    with pytest.raises(ValueError):
        emulator.press_button(USER, sent.message_id, "nope")
    events = emulator.subscribe(USER)
    emulator.press_button(USER, sent.message_id, "again")
    query = bot.get_updates(long_polling_timeout=0)[-1].callback_query
    assert query.data == "again" and query.message.message_id == sent.message_id
    assert bot.answer_callback_query(query.id, "ok")
    assert events.get(timeout=1) == {"type": "callback_answer", "chat_id": USER, "text": "ok", "show_alert": False}
    with pytest.raises(ApiTelegramException, match="query ID is invalid"):
        bot.answer_callback_query(query.id)


def test_commands_json_and_form_bodies(emulator: BotAPIEmulator, bot: telebot.TeleBot) -> None:
    bot.set_my_commands([types.BotCommand("start", "Start"), types.BotCommand("cancel", "Cancel")])
    assert [c.command for c in bot.get_my_commands()] == ["start", "cancel"]
    bot.delete_my_commands()
    assert bot.get_my_commands() == []
    emulator.send_text(USER, "/start")
    url = f"{emulator.base_url}/bot{emulator.token}/sendMessage"
    as_json = requests.post(
        url,
        json={
            "chat_id": USER,
            "text": "json",
            "reply_markup": {"inline_keyboard": [[{"text": "a", "callback_data": "a"}]]},
        },
    )
    as_form = requests.post(url, data={"chat_id": USER, "text": "form"})
    assert as_json.json()["result"]["reply_markup"]["inline_keyboard"][0][0]["text"] == "a"
    assert as_form.json()["result"]["text"] == "form"
    assert [m["text"] for m in emulator.bot_messages(USER)] == ["json", "form"]


class _Hook(BaseHTTPRequestHandler):
    """A webhook receiver that fails its first request, to show that delivery is retried."""

    received: ClassVar[list[tuple[dict, str | None]]] = []
    fail_first = True

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status = 500 if type(self).fail_first else 200
        type(self).fail_first = False
        if status == 200:
            self.received.append((body, self.headers.get("X-Telegram-Bot-Api-Secret-Token")))
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_webhook_delivery_retry_and_redelivery(emulator: BotAPIEmulator, bot: telebot.TeleBot) -> None:
    _Hook.received, _Hook.fail_first = [], True
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=receiver.serve_forever, args=(0.05,), daemon=True).start()
    try:
        bot.set_webhook(f"http://127.0.0.1:{receiver.server_address[1]}/hook", secret_token="s3cret")
        assert bot.get_webhook_info().url.endswith("/hook")
        with pytest.raises(ApiTelegramException) as conflict:
            bot.get_updates(long_polling_timeout=0)
        assert conflict.value.error_code == 409
        emulator.send_text(USER, "via webhook")
        emulator.wait_for(lambda: _Hook.received, timeout=30, what="a webhook delivery")
        body, secret = _Hook.received[0]
        assert body["message"]["text"] == "via webhook" and secret == "s3cret"
        assert emulator.redeliver_last_update() == 200
        assert _Hook.received[1][0] == body
        bot.delete_webhook()
        assert bot.get_updates(long_polling_timeout=0) == []
    finally:
        receiver.shutdown()
        receiver.server_close()


def test_wait_for_reports_recent_calls(emulator: BotAPIEmulator, bot: telebot.TeleBot) -> None:
    bot.get_me()
    with pytest.raises(AssertionError, match=r"timed out waiting for a miracle[\s\S]*getMe 200"):
        emulator.wait_for(lambda: False, timeout=0.1, what="a miracle")


def test_allowed_updates_replies_and_deletes(emulator: BotAPIEmulator, bot: telebot.TeleBot) -> None:
    start = emulator.send_text(USER, "/start")
    reply = bot.send_message(
        USER,
        "pick",
        reply_parameters=types.ReplyParameters(start["message_id"]),
        reply_markup=types.InlineKeyboardMarkup().add(types.InlineKeyboardButton("A", callback_data="a")),
    )
    assert reply.reply_to_message.text == "/start"
    emulator.press_button(USER, reply.message_id, "a")
    only_queries = bot.get_updates(allowed_updates=["callback_query"], long_polling_timeout=0)
    assert [u.callback_query.data for u in only_queries] == ["a"]
    with pytest.raises(ApiTelegramException, match="message to delete not found"):
        bot.delete_message(USER, 999)
    with pytest.raises(ApiTelegramException, match="message to be replied not found"):
        bot.send_message(USER, "x", reply_parameters=types.ReplyParameters(999))
    with pytest.raises(ApiTelegramException, match="BUTTON_DATA_INVALID"):
        bot.send_message(
            USER,
            "x",
            reply_markup=types.InlineKeyboardMarkup().add(types.InlineKeyboardButton("long", callback_data="x" * 65)),
        )
    emulator.send_text(USER, "pending")
    bot.delete_webhook(drop_pending_updates=True)
    assert bot.get_webhook_info().pending_update_count == 0


def test_user_photo_is_upright_jpeg_and_odd_bytes_pass_through(emulator: BotAPIEmulator) -> None:
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.new("RGB", (200, 100), "green").save(rotated, "JPEG", exif=exif)
    photo = emulator.send_photo(USER, rotated.getvalue())["photo"]
    assert (photo[-1]["width"], photo[-1]["height"]) == (100, 200)  # Telegram applies the orientation
    assert Image.open(io.BytesIO(emulator.file_bytes(photo[-1]["file_id"]))).format == "JPEG"
    broken = emulator.send_photo(USER, b"\x89PNG garbage")["photo"]
    assert len(broken) == 1 and emulator.file_bytes(broken[0]["file_id"]) == b"\x89PNG garbage"


def test_emulator_is_a_package_of_small_parts_with_the_old_public_names(emulator: BotAPIEmulator) -> None:
    """Tests, the playground and benchmarks import ``stylebot.playground.emulator``; the split into parts
    by job must keep those names, and the method list the fault guard checks must still see every method."""
    import stylebot.playground.emulator as package
    from stylebot.playground.emulator import ApiError, Call

    assert Path(package.__file__).name == "__init__.py"
    for part in Path(package.__file__).parent.glob("*.py"):
        assert len(part.read_text().splitlines()) < 600, part.name
    assert issubclass(ApiError, Exception) and Call.__name__ == "Call"
    for method in ("getUpdates", "sendMessage", "editMessageMedia", "answerCallbackQuery", "setMyCommands"):
        emulator.fail_next(method, 500)
    with pytest.raises(ValueError, match="not a method"):
        emulator.fail_next("sendMesage")
