"""The gallery's chat side in-process: button contract strings, the sheet picture, the cached catalog and
the credit line in a result's caption. No bot, no engine."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

from PIL import Image

from stylebot.chat import keyboards
from stylebot.chat.gallery import COLUMNS, GAP, THUMB, draw_sheet
from stylebot.gallery.catalog import DEFAULT_DIR, cached_gallery, find_style, load_gallery
from stylebot.jobs.job import Job
from stylebot.jobs.results import result_caption


def test_gallery_buttons_carry_slugs_names_and_paging() -> None:
    markup = keyboards.gallery_buttons("ru", [(1, "mosaic", "Мозаика"), (2, "woodcut", "Гравюра")], page=0, pages=2)
    rows = [[(b.text, b.callback_data) for b in row] for row in markup.keyboard]
    assert rows == [
        [("1. Мозаика", "gal:mosaic"), ("2. Гравюра", "gal:woodcut")],
        [("◀", "galp:1"), ("1/2", "galp:0"), ("▶", "galp:1")],
    ]
    one_page = keyboards.gallery_buttons("en", [(1, "mosaic", "Mosaic")], page=0, pages=1)
    assert [[b.callback_data for b in row] for row in one_page.keyboard] == [["gal:mosaic"]]
    assert keyboards.parse(keyboards.GALLERY, "gal:mosaic") == {"@": "gal", "slug": "mosaic"}
    assert keyboards.parse(keyboards.GALLERY, "galp:1") is None  # the page factory's, not a pick
    assert keyboards.parse(keyboards.GALLERY_PAGE, "gal:mosaic") is None


def test_sheet_is_a_grid_of_the_page_styles() -> None:
    paths = [s.path for s in load_gallery(DEFAULT_DIR)]
    full = Image.open(io.BytesIO(draw_sheet(paths[:6])))
    assert full.format == "JPEG"
    assert full.size == (COLUMNS * THUMB + (COLUMNS + 1) * GAP, 2 * THUMB + 3 * GAP)
    last = Image.open(io.BytesIO(draw_sheet(paths[6:10], first_number=7)))
    assert last.size == full.size  # 4 styles: still three columns, two rows
    assert draw_sheet(paths[:6]) == draw_sheet(paths[:6])  # same bytes, so the same hash and file id


def test_cached_gallery_rereads_a_changed_manifest(tmp_path: Path) -> None:
    folder = tmp_path / "styles"
    shutil.copytree(DEFAULT_DIR, folder)
    first = cached_gallery(folder)
    assert cached_gallery(folder) is first  # nothing changed: the same list, nothing read
    manifest = folder / "manifest.json"
    entries = json.loads(manifest.read_text(encoding="utf-8"))
    entries[0]["name"]["en"] = "Tiles"
    manifest.write_text(json.dumps(entries), encoding="utf-8")
    stat = manifest.stat()
    os.utime(manifest, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000))
    assert cached_gallery(folder)[0].name("en") == "Tiles"
    assert find_style(folder, entries[0]["slug"]) is not None
    assert find_style(folder, "no_such_style") is None


def test_result_caption_credits_a_gallery_style_in_the_users_language() -> None:
    job = Job(user_id=1, chat_id=1, content_file_id="c", style_file_id="s", size=48, lang="ru", style_slug="mosaic")
    mosaic = find_style(DEFAULT_DIR, "mosaic")
    assert mosaic is not None
    caption = result_caption(job, (48, 32), DEFAULT_DIR)
    assert caption.splitlines()[-1] == f"{mosaic.name('ru')} — {mosaic.credit_text('ru')}"
    job.style_slug = "removed_since"
    assert "\n" not in result_caption(job, (48, 32), DEFAULT_DIR)  # a style gone from the gallery: no line
