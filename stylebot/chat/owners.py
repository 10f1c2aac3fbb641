"""owners: whose buttons and pickers are whose in a group (moved out of handlers.py to keep it small).

A group result or picker replies to its owner's message, so that message's sender is the owner: a press
by anyone else is answered with whose they are, and a job started from a picker replies to its owner.
"""

from __future__ import annotations

from telebot import types

from stylebot import texts


def picker_reply_to(call: types.CallbackQuery) -> int | None:
    """In a group, the presser's own message a picker (gallery, recent styles) replies to: the job's
    answers reply there too. ``None`` in private chats, or on someone else's picker."""
    message = call.message
    replied: types.Message | None = getattr(message, "reply_to_message", None)
    if (
        message is None
        or message.chat.type == "private"
        or replied is None
        or replied.from_user is None
        or replied.from_user.id != call.from_user.id
    ):
        return None
    return replied.message_id


def not_yours(lang: str, message: types.Message | types.InaccessibleMessage | None) -> str:
    """The short answer to a press on someone else's buttons in a group: whose they are, if known.

    Group results and pickers reply to their owner's message, so its sender is the owner.
    """
    replied: types.Message | None = getattr(message, "reply_to_message", None)
    owner = replied.from_user if replied is not None else None
    if owner is not None and not owner.is_bot and owner.first_name:
        return texts.t(lang, "not_your_buttons", name=owner.first_name)
    return texts.t(lang, "not_your_buttons_anon")
