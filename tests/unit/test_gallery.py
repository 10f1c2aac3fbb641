"""The generated style gallery: deterministic, textured, shipped with a complete manifest, readable by the
catalog. Torch-free and fast: generators run at thumbnail size here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylebot.gallery import GalleryStyle, load_gallery
from stylebot.gallery.generate import DEFAULT_OUT, GENERATORS, MAX_BYTES, STYLES, generate, write_gallery

SLUGS = [spec.slug for spec in STYLES]


def _luma(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.float64) @ np.array([0.299, 0.587, 0.114])


def _high_pass(y: np.ndarray) -> float:
    """Mean |pixel - its 3x3 box mean|: fine texture, which a flat or blurry image lacks."""
    p = np.pad(y, 1, mode="edge")
    box = sum(p[i : i + y.shape[0], j : j + y.shape[1]] for i in range(3) for j in range(3)) / 9
    return float(np.abs(y - box).mean())


def test_every_style_has_a_generator_and_at_least_eight() -> None:
    assert len(SLUGS) >= 8
    assert set(SLUGS) == set(GENERATORS)


@pytest.mark.parametrize("slug", SLUGS)
def test_generation_is_deterministic(slug: str) -> None:
    a, b = generate(slug, 48), generate(slug, 48)
    assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("slug", SLUGS)
def test_generator_gives_a_textured_rgb_image_of_the_asked_size(slug: str) -> None:
    img = generate(slug, 96, 72)  # not square: width and height must not be swapped
    assert img.mode == "RGB" and img.size == (96, 72)
    y = _luma(img)
    assert y.std() > 12, f"{slug}: too flat (luminance std {y.std():.1f})"
    assert _high_pass(y) > 2.5, f"{slug}: no fine texture ({_high_pass(y):.2f})"


def test_generators_differ_from_each_other() -> None:
    """Each slug is its own look, not one generator under ten names."""
    arrays = {slug: np.asarray(generate(slug, 32), dtype=np.float64) for slug in SLUGS}
    for i, s in enumerate(SLUGS):
        for t in SLUGS[i + 1 :]:
            assert np.abs(arrays[s] - arrays[t]).mean() > 10, (s, t)


def test_shipped_manifest_lists_every_shipped_file_with_en_and_ru() -> None:
    manifest = json.loads((DEFAULT_OUT / "manifest.json").read_text(encoding="utf-8"))
    files = {p.name for p in DEFAULT_OUT.iterdir() if p.suffix == ".jpg"}
    assert {e["file"] for e in manifest} == files
    assert [e["slug"] for e in manifest] == SLUGS
    for e in manifest:
        for field in ("name", "credit"):
            assert e[field]["en"].strip() and e[field]["ru"].strip(), (e["slug"], field)
        assert any("а" <= ch <= "я" for ch in e["name"]["ru"].lower()), e["name"]["ru"]
        path = DEFAULT_OUT / e["file"]
        assert path.stat().st_size <= MAX_BYTES, path
        with Image.open(path) as im:
            assert im.mode == "RGB" and min(im.size) >= 256


def test_write_gallery_matches_the_shipped_manifest(tmp_path: Path) -> None:
    """The shipped folder is what the command writes (names and files), so regenerating loses nothing."""
    manifest = write_gallery(tmp_path, size=40)
    assert manifest == json.loads((DEFAULT_OUT / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(p.name for p in tmp_path.glob("*.jpg")) == sorted(str(e["file"]) for e in manifest)


def test_catalog_loads_the_shipped_gallery() -> None:
    styles = load_gallery()
    assert [s.slug for s in styles] == SLUGS
    mosaic = styles[0]
    assert isinstance(mosaic, GalleryStyle) and mosaic.path.is_file()
    assert mosaic.name("en") == "Mosaic" and mosaic.name("ru") == "Мозаика"
    assert mosaic.name("de") == "Mosaic"  # unknown language: English
    assert "stylebot" in mosaic.credit_text("en") and "stylebot" in mosaic.credit_text("ru")


def test_catalog_without_manifest_uses_file_names(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8), "red").save(tmp_path / "b_red.png")
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "a_blue.jpg")
    (tmp_path / "notes.txt").write_text("not a picture")
    styles = load_gallery(tmp_path)
    assert [s.slug for s in styles] == ["a_blue", "b_red"]
    assert styles[0].name("ru") == "a_blue" and styles[0].credit_text("en") == ""


def test_catalog_skips_manifest_entries_whose_file_is_missing(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8), "red").save(tmp_path / "here.jpg")
    (tmp_path / "manifest.json").write_text(
        json.dumps(
            [
                {"slug": "gone", "file": "gone.jpg", "name": {"en": "Gone"}},
                {"slug": "here", "file": "here.jpg", "name": "Here", "credit": {"ru": "Кредит"}},
            ]
        ),
        encoding="utf-8",
    )
    styles = load_gallery(tmp_path)
    assert [s.slug for s in styles] == ["here"]
    assert styles[0].name("ru") == "Here" and styles[0].credit_text("ru") == "Кредит"
    assert load_gallery(tmp_path / "absent") == []
