"""Distrust the server (issue 18, part 3): the real bot against an emulator that answers like an attacker.

The emulator answers getFile with hostile paths (``hostile_file_path``) or redirects a download or a
method call to another host (``redirect_next``); a second local HTTP server stands for that other host
and records whatever reaches it. The user must get a clear answer, and no request may follow the
hostile answer: no download, no ``logOut``, nothing to the other host.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from botkit import User, picture, wait_until

from stylebot import texts
from stylebot.playground.emulator import BotAPIEmulator

ASK_STYLE = texts.t("en", "ask_style")
BAD_SERVER_FILE = texts.t("en", "bad_server_file")
BAD_DOWNLOAD = texts.t("en", "bad_download")
GOT_PHOTO = ASK_STYLE.split(".")[0]  # "Got the photo": the start of every "now a style" prompt


class Elsewhere:
    """Another host on 127.0.0.1: records every request that reaches it (there should be none)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def elsewhere() -> Iterator[Elsewhere]:
    host = Elsewhere()
    yield host
    host.close()


def hostile_paths(elsewhere: Elsewhere) -> list[str]:
    return [
        "../logOut",
        "photos/../../logOut",
        "%2e%2e/logOut",
        f"{elsewhere.url}/steal.jpg",
        "//" + elsewhere.url.split("//", 1)[1] + "/steal.jpg",
        "/etc/passwd",
        "photos/file_1.jpg?x=../../logOut",
        "photos/file_1.jpg#frag",
        "photos/file\r\nX-Evil: 1.jpg",
        "photos/" + "a" * 400 + ".jpg",
    ]


def answers(user: User, text: str) -> int:
    return sum(text in t for t in user.texts())


def file_requests(api: BotAPIEmulator) -> list[str]:
    return [r for r in api.requests_seen() if r.startswith("/file/")]


def assert_nothing_followed(api: BotAPIEmulator, elsewhere: Elsewhere, downloads_before: int) -> None:
    assert elsewhere.seen == [], "a request reached another host"
    assert file_requests(api)[downloads_before:] == [], "a hostile path was fetched"
    assert api.calls("logOut") == [] and api.calls("close") == []
    assert api.unknown_calls() == []
    assert not any("logout" in r.lower() or "/etc/" in r for r in api.requests_seen())


def test_hostile_getfile_paths_at_receipt_get_a_clear_answer_and_no_request(
    emulator: BotAPIEmulator, make_bot, elsewhere: Elsewhere
) -> None:
    make_bot()
    user = User(emulator, 1801)
    for n, path in enumerate(hostile_paths(elsewhere)):
        downloads = len(file_requests(emulator))
        emulator.hostile_file_path(path)
        user.photo(picture((100, 80), (20 * n, 90, 200)))
        wait_until(
            lambda n=n: answers(user, BAD_SERVER_FILE) == n + 1, 60, what=f"the answer to {path!r}", api=emulator
        )
        assert_nothing_followed(emulator, elsewhere, downloads)
    assert not any(ASK_STYLE in t for t in user.texts())  # no photo was taken from a hostile answer


def test_a_hostile_path_at_job_time_fails_that_job_only(emulator: BotAPIEmulator, make_bot, elsewhere) -> None:
    make_bot()
    user = User(emulator, 1802)
    content = user.photo(picture((120, 80)))["photo"][-1]["file_id"]
    user.wait_text(ASK_STYLE)
    # The receipt check passed; the job's own getFile for this photo now gets a hostile answer.
    emulator.hostile_file_path("../logOut", file_id=content)
    downloads = len(file_requests(emulator))
    user.photo(picture((90, 90), (40, 40, 200)))
    user.wait_text(texts.t("en", "bad_content_later", reason=BAD_SERVER_FILE), timeout=60)
    assert user.results() == []
    # The style's receipt check is the only download after the hostile answer was armed.
    assert len(file_requests(emulator)[downloads:]) == 1
    assert_nothing_followed(emulator, elsewhere, len(file_requests(emulator)))
    # The bot is fine: the next photo and style make a result.
    user.photo(picture((120, 80), (200, 200, 40)))
    wait_until(lambda: answers(user, GOT_PHOTO) == 2, 60, what="the bot to take the next photo", api=emulator)
    user.photo(picture((90, 90), (40, 40, 200)))
    user.wait_result(timeout=90)


def test_redirects_to_another_host_are_not_followed(emulator: BotAPIEmulator, make_bot, elsewhere) -> None:
    make_bot()
    user = User(emulator, 1803)
    # A download answered "302, go elsewhere" (with the token in the new URL, as a thief would ask).
    emulator.redirect_next("file", f"{elsewhere.url}/file/bot{emulator.token}/photos/file_1.jpg")
    user.photo(picture((100, 80)))
    user.wait_text(BAD_DOWNLOAD)
    # A method call (getFile) answered the same way.
    emulator.redirect_next("getFile", f"{elsewhere.url}/bot{emulator.token}/getFile")
    user.photo(picture((100, 80), (30, 200, 30)))
    wait_until(lambda: answers(user, BAD_DOWNLOAD) == 2, 60, what="the answer to a redirected getFile", api=emulator)
    assert elsewhere.seen == []
    assert not any(ASK_STYLE in t for t in user.texts())
