"""A broken ``STYLEBOT_STYLES_DIR`` manifest (issue 18): one log line at start naming the file and the
problem; the gallery then serves the valid entries, or is off. It never raises into a user's handler."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from PIL import Image

from stylebot.chat.gallery import Gallery
from stylebot.gallery.catalog import cached_gallery, inspect_gallery, load_gallery
from stylebot.store.sqlite_store import Store


def folder(tmp_path: Path, manifest: object | str, images: tuple[str, ...] = ("a.jpg", "b.jpg")) -> Path:
    for name in images:
        Image.new("RGB", (8, 8), "red").save(tmp_path / name)
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    (tmp_path / "manifest.json").write_text(text, encoding="utf-8")
    return tmp_path


def test_invalid_json_turns_the_gallery_off_and_says_where(tmp_path: Path) -> None:
    root = folder(tmp_path, '[{"slug": "a", "file": "a.jpg",}\n')
    report = inspect_gallery(root)
    assert report.styles == [] and load_gallery(root) == [] and cached_gallery(root) == []
    line = report.summary()
    assert line is not None and "\n" not in line
    assert str(root / "manifest.json") in line and "invalid JSON at line 1" in line and "the gallery is off" in line


@pytest.mark.parametrize(
    ("manifest", "problem"),
    [({"slug": "a", "file": "a.jpg"}, "is a JSON dict, not a list"), ("null", "is a JSON NoneType, not a list")],
)
def test_a_manifest_that_is_not_a_list_turns_the_gallery_off(tmp_path: Path, manifest: object, problem: str) -> None:
    report = inspect_gallery(folder(tmp_path, manifest))
    assert report.styles == [] and problem in (report.summary() or "")


def test_bad_entries_are_skipped_each_named_and_the_valid_ones_served(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        [
            {"slug": "a", "file": "a.jpg", "name": {"en": "A", "ru": "А"}},
            {"slug": "gone", "file": "gone.jpg"},
            {"slug": "typed", "file": 7},
            "b.jpg",
            {"slug": "badname", "file": "b.jpg", "name": 3},
            {"slug": 5, "file": "b.jpg"},
            {"slug": "escape", "file": "../outside.jpg"},
            {"slug": "a", "file": "b.jpg"},
            {"slug": "b", "file": "b.jpg", "credit": "Someone"},
        ],
    )
    (tmp_path.parent / "outside.jpg").write_bytes((root / "a.jpg").read_bytes())
    report = inspect_gallery(root)
    assert [s.slug for s in report.styles] == ["a", "b"]
    assert report.styles[0].name("ru") == "А" and report.styles[1].credit_text("en") == "Someone"
    line = report.summary() or ""
    for expected in (
        "entry 2 names a missing file 'gone.jpg'",
        'entry 3 has no "file" string',
        "entry 4 is str, not an object",
        'entry 5 (b.jpg): "name" is int, not a string or an object',
        'entry 6 (b.jpg): "slug" is int, not a string',
        "entry 7 names '../outside.jpg', outside the folder",
        "entry 8 repeats the slug 'a'",
        "serving 2 valid styles",
    ):
        assert expected in line, (expected, line)
    assert load_gallery(root) == report.styles


def test_a_sound_folder_has_nothing_to_say(tmp_path: Path) -> None:
    assert inspect_gallery(folder(tmp_path, [{"slug": "a", "file": "a.jpg"}])).summary() is None
    assert inspect_gallery(tmp_path / "absent").summary() is None


def test_the_chat_gallery_logs_one_line_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "styles").mkdir()
    root = folder(tmp_path / "styles", "{not json")
    store = Store(tmp_path / "db.sqlite")
    with caplog.at_level(logging.INFO, logger="stylebot"):
        gallery = Gallery(tg=None, store=store, directory=root)  # type: ignore[arg-type]  # no call reaches tg
        assert gallery.styles() == [] and gallery.pages() == 0
        assert gallery.show(1, "en", "caption") is False  # off: the caller asks in words
    lines = [r.getMessage() for r in caplog.records if "manifest" in r.getMessage()]
    assert len(lines) == 1 and str(root / "manifest.json") in lines[0] and "invalid JSON" in lines[0]
    store.close()
