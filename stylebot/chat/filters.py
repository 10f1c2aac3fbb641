"""filters: what a message or button press is, for routing (telebot custom filters).

Routing is by sibling handlers split by these filters rather than ``if`` chains
inside one handler; :mod:`stylebot.chat.routing` attaches them in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from telebot import custom_filters, types
from telebot.callback_data import CallbackDataFilter

from stylebot.store.base import StateStore

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".avif", ".bmp", ".gif", ".tif", ".tiff")


@dataclass
class Incoming:
    """An image a user sent, as Telegram describes it (nothing downloaded yet)."""

    file_id: str
    thumb_file_id: str | None
    file_size: int | None
    width: int | None = None
    height: int | None = None


def incoming_image(message: types.Message) -> Incoming | None:
    """The usable image in ``message``: the largest ``PhotoSize``, or an image file."""
    if message.photo:
        largest = max(message.photo, key=lambda p: p.width * p.height)
        smallest = min(message.photo, key=lambda p: p.width * p.height)
        return Incoming(largest.file_id, smallest.file_id, largest.file_size, largest.width, largest.height)
    document = message.document
    if document is not None and is_image_document(document):
        thumb = getattr(document, "thumbnail", None) or getattr(document, "thumb", None)
        return Incoming(document.file_id, thumb.file_id if thumb else None, document.file_size)
    return None


def sender(message: types.Message) -> types.User:
    """Who sent ``message``. Channel posts have no sender, but the bot never asks for them."""
    if message.from_user is None:
        raise ValueError(f"message {message.message_id} has no sender")
    return message.from_user


def is_image_document(document: types.Document) -> bool:
    """A file sent "as a document" that claims to be an image, by MIME type or extension."""
    mime = (document.mime_type or "").lower()
    name = (document.file_name or "").lower()
    return mime.startswith("image/") or name.endswith(IMAGE_EXTENSIONS)


class StepFilter(custom_filters.AdvancedCustomFilter):
    """``step="style"``: the user's dialog in this chat is at that step (read from the store)."""

    key = "step"

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def check(self, message: types.Message, step: str) -> bool:
        return self.store.get_dialog(sender(message).id, message.chat.id).step == step


class ImageFilter(custom_filters.SimpleCustomFilter):
    """``image=True``: a photo, or a document with an image type."""

    key = "image"

    def check(self, message: types.Message) -> bool:
        return incoming_image(message) is not None


class AlbumFilter(custom_filters.SimpleCustomFilter):
    """``album=True``: one image of a media group (an album)."""

    key = "album"

    def check(self, message: types.Message) -> bool:
        return message.media_group_id is not None


class CallbackFilter(custom_filters.AdvancedCustomFilter):
    """``button=FACTORY.filter(...)``: the press's data parses with that factory (see keyboards).

    A press without data (a game button) matches nothing, instead of failing inside telebot.
    """

    key = "button"

    def check(self, call: types.CallbackQuery, config: CallbackDataFilter) -> bool:
        return call.data is not None and config.check(call)
