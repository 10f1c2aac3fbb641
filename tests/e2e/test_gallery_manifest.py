"""The real bot with a broken ``STYLEBOT_STYLES_DIR`` manifest (issue 18): one log line at start, and a
user's photo is answered (the valid styles, or the prompt in words), never "something went wrong"."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from botkit import User, picture
from PIL import Image

from stylebot import texts
from stylebot.playground.emulator import BotAPIEmulator


def styles_dir(tmp_path: Path, manifest: str) -> Path:
    root = tmp_path / "styles"
    root.mkdir()
    for name, colour in (("one.jpg", "red"), ("two.jpg", "blue")):
        Image.new("RGB", (64, 64), colour).save(root / name)
    (root / "manifest.json").write_text(manifest, encoding="utf-8")
    return root


def manifest_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "gallery manifest" in r.getMessage()]


def test_invalid_json_turns_the_gallery_off_with_one_line(
    make_bot, emulator: BotAPIEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = styles_dir(tmp_path, '[{"slug": "one", "file": "one.jpg"},')
    with caplog.at_level(logging.WARNING, logger="stylebot"):
        make_bot(styles_dir=root)
        user = User(emulator, 1301)
        user.photo(picture((120, 80)))
        user.wait_text(texts.t("en", "ask_style_no_gallery"))
    assert texts.t("en", "handler_failed") not in user.texts()
    lines = manifest_lines(caplog)
    assert len(lines) == 1 and str(root / "manifest.json") in lines[0] and "invalid JSON" in lines[0]


def test_bad_entries_are_skipped_and_the_valid_ones_offered(
    make_bot, emulator: BotAPIEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = [
        {"slug": "one", "file": "one.jpg", "name": "One"},
        {"slug": "missing", "file": "missing.jpg"},
        {"slug": "two", "file": "two.jpg", "name": ["not", "text"]},
        {"slug": "two-ok", "file": "two.jpg", "name": "Two"},
    ]
    root = styles_dir(tmp_path, json.dumps(manifest))
    with caplog.at_level(logging.WARNING, logger="stylebot"):
        make_bot(styles_dir=root)
        user = User(emulator, 1302)
        user.photo(picture((120, 80)))
        sheet = user.wait_text(texts.t("en", "ask_style"))
    buttons = [
        b["callback_data"]
        for row in sheet["reply_markup"]["inline_keyboard"]
        for b in row
        if b["callback_data"].startswith("gal:")
    ]
    assert buttons == ["gal:one", "gal:two-ok"]
    lines = manifest_lines(caplog)
    assert len(lines) == 1
    assert "missing file 'missing.jpg'" in lines[0] and '"name" is list' in lines[0] and "serving 2" in lines[0]
