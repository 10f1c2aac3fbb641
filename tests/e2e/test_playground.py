"""The playground's chat page in a real browser (Playwright driving Debian's Chromium).

Why: the page is the first thing a newcomer sees, and only a browser shows that uploads, live edits,
photos and inline buttons really work. Two tests: one with a tiny scripted bot written here (so the
page is tested on its own), and one with the real bot (``main.py --playground``), which also makes the
README's screenshot.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import telebot
from botkit import REPLY_S, RESULT_S, deadline, wait_until
from PIL import Image, ImageDraw
from telebot import apihelper, types

from stylebot.playground.server import USER_ID, Playground

try:
    from playwright import sync_api
except ImportError:  # a skip per test (not at collection), so CI's "no skips for tools" rule sees it
    sync_api = None

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "ci-artifacts"
pytestmark = [
    pytest.mark.skipif(sync_api is None, reason="playwright is not installed (pip install playwright)"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
]


def picture(path: Path, size: tuple[int, int], colors: tuple[str, str]) -> Path:
    """A small two-colour test picture (stripes, so a style has something to transfer)."""
    image = Image.new("RGB", size, colors[0])
    for x in range(0, size[0], 8):
        image.paste(colors[1], (x, 0, x + 4, size[1]))
    image.save(path, "PNG")
    return path


def landscape(path: Path, size: tuple[int, int] = (96, 64)) -> Path:
    """A tiny sky-sun-hills picture: a content photo that still reads after repainting at 64 px."""
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    for y in range(height):
        draw.line((0, y, width, y), fill=(90 + y, 150 + y, 235))
    draw.ellipse((width * 0.6, height * 0.1, width * 0.85, height * 0.45), fill=(255, 210, 60))
    draw.polygon(
        [(0, height), (0, height * 0.65), (width * 0.4, height * 0.5), (width, height * 0.75), (width, height)],
        fill=(40, 130, 60),
    )
    image.save(path, "PNG")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def open_page(browser: sync_api.Browser, url: str, locale: str = "en-US") -> sync_api.Page:
    page = browser.new_context(locale=locale, viewport={"width": 720, "height": 900}).new_page()
    page.set_default_timeout(deadline(REPLY_S) * 1000)  # ms
    page.goto(url)
    return page


def loaded_images(page: sync_api.Page, selector: str) -> int:
    """How many images matching ``selector`` have actually been decoded by the browser."""
    return page.eval_on_selector_all(selector, "imgs => imgs.filter(i => i.complete && i.naturalWidth > 0).length")


RESULT_IDS = """button => [...document.querySelectorAll('.msg.bot')]
    .filter(m => [...m.querySelectorAll('img')].some(i => i.complete && i.naturalWidth > 0))
    .filter(m => [...m.querySelectorAll('.keyboard button')].some(b => b.textContent.includes(button)))
    .map(m => Number(m.dataset.id))"""


def wait_result(page: sync_api.Page, after: int = 0, button: str = "Stronger", timeout: float = REPLY_S) -> int:
    """Wait for a result: a bot message newer than ``after`` with a decoded image and a ``button``
    (previews and status messages don't count); returns its message id."""
    limit = deadline(timeout)
    give_up = time.monotonic() + limit
    while not (ids := [i for i in page.evaluate(RESULT_IDS, button) if i > after]):
        assert time.monotonic() < give_up, f"no result with a {button!r} button after {limit:g} s"
        page.wait_for_timeout(200)  # the poll interval (the page's own clock), not a wait for an event
    return max(ids)


def press(page: sync_api.Page, message_id: int, button: str = "Stronger") -> None:
    page.locator(f".msg.bot[data-id='{message_id}'] .keyboard button", has_text=button).click()


# ---------------------------------------------------------------------- the page with a scripted bot


def scripted_bot(token: str) -> telebot.TeleBot:
    """A bot with the real bot's dialog shape: greet, content, style, an edited status, a result with
    a "Stronger" button, and a second result when it is pressed."""
    bot = telebot.TeleBot(token, threaded=False)
    photos: dict[int, int] = {}
    stronger = types.InlineKeyboardMarkup().add(types.InlineKeyboardButton("💪 Stronger", callback_data="stronger"))

    def result(chat_id: int, color: str) -> None:
        out = io.BytesIO()
        Image.new("RGB", (96, 64), color).save(out, "PNG")
        bot.send_photo(chat_id, out.getvalue(), caption="Done", reply_markup=stronger)

    @bot.message_handler(commands=["start"])
    def start(message: types.Message) -> None:
        photos[message.chat.id] = 0
        greeting = "Пришлите фото" if message.from_user.language_code == "ru" else "Send me the content photo"
        bot.send_message(message.chat.id, greeting)

    @bot.message_handler(content_types=["photo", "document"])
    def picture_received(message: types.Message) -> None:
        photos[message.chat.id] = photos.get(message.chat.id, 0) + 1
        if photos[message.chat.id] == 1:
            bot.send_message(message.chat.id, "Now send the style picture")
            return
        status = bot.send_message(message.chat.id, "Queued: position 1")
        bot.send_chat_action(message.chat.id, "upload_photo")
        bot.edit_message_text("Working: 50%", message.chat.id, status.message_id)
        result(message.chat.id, "navy")

    @bot.callback_query_handler(func=lambda query: query.data == "stronger")
    def again(query: types.CallbackQuery) -> None:
        bot.answer_callback_query(query.id, "Making it stronger")
        result(query.message.chat.id, "maroon")

    return bot


@pytest.fixture
def playground_with_bot() -> Iterator[Playground]:
    saved = apihelper.API_URL, apihelper.FILE_URL
    with Playground(port=0) as pg:
        apihelper.API_URL = pg.api_url + "/bot{0}/{1}"
        apihelper.FILE_URL = pg.api_url + "/file/bot{0}/{1}"
        bot = scripted_bot(pg.token)
        thread = threading.Thread(target=bot.polling, kwargs={"non_stop": True, "long_polling_timeout": 1}, daemon=True)
        thread.start()
        try:
            yield pg
        finally:
            bot.stop_polling()
            thread.join(timeout=deadline(5))
            apihelper.API_URL, apihelper.FILE_URL = saved


def test_page_with_scripted_bot(browser: sync_api.Browser, playground_with_bot: Playground, tmp_path: Path) -> None:
    pg = playground_with_bot
    page = open_page(browser, pg.page_url)
    assert page.get_attribute("#text-input", "placeholder") == "Type a message or /command"
    page.fill("#text-input", "/start")
    page.click("#send-button")
    page.locator(".msg.bot", has_text="content photo").wait_for()
    assert page.locator(".msg.user", has_text="/start").count() == 1

    page.set_input_files("#photo-input", str(picture(tmp_path / "content.png", (120, 80), ("white", "black"))))
    page.locator(".msg.bot", has_text="style picture").wait_for()
    page.set_input_files("#file-input", str(picture(tmp_path / "style.png", (60, 60), ("yellow", "blue"))))
    page.locator(".msg.user a[download='style.png']").wait_for()  # sent as a file, shown as a link
    first = wait_result(page)
    status = page.locator(".msg.bot", has_text="Working: 50%")
    assert "edited" in status.inner_text()  # the live edit replaced "Queued"
    assert page.locator(".msg.bot", has_text="Queued").count() == 0

    press(page, first)
    second = wait_result(page, after=first)
    assert loaded_images(page, ".msg.bot img") == 2 and second > first
    page.locator("#toast", has_text="Making it stronger").wait_for()
    [answer] = pg.emulator.calls("answerCallbackQuery")
    assert answer.status == 200
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "playground-scripted.png"))


