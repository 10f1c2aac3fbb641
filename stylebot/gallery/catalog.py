"""The gallery as the bot sees it: a list of :class:`GalleryStyle` read from a folder.

Torch-free and cheap (reads JSON and lists files; opens no image), so the chat process can call it on demand.
A folder without ``manifest.json`` still works: one entry per image, named after its file.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from stylebot.config import DEFAULT_STYLES_DIR

__all__ = ["DEFAULT_DIR", "IMAGE_SUFFIXES", "GalleryStyle", "cached_gallery", "find_style", "load_gallery"]

#: The styles shipped with the bot (made by :mod:`stylebot.gallery.generate`).
DEFAULT_DIR = DEFAULT_STYLES_DIR
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


@dataclass(frozen=True)
class GalleryStyle:
    """One style picture: ``names`` and ``credit`` map a language code ("en", "ru") to text."""

    slug: str
    path: Path
    names: dict[str, str] = field(default_factory=dict)
    credit: dict[str, str] = field(default_factory=dict)

    def name(self, lang: str) -> str:
        """The name in ``lang``, else English, else the slug (a manifest may lack a translation)."""
        return self.names.get(lang) or self.names.get("en") or self.slug

    def credit_text(self, lang: str) -> str:
        """The credit line in ``lang``, else English, else empty."""
        return self.credit.get(lang) or self.credit.get("en") or ""


def _texts(value: object) -> dict[str, str]:
    """A manifest field as {lang: text}; a bare string counts as English."""
    if isinstance(value, str):
        return {"en": value}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items() if isinstance(v, str) and v}
    return {}


def load_gallery(directory: str | Path = DEFAULT_DIR) -> list[GalleryStyle]:
    """The styles in ``directory``, in manifest order (else by file name).

    Manifest entries whose file is missing are skipped, so a half-copied folder never offers a style that
    cannot be opened. A missing folder is an empty gallery.
    """
    root = Path(directory)
    if not root.is_dir():
        return []
    manifest = root / "manifest.json"
    if manifest.is_file():
        entries = json.loads(manifest.read_text(encoding="utf-8"))
        styles = []
        for e in entries:
            path = root / str(e["file"])
            if not path.is_file():
                continue
            styles.append(
                GalleryStyle(str(e.get("slug") or path.stem), path, _texts(e.get("name")), _texts(e.get("credit")))
            )
        return styles
    return [
        GalleryStyle(p.stem, p, {"en": p.stem})
        for p in sorted(root.iterdir())
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    ]


_cache: dict[Path, tuple[tuple[int, int], list[GalleryStyle]]] = {}
_cache_lock = threading.Lock()


def _stamp(root: Path) -> tuple[int, int]:
    """What changes when a style is added, removed or renamed: the folder's and the manifest's mtimes."""

    def mtime(path: Path) -> int:
        try:
            return path.stat().st_mtime_ns
        except OSError:
            return -1

    return mtime(root), mtime(root / "manifest.json")


def cached_gallery(directory: str | Path = DEFAULT_DIR) -> list[GalleryStyle]:
    """:func:`load_gallery`, read again only when the folder or its manifest changed.

    Every prompt and every result caption asks for the gallery; two ``stat`` calls are all that costs.
    """
    root = Path(directory)
    stamp = _stamp(root)
    with _cache_lock:
        hit = _cache.get(root)
        if hit is not None and hit[0] == stamp:
            return hit[1]
    styles = load_gallery(root)
    with _cache_lock:
        _cache[root] = (stamp, styles)
    return styles


def find_style(directory: str | Path, slug: str) -> GalleryStyle | None:
    """The style called ``slug`` in ``directory`` (cached), or ``None`` (removed since, or never there)."""
    return next((s for s in cached_gallery(directory) if s.slug == slug), None)
