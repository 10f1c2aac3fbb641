"""Telegram's own trouble gets its own words (issue 18): a redirect, a 5xx, a timeout from the Bot
API's file download or a send no longer ends in "Sorry, something went wrong".

The emulator answers requests with a bare HTTP status or a redirect on request (``answer_next``),
or stalls them (``stall_next``); the real bot, or the real ``Telegram`` wrapper, talks to it over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import telebot
from botkit import User, picture
from telebot import apihelper

from stylebot import texts
from stylebot.errors import TelegramError, Upstream
from stylebot.playground.emulator import BotAPIEmulator
from stylebot.tg import Telegram, use_api_url

ASK_STYLE = texts.t("en", "ask_style")
SOMETHING_WRONG = texts.t("en", "failed")


def file_id_of(message: dict) -> str:
    return message["photo"][-1]["file_id"]


def quick_retries(tg: Telegram) -> None:
    """Test-sized retries on a running bot's ``tg`` (its handlers and worker share it)."""
    tg.backoff, tg.read_timeout, tg.download_total, tg.download_attempts = 0.05, 1.0, 30.0, 3


@pytest.fixture
def tg(emulator: BotAPIEmulator) -> Iterator[Telegram]:
    saved = apihelper.API_URL, apihelper.FILE_URL
    use_api_url(emulator.base_url)
    try:
        yield Telegram(telebot.TeleBot(emulator.token, threaded=False), attempts=3, backoff=0.05, read_timeout=1.0)
    finally:
        apihelper.API_URL, apihelper.FILE_URL = saved


def test_the_wrapper_says_which_upstream_trouble_it_was(emulator: BotAPIEmulator, tg: Telegram, monkeypatch) -> None:
    fid = file_id_of(emulator.send_photo(9, picture((60, 40))))
    tg.download_attempts = 2
    # A redirect is reported, never followed: the URL carries the token.
    emulator.answer_next("file", 302, location=f"{emulator.base_url}/bot{emulator.token}/logOut", file_id=fid)
    with pytest.raises(TelegramError) as redirect:
        tg.download(fid)
    assert redirect.value.upstream is Upstream.REDIRECT and redirect.value.code == 302
    assert not emulator.calls("logOut")
    emulator.answer_next("file", 502, times=2, file_id=fid)
    with pytest.raises(TelegramError) as server:
        tg.download(fid)
    assert server.value.upstream is Upstream.SERVER
    emulator.stall_next("file", 100, times=2, file_id=fid)
    with pytest.raises(TelegramError) as stalled:
        tg.download(fid)
    assert stalled.value.upstream is Upstream.TIMEOUT
    # Method calls: a bare 5xx page, and answers that never come.
    emulator.answer_next("getMe", 503, times=3)
    with pytest.raises(TelegramError) as page:
        tg.call(tg.bot.get_me)
    assert page.value.upstream is Upstream.SERVER
    monkeypatch.setattr(apihelper, "READ_TIMEOUT", 1)  # telebot's (process-wide) read timeout for methods
    emulator.stall_next("getMe", 100, times=3)
    with pytest.raises(TelegramError) as late:
        tg.call(tg.bot.get_me)
    assert late.value.upstream is Upstream.TIMEOUT
    # A request's own fault is not upstream trouble.
    emulator.fail_next("getMe", 400, description="Bad Request: nope")
    with pytest.raises(TelegramError) as own:
        tg.call(tg.bot.get_me)
    assert own.value.upstream is None


def test_a_redirected_download_at_job_time_gets_its_own_message(emulator: BotAPIEmulator, make_bot) -> None:
    app = make_bot()
    quick_retries(app.tg)
    user = User(emulator, 1201)
    content = file_id_of(user.photo(picture((120, 80))))
    user.wait_text(ASK_STYLE)
    # The receipt check is done; the job's own download of the photo is redirected elsewhere.
    emulator.answer_next("file", 301, location="http://127.0.0.1:9/elsewhere", file_id=content)
    user.photo(picture((90, 90), (40, 40, 200)))
    user.wait_text(texts.t("en", "upstream_redirect"), timeout=60)
    assert SOMETHING_WRONG not in user.seen() and user.results() == []


def test_a_5xx_on_the_download_and_on_the_result_send_get_their_own_message(emulator: BotAPIEmulator, make_bot) -> None:
    # No previews and no first look: the first sendPhoto of a job is its result.
    app = make_bot(preview_every=10_000.0, preview_step=2.0, first_look=False)
    quick_retries(app.tg)
    user = User(emulator, 1202)
    content = file_id_of(user.photo(picture((120, 80))))
    user.wait_text(ASK_STYLE)
    emulator.answer_next("file", 502, times=3, file_id=content)  # every attempt of the job's download
    user.photo(picture((90, 90), (40, 40, 200)))
    down = texts.t("en", "upstream_server")
    user.wait_text(down, timeout=60)

    # Again; now the download works and the result's send meets 502 pages until the retries run out.
    asked = len(user.messages())
    user.photo(picture((120, 80)))
    user.wait_text("Got the photo.", after=asked)  # with a recent style now: the "recent styles" variant
    emulator.answer_next("sendPhoto", 502, times=app.tg.attempts)
    told = len(user.messages())
    user.photo(picture((90, 90), (40, 40, 200)))
    message = user.wait_text(down, timeout=120, after=told)
    assert message.get("text") == down  # said on its own, not inside "could not read your photo"
    assert SOMETHING_WRONG not in user.seen() and user.results() == []