def test_page_speaks_russian(browser: sync_api.Browser, playground_with_bot: Playground) -> None:
    page = open_page(browser, playground_with_bot.page_url, locale="ru-RU")
    assert page.get_attribute("#text-input", "placeholder") == "Сообщение или /команда"
    page.get_by_role("button", name="/start").click()
    page.locator(".msg.bot", has_text="Пришлите фото").wait_for()  # the bot saw language_code "ru"


def test_history_survives_reload(browser: sync_api.Browser, playground_with_bot: Playground) -> None:
    playground_with_bot.emulator.send_text(USER_ID, "/start")  # sent before the page is open
    wait_until(
        lambda: playground_with_bot.emulator.bot_messages(USER_ID),
        timeout=REPLY_S,
        what="the greeting",
        api=playground_with_bot.emulator,
    )
    page = open_page(browser, playground_with_bot.page_url)
    page.locator(".msg.bot", has_text="content photo").wait_for()
    assert requests.get(playground_with_bot.page_url + "file/nope").status_code == 404


# ---------------------------------------------------------------------- the real bot


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main_supports_playground() -> bool:
    if not (ROOT / "main.py").exists():
        return False
    help_text = subprocess.run(
        [sys.executable, "main.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=deadline(60),
        check=False,
    )
    return "--playground" in help_text.stdout


def save_screenshot(page: sync_api.Page) -> None:
    """The CI artifact at full size; a small copy for the README (kept well under 200 KB)."""
    ARTIFACTS.mkdir(exist_ok=True)
    full = ARTIFACTS / "playground.png"
    page.set_viewport_size({"width": 720, "height": 1500})  # the whole conversation in view
    page.wait_for_timeout(300)
    page.screenshot(path=str(full))
    small = Image.open(full).convert("RGB")
    small.thumbnail((480, 1000))
    small.quantize(colors=128).save(ARTIFACTS / "playground-small.png", optimize=True)
    if os.environ.get("STYLEBOT_UPDATE_SCREENSHOT"):  # refresh the README's picture on purpose only
        small.quantize(colors=128).save(ROOT / "docs" / "playground.png", optimize=True)


@pytest.fixture
def real_bot_playground(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """``main.py --playground`` in a subprocess, as a newcomer runs it; yields (page URL, process)."""
    # Was a skip ("not written yet"): main.py losing --playground would have gone unnoticed.
    assert main_supports_playground(), "main.py --help does not offer --playground"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_API_URL")}
    env.update(STYLEBOT_IMAGE_SIZE="64", STYLEBOT_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    log_path = tmp_path / "bot.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "main.py", "--playground", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:

        def page_up() -> bool:
            assert process.poll() is None, "main.py --playground exited:\n" + log_path.read_text()
            try:
                return requests.get(url, timeout=deadline(2)).ok
            except requests.ConnectionError:
                return False

        wait_until(page_up, 60, "the playground page to come up")
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        print(log_path.read_text()[-3000:])  # shown by pytest on failure


def test_real_bot_in_the_playground(
    browser: sync_api.Browser, real_bot_playground: tuple[str, subprocess.Popen], tmp_path: Path
) -> None:
    url, process = real_bot_playground
    page = open_page(browser, url)
    page.fill("#text-input", "/start")
    page.click("#send-button")
    bot_messages = page.locator(".msg.bot")
    bot_messages.first.wait_for(timeout=deadline(REPLY_S) * 1000)  # the greeting asks for the content

    replies = bot_messages.count()
    page.set_input_files("#photo-input", str(landscape(tmp_path / "content.png")))
    bot_messages.nth(replies).wait_for(timeout=deadline(REPLY_S) * 1000)  # it asks for the style
    replies = bot_messages.count()
    page.set_input_files("#photo-input", str(picture(tmp_path / "style.png", (64, 64), ("orange", "navy"))))
    bot_messages.nth(replies).wait_for(timeout=deadline(REPLY_S) * 1000)  # the queue acknowledgement
    first = wait_result(page, timeout=RESULT_S)
    press(page, first)
    wait_result(page, after=first, timeout=RESULT_S)
    save_screenshot(page)

    process.send_signal(signal.SIGINT)  # Ctrl-C stops bot, page and emulator
    assert process.wait(timeout=deadline(15)) in (0, 130), "main.py --playground did not exit cleanly on Ctrl-C"
