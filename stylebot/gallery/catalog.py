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

__all__ = [
    "DEFAULT_DIR",
    "IMAGE_SUFFIXES",
    "GalleryReport",
    "GalleryStyle",
    "cached_gallery",
    "find_style",
    "inspect_gallery",
    "load_gallery",
]

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


@dataclass(frozen=True)
class GalleryReport:
    """What a styles folder offers, and what is wrong with its manifest (empty when nothing is).

    Why a report and not an exception: an operator's typo in ``manifest.json`` used to escape as a
    ``JSONDecodeError`` into the user's photo handler ("Sorry, something went wrong"); now the bad
    entries are skipped (or the whole gallery is off) and the start-up log says why, once.
    """

    styles: list[GalleryStyle]
    problems: list[str]
    manifest: Path | None = None

    def summary(self) -> str | None:
        """One log line naming the file and its problems, or ``None`` when the folder is sound."""
        if not self.problems:
            return None
        outcome = f"serving {len(self.styles)} valid styles" if self.styles else "the gallery is off"
        return f"gallery manifest {self.manifest}: {'; '.join(self.problems)}; {outcome}"


def _entry(root: Path, n: int, entry: object) -> tuple[GalleryStyle | None, str | None]:
    """Manifest entry number ``n`` as a style, or the reason it is skipped."""
    if not isinstance(entry, dict):
        return None, f"entry {n} is {type(entry).__name__}, not an object"
    file = entry.get("file")
    if not isinstance(file, str) or not file:
        return None, f'entry {n} has no "file" string'
    slug = entry.get("slug", "")
    if not isinstance(slug, str):
        return None, f'entry {n} ({file}): "slug" is {type(slug).__name__}, not a string'
    for key in ("name", "credit"):
        value = entry.get(key)
        if value is not None and not isinstance(value, (str, dict)):
            return None, f'entry {n} ({file}): "{key}" is {type(value).__name__}, not a string or an object'
    path = root / file
    if root.resolve() not in path.resolve().parents:
        return None, f"entry {n} names {file!r}, outside the folder"
    if not path.is_file():
        return None, f"entry {n} names a missing file {file!r}"
    return GalleryStyle(slug or path.stem, path, _texts(entry.get("name")), _texts(entry.get("credit"))), None


def inspect_gallery(directory: str | Path = DEFAULT_DIR) -> GalleryReport:
    """The styles in ``directory`` (manifest order, else by file name) and the manifest's problems.

    Invalid JSON, or a manifest that is not a list, turns the gallery off; an entry of the wrong
    shape, naming a missing file, or repeating a slug is skipped. A missing folder is an empty gallery.
    """
    root = Path(directory)
    if not root.is_dir():
        return GalleryReport([], [])
    manifest = root / "manifest.json"
    if not manifest.is_file():
        by_name = [
            GalleryStyle(p.stem, p, {"en": p.stem})
            for p in sorted(root.iterdir())
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        ]
        return GalleryReport(by_name, [])
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return GalleryReport([], [f"cannot be read ({type(exc).__name__})"], manifest)
    except json.JSONDecodeError as exc:
        return GalleryReport([], [f"invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})"], manifest)
    if not isinstance(entries, list):
        return GalleryReport([], [f"is a JSON {type(entries).__name__}, not a list of styles"], manifest)
    styles: list[GalleryStyle] = []
    problems: list[str] = []
    for n, raw in enumerate(entries, 1):
        style, problem = _entry(root, n, raw)
        if style is not None and any(s.slug == style.slug for s in styles):
            problem, style = f"entry {n} repeats the slug {style.slug!r}", None
        if style is not None:
            styles.append(style)
        if problem is not None:
            problems.append(problem)
    return GalleryReport(styles, problems, manifest)


def load_gallery(directory: str | Path = DEFAULT_DIR) -> list[GalleryStyle]:
    """The styles in ``directory`` that can be served (see :func:`inspect_gallery`); never raises."""
    return inspect_gallery(directory).styles


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
