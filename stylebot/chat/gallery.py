"""gallery (chat side): ready styles to pick from, shown as one photo of numbered thumbnails with buttons.

Why one sheet photo: a user sees every style before choosing, in one message that pages in place
(◀ ▶ edit it), and the buttons carry the names in the user's language while the picture stays the same
for everyone, so each page is uploaded to Telegram once and then sent by ``file_id``.

The full-size style image is uploaded the first time anyone picks it (the "You picked: …" echo is that
upload; its answer gives the ``file_id`` the job paints with) and sent by ``file_id`` ever after. Both kinds
of upload are remembered in the store under a key and the sha256 of the bytes, so a changed file (or a
redrawn sheet) is uploaded again and an unchanged one never is, across users and restarts.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from PIL import Image, ImageDraw, ImageFont, ImageOps
from telebot import types

from stylebot import texts
from stylebot.chat import keyboards
from stylebot.errors import TelegramError, UserGone
from stylebot.gallery.catalog import GalleryStyle, cached_gallery, inspect_gallery
from stylebot.store.base import StateStore
from stylebot.tg import Telegram

log = logging.getLogger(__name__)

#: Styles per sheet page, and how they are laid out (3 x 2 thumbnails).
PAGE_SIZE = 6
COLUMNS = 3
THUMB = 200
GAP = 8
#: Part of every sheet's hash: change it when the drawing changes, so every page is uploaded again.
SHEET_VERSION = b"sheet-v1"


def sheet_key(page: int) -> str:
    return f"gallery-sheet:{page}"


def style_key(slug: str) -> str:
    return f"gallery:{slug}"


class Gallery:
    """The gallery in ``directory`` as the chat shows it; all state lives in ``store`` (file ids)."""

    def __init__(self, tg: Telegram, store: StateStore, directory: Path) -> None:
        self.tg, self.store, self.directory = tg, store, Path(directory)
        self._shas: dict[Path, tuple[int, int, str]] = {}
        self._sheets: dict[str, bytes] = {}  # sheet hash -> JPEG: drawn once per process
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._lock = threading.Lock()
        # A broken manifest is the operator's to fix: say so once, at start (the chat serves what is valid).
        problems = inspect_gallery(self.directory).summary()
        if problems is not None:
            log.warning("%s", problems)

    # --- the catalog ----------------------------------------------------
    def styles(self) -> list[GalleryStyle]:
        return cached_gallery(self.directory)

    def style(self, slug: str) -> GalleryStyle | None:
        return next((s for s in self.styles() if s.slug == slug), None)

    def pages(self) -> int:
        return (len(self.styles()) + PAGE_SIZE - 1) // PAGE_SIZE

    def page_styles(self, page: int) -> list[GalleryStyle]:
        return self.styles()[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]

    def file_sha(self, path: Path) -> str:
        """sha256 of the file's bytes, hashed again only when its size or mtime changed."""
        stat = path.stat()
        with self._lock:
            hit = self._shas.get(path)
        if hit is not None and hit[:2] == (stat.st_mtime_ns, stat.st_size):
            return hit[2]
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        with self._lock:
            self._shas[path] = (stat.st_mtime_ns, stat.st_size, sha)
        return sha

    def sheet_sha(self, page: int) -> str:
        """The hash of what a page shows: its styles' bytes in order and the drawing's version."""
        digest = hashlib.sha256(SHEET_VERSION)
        for style in self.page_styles(page):
            digest.update(f"{style.slug}:{self.file_sha(style.path)};".encode())
        return digest.hexdigest()

    def slug_of(self, file_id: str) -> str | None:
        """The gallery style uploaded as ``file_id`` (a recent style may be one), else ``None``."""
        for style in self.styles():
            try:
                if self.store.uploaded_file_id(style_key(style.slug), self.file_sha(style.path)) == file_id:
                    return style.slug
            except OSError:  # removed while we looked
                continue
        return None

    # --- the sheet --------------------------------------------------------
    def sheet(self, page: int) -> bytes:
        """The page as one JPEG: numbered thumbnails, numbers matching the buttons."""
        sha = self.sheet_sha(page)
        with self._lock:
            cached = self._sheets.get(sha)
        if cached is None:
            cached = draw_sheet([s.path for s in self.page_styles(page)], first_number=page * PAGE_SIZE + 1)
            with self._lock:
                self._sheets[sha] = cached
        return cached

    def keyboard(self, lang: str, page: int) -> types.InlineKeyboardMarkup:
        names = [(page * PAGE_SIZE + i, s.slug, s.name(lang)) for i, s in enumerate(self.page_styles(page), 1)]
        return keyboards.gallery_buttons(lang, names, page, self.pages())

    def show(self, chat_id: int, lang: str, caption: str, page: int = 0, reply_to: int | None = None) -> bool:
        """Send the gallery's ``page`` with ``caption``; ``False`` (and nothing sent) if there is none to show.

        A failure is logged and reported as ``False``, so the caller can still ask for a style in words:
        the gallery must never block the dialog.
        """
        if not 0 <= page < self.pages():
            return False
        markup = self.keyboard(lang, page)
        try:
            self._send_once(
                sheet_key(page),
                self.sheet_sha(page),
                lambda: self.sheet(page),
                lambda photo: self.tg.send_photo(chat_id, photo, caption=caption, markup=markup, reply_to=reply_to),
            )
            return True
        except UserGone:
            raise
        except (TelegramError, OSError) as exc:
            log.warning("gallery not shown: %s", exc)
            return False

    def turn(self, chat_id: int, message_id: int, caption: str | None, lang: str, page: int) -> None:
        """Edit a shown sheet in place to ``page`` (same caption, that page's buttons)."""
        markup = self.keyboard(lang, page)

        def edit(photo: str | bytes) -> types.Message | None:
            media = types.InputMediaPhoto(cast(Any, photo), caption=caption)  # bytes upload fine; stubs say no
            answer = self.tg.call(self.tg.bot.edit_message_media, media, chat_id, message_id, reply_markup=markup)
            return answer if isinstance(answer, types.Message) else None

        self._send_once(sheet_key(page), self.sheet_sha(page), lambda: self.sheet(page), edit)

    # --- picking ------------------------------------------------------------
    def style_file_id(
        self, chat_id: int, lang: str, style: GalleryStyle, reply_to: int | None = None
    ) -> tuple[str, str | None]:
        """The Telegram ``file_id`` of the full-size style image (and a thumbnail's), for a job.

        Sends "You picked: <name>" with the image: an upload the first time anyone picks it, by ``file_id``
        after that (no upload).
        """
        caption = texts.t(lang, "gallery_picked", name=style.name(lang))
        file_id, message = self._send_once(
            style_key(style.slug),
            self.file_sha(style.path),
            style.path.read_bytes,
            lambda photo: self.tg.send_photo(chat_id, photo, caption=caption, reply_to=reply_to),
        )
        sizes = (message.photo or []) if message is not None else []
        thumb = min(sizes, key=lambda p: p.width * p.height).file_id if sizes else None
        return file_id, thumb

    # --- upload once ---------------------------------------------------------
    def _send_once(
        self,
        key: str,
        sha: str,
        data: Callable[[], bytes],
        send: Callable[[str | bytes], types.Message | None],
    ) -> tuple[str, types.Message | None]:
        """``send`` by the stored ``file_id``; upload ``data()`` (and store its id) only when there is none.

        A stored id that Telegram refuses (another bot's, or expired) is replaced by a fresh upload. The
        per-key lock makes simultaneous first uses upload once in this process.
        """
        file_id = self.store.uploaded_file_id(key, sha)
        if file_id is None:
            with self._locks[key]:
                file_id = self.store.uploaded_file_id(key, sha)
                if file_id is None:
                    return self._upload(key, sha, data, send)
        try:
            return file_id, send(file_id)
        except UserGone:
            raise
        except TelegramError as exc:
            log.info("%s: stored file id refused (%s); uploading again", key, exc.description)
            with self._locks[key]:
                return self._upload(key, sha, data, send)

    def _upload(
        self, key: str, sha: str, data: Callable[[], bytes], send: Callable[[str | bytes], types.Message | None]
    ) -> tuple[str, types.Message | None]:
        message = send(data())
        if message is None or not message.photo:
            raise TelegramError(f"{key}: the upload's answer has no photo")
        file_id = max(message.photo, key=lambda p: p.width * p.height).file_id
        self.store.save_uploaded_file_id(key, sha, file_id)
        log.info("%s uploaded once; sent by file id from now on", key)
        return file_id, message


def draw_sheet(paths: list[Path], first_number: int = 1) -> bytes:
    """Thumbnails of ``paths`` in a grid, each with its number in a corner; a JPEG."""
    rows = max(1, (len(paths) + COLUMNS - 1) // COLUMNS)
    columns = min(COLUMNS, max(1, len(paths)))
    width = columns * THUMB + (columns + 1) * GAP
    height = rows * THUMB + (rows + 1) * GAP
    sheet = Image.new("RGB", (width, height), (32, 32, 36))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=30)
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            thumb = ImageOps.fit(image.convert("RGB"), (THUMB, THUMB), Image.Resampling.LANCZOS)
        x = GAP + (i % COLUMNS) * (THUMB + GAP)
        y = GAP + (i // COLUMNS) * (THUMB + GAP)
        sheet.paste(thumb, (x, y))
        label = str(first_number + i)
        draw.ellipse((x + 6, y + 6, x + 50, y + 50), fill=(255, 255, 255), outline=(0, 0, 0), width=2)
        draw.text((x + 28, y + 28), label, fill=(0, 0, 0), font=font, anchor="mm")
    out = io.BytesIO()
    sheet.save(out, "JPEG", quality=85)
    return out.getvalue()
