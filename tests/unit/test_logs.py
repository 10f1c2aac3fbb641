"""The bot's logging setup keeps the token out of the log, even when a request URL (which carries it) is logged.

Run in a fresh Python process, as the bot runs: telebot installs its own stderr
handler at import time, which only a whole process's stderr shows. The process
calls the emulator through telebot (token in every URL), then makes a real call
fail with the URL in the exception, and logs it the ways the bot's code does.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from botkit import ROOT

from stylebot.logs import setup_logging
from stylebot.playground.emulator import BotAPIEmulator

#: What the bot process does, in short: the real setup_logging, then telebot calls that leave traces.
SCRIPT = textwrap.dedent("""
    import importlib, logging, sys
    import telebot
    from stylebot.tg import Telegram, TelegramError, use_api_url

    module, token, base_url = sys.argv[1:4]
    importlib.import_module(module).setup_logging(token, level=logging.DEBUG)
    use_api_url(base_url)
    bot = telebot.TeleBot(token)
    bot.get_me()  # works; urllib3 and telebot see the URL (with the token) at DEBUG
    print("ready", flush=True)
    sys.stdin.readline()  # the test closes the emulator now
    try:
        bot.get_me()
    except Exception as exc:
        print("token-in-error" if token in str(exc) else "no-token-in-error", flush=True)
        log = logging.getLogger("stylebot.chat.routing")
        log.error("getMe failed: %s", exc)
        log.exception("unexpected error in a handler")
        logging.getLogger("TeleBot").error("Threaded polling exception: %s", exc)
    try:
        Telegram(bot, attempts=2, backoff=0.01).call(bot.get_me)
    except TelegramError as exc:
        logging.getLogger("stylebot.jobs.run").warning("giving up: %s", exc)
    print("done", flush=True)
""")


def test_bot_logging_never_shows_the_token(emulator: BotAPIEmulator) -> None:
    token, secret = emulator.token, emulator.token.split(":", 1)[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, setup_logging.__module__, token, emulator.base_url],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None and proc.stderr is not None
        first = proc.stdout.readline()
        assert first.strip() == "ready", (first, proc.stderr.read() if proc.poll() is not None else "")
        emulator.close()  # the next call is refused: requests puts the URL, token included, in the error
        out, err = proc.communicate("go\n", timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.split() == ["token-in-error", "done"], out  # the logged errors did carry the token
    assert "getMe failed" in err and "unexpected error in a handler" in err and "giving up" in err, err
    assert "ConnectionError" in err, err  # the traceback was logged, redacted
    assert "<token>" in err, err
    assert token not in err and secret not in err, err
