"""Stalled and dropped transfers (issue 11): nobody waits on someone else's broken download.

The real bot (``stylebot.app.App``) or the real webhook app talks to the emulator over HTTP; the emulator
stalls or cuts file downloads on request (``stall_next``/``drop_next``). Timeouts are shortened on
the running bot's ``tg`` (production: read 30 s, 120 s per download) so the tests take seconds.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from botkit import REPLY_S, RESULT_S, User, deadline, picture, wait_until, weights_path
from rediskit import free_port, redis_server

from stylebot import texts
from stylebot.playground.emulator import BotAPIEmulator
from stylebot.tg import Telegram, TelegramError

START = texts.t("en", "start")[:40]
ASK_STYLE = texts.t("en", "ask_style")
BAD_DOWNLOAD = texts.t("en", "bad_download")


def shorten(tg: Telegram, read: float, total: float, attempts: int = 4) -> None:
    """Test-sized download limits on a running bot (its handlers and worker share this ``tg``)."""
    tg.read_timeout, tg.download_total, tg.download_attempts, tg.backoff = read, total, attempts, 0.1


def file_id_of(message: dict) -> str:
    return message["photo"][-1]["file_id"]


def test_download_drop_stall_and_size_cap(emulator: BotAPIEmulator) -> None:
    """Telegram.download on its own: a cut body and a stall are retried; too many, or too big, end in TelegramError."""
    import telebot

    from stylebot.tg import use_api_url

    use_api_url(emulator.base_url)
    tg = Telegram(telebot.TeleBot(emulator.token, threaded=False), backoff=0.05, read_timeout=1.0, download_total=30)
    fid = file_id_of(emulator.send_photo(7, picture((300, 200))))
    data = emulator.file_bytes(fid)
    emulator.drop_next("file")
    assert tg.download(fid) == data
    emulator.stall_next("file", 100, after=200)  # mid-body
    assert tg.download(fid) == data
    assert emulator.downloads(fid) == ["drop", "ok", "stall", "ok"]
    emulator.stall_next("file", 100, times=3)
    tg.download_attempts = 3
    with pytest.raises(TelegramError, match="failed after 3 attempts"):
        tg.download(fid)
    tg.download_max_bytes = len(data) - 1
    with pytest.raises(TelegramError, match="too big"):
        tg.download(fid)


def test_method_answer_cut_short_or_stalled_is_retried(emulator: BotAPIEmulator, monkeypatch) -> None:
    """A Bot API answer cut mid-body (ChunkedEncodingError) or stalled (read timeout) is retried, not fatal."""
    import telebot
    from telebot import apihelper

    from stylebot.tg import use_api_url

    use_api_url(emulator.base_url)
    monkeypatch.setattr(apihelper, "READ_TIMEOUT", 1)  # telebot's (process-wide) read timeout for methods
    tg = Telegram(telebot.TeleBot(emulator.token, threaded=False), backoff=0.05)
    emulator.drop_next("getMe")
    assert tg.call(tg.bot.get_me).id == emulator.bot_user["id"]
    emulator.stall_next("getMe", 100)
    assert tg.call(tg.bot.get_me).id == emulator.bot_user["id"]
    assert [c.method for c in emulator.calls()] == ["getMe"] * 4


def test_stall_at_receipt_does_not_hold_up_another_user(emulator: BotAPIEmulator, make_bot) -> None:
    # 1001 and 1005 shared a shard of the old ``user % 4`` dispatcher, and the download had no timeout.
    app = make_bot()
    shorten(app.tg, read=4.0, total=60.0)  # A's check takes ~16 s: four stalled attempts
    a, b = User(emulator, 1001), User(emulator, 1005)
    emulator.stall_next("file", 100, times=10)
    fid = file_id_of(a.photo(picture()))
    wait_until(lambda: emulator.downloads(fid), REPLY_S, what="A's receipt check to start downloading", api=emulator)
    b.say("/start")
    b.wait_text(START, timeout=REPLY_S)
    assert not any(BAD_DOWNLOAD in t for t in a.texts()), "B was answered only after A's download gave up"
    a.wait_text(BAD_DOWNLOAD, timeout=60)
    assert emulator.downloads(fid) == ["stall"] * 4
    assert not any(ASK_STYLE in t for t in a.texts())  # the dialog stayed at "send a photo"


def test_stall_at_job_time_ends_the_job_and_the_next_one_runs(emulator: BotAPIEmulator, make_bot) -> None:
    app = make_bot(workers=1)
    shorten(app.tg, read=1.0, total=10.0)
    a, b = User(emulator, 1001), User(emulator, 1002)
    content = file_id_of(a.photo(picture((120, 80))))
    a.wait_text(ASK_STYLE)
    # The receipt check is done; the job's own download of this photo stalls (the issue: 100 s).
    emulator.stall_next("file", 100, times=10, file_id=content)
    a.photo(picture((90, 90), (40, 40, 200)))
    b.photo(picture((80, 120), (40, 160, 40)))
    b.wait_text(ASK_STYLE)
    b.photo(picture((90, 90), (240, 220, 20)))
    failed = texts.t("en", "bad_content_later", reason=BAD_DOWNLOAD)
    a.wait_text(failed, timeout=60)
    b.wait_result(timeout=RESULT_S)  # the only worker moved on
    assert a.results() == []
    assert "stall" in emulator.downloads(content)


def test_drop_mid_body_at_job_time_is_retried(emulator: BotAPIEmulator, make_bot, user: User) -> None:
    app = make_bot()
    shorten(app.tg, read=5.0, total=60.0)
    content = file_id_of(user.photo(picture((120, 80))))
    user.wait_text(ASK_STYLE)
    emulator.drop_next("file", file_id=content)
    user.photo(picture((90, 90), (40, 40, 200)))
    user.wait_result(timeout=RESULT_S)
    assert emulator.downloads(content) == ["ok", "drop", "ok"]  # receipt, the job's cut try, its retry
    assert not any(texts.t("en", "failed") in t for t in user.seen())


# --- webhook: slow clients ------------------------------------------------------------------

SECRET = "s3cret-for-tests"


@dataclass
class Web:
    app: object
    url: str
    port: int


@pytest.fixture
def web(emulator: BotAPIEmulator, tmp_path: Path) -> Iterator[Web]:
    """``webhook.WebhookApp`` over a real redis-server, with test-sized client limits."""
    from stylebot.config import Config
    from stylebot.scaleout import webhook

    with redis_server(tmp_path / "redis") as redis_url:
        port = free_port()
        url = f"http://127.0.0.1:{port}/telegram"
        config = Config(
            token=emulator.token,
            api_url=emulator.base_url,
            data_dir=tmp_path / "data",
            weights=weights_path() or tmp_path / "none.pth",
            device="cpu",
            redis_url=redis_url,
            mode="webhook",
            webhook_url=url,
            webhook_secret=SECRET,
            port=port,
        )
        app = webhook.WebhookApp(config, host="127.0.0.1", read_timeout=1.0, request_deadline=4.0)
        app.start()
        try:
            yield Web(app, url, port)
        finally:
            app.stop()


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed this connection (end of stream or reset); reads what it sent."""
    sock.setblocking(False)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_webhook_slow_clients_cannot_pin_the_server(emulator: BotAPIEmulator, web: Web) -> None:
    user = User(emulator, 2001)
    slow = []
    for _ in range(200):  # half a header, then silence
        sock = socket.create_connection(("127.0.0.1", web.port), timeout=deadline(10))
        sock.sendall(b"POST /telegram HTTP/1.1\r\nHost: x\r\nContent-Le")
        slow.append(sock)
    liar = socket.create_connection(("127.0.0.1", web.port), timeout=deadline(10))
    liar.sendall(
        b"POST /telegram HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
        b"X-Telegram-Bot-Api-Secret-Token: " + SECRET.encode() + b'\r\n\r\n{"update_id"'
    )
    huge = socket.create_connection(("127.0.0.1", web.port), timeout=deadline(10))
    huge.sendall(b"POST /telegram HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n")

    # A byte every 0.4 s never trips the 1 s read timeout; the 4 s request deadline cuts it off.
    dribble_closed = threading.Event()

    def dribble() -> None:
        with socket.create_connection(("127.0.0.1", web.port), timeout=deadline(10)) as sock:
            for byte in b"POST /telegram HTTP/1.1\r\nHost: x\r\n" * 10:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break
                if closed_by_server(sock):
                    break
                sock.setblocking(True)
                time.sleep(0.4)
            else:
                return
            dribble_closed.set()

    dribbler = threading.Thread(target=dribble, daemon=True)
    dribbler.start()

    # A real update, POSTed directly while all of that is open: answered 200 at once.
    update = {
        "update_id": 777001,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": 2002, "type": "private"},
            "from": {"id": 2002, "is_bot": False, "first_name": "Bo"},
            "text": "/help",
        },
    }
    request = urllib.request.Request(
        web.url,
        json.dumps(update).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET},
    )
    with urllib.request.urlopen(request, timeout=deadline(5)) as response:
        assert response.status == 200
    # And one through Telegram's (the emulator's) webhook delivery, answered by the bot.
    user.say("/start")
    user.wait_text(START, timeout=REPLY_S)

    # The oversized body is refused without being read, and that connection closed.
    huge.settimeout(deadline(10))
    assert huge.recv(64).startswith(b"HTTP/1.1 413")
    wait_until(lambda: closed_by_server(huge), REPLY_S, what="the 413 connection to be closed", api=emulator)
    # Every stalled connection, and the lying Content-Length, is dropped by the read timeout.
    wait_until(lambda: all(closed_by_server(s) for s in slow), REPLY_S, what="200 stalled sockets closed", api=emulator)
    wait_until(lambda: closed_by_server(liar), REPLY_S, what="the short body's connection closed", api=emulator)
    assert dribble_closed.wait(deadline(20)), "a client dribbling its header was never cut off"
    # The direct update was handled too (Bo never wrote through the emulator, so its reply fails there).
    assert [c for c in emulator.calls("sendMessage") if str(c.params.get("chat_id")) == "2002"]
    for sock in [*slow, liar, huge]:
        sock.close()
