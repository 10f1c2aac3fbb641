"""routing: which handler gets which update, and the guards around every handler.

``register`` attaches :class:`~stylebot.chat.handlers.Handlers` in the order telebot
tries them: commands, albums, usable images by dialog step, unusable files, and a
last catch-all so every message and every button press gets an answer. Button
presses are routed by their callback-data factory (:mod:`stylebot.chat.keyboards`).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

import telebot
from telebot import types

from stylebot import texts
from stylebot.chat import keyboards
from stylebot.chat.filters import AlbumFilter, CallbackFilter, ImageFilter, StepFilter
from stylebot.chat.groups import register_groups
from stylebot.chat.handlers import Handlers
from stylebot.errors import UserGone
from stylebot.jobs.health import resource_trouble, upstream_failure
from stylebot.store.base import STEP_MIX, STEP_STYLE
from stylebot.tg import Telegram

log = logging.getLogger(__name__)

COMMANDS = ("start", "help", "cancel", "settings", "forget")


class LogErrors(telebot.ExceptionHandler):
    """The last line of defence: an exception in a handler is logged, never fatal."""

    def handle(self, exception: Exception) -> bool:
        log.error("handler failed: %s", exception, exc_info=exception)
        return True


def guarded(handler: Callable[..., None], tg: Telegram) -> Callable[..., None]:
    """Log a handler's failure with its traceback and still answer the user.

    A user who blocked the bot gets nothing (there is no one to answer).
    """

    @functools.wraps(handler)
    def run(update: Any, *args: Any, **kwargs: Any) -> None:
        try:
            handler(update, *args, **kwargs)
        except UserGone:
            log.info("%s: user blocked the bot", getattr(handler, "__name__", "handler"))
        except Exception as exc:
            trouble = resource_trouble(exc)  # a full disk or a lost database: not the user's fault
            upstream = upstream_failure(exc)  # Telegram's trouble: said in its own words
            if trouble or upstream:
                why = trouble or upstream
                log.warning("%s: %s; told the user to try later", getattr(handler, "__name__", "handler"), why)
            else:
                log.exception("%s failed", getattr(handler, "__name__", "handler"))
            message = update.message if isinstance(update, types.CallbackQuery) else update
            if message is None:
                return
            lang = texts.lang_of(update.from_user.language_code if update.from_user else None)
            try:
                key = "busy_try_later" if trouble else upstream or "handler_failed"
                tg.send_text(message.chat.id, texts.t(lang, key))
            except Exception:
                log.exception("could not report the failure")

    return run


def commands(lang: str) -> list[types.BotCommand]:
    """The command menu in ``lang``."""
    return [types.BotCommand(c, texts.t(lang, f"cmd_{c}")) for c in COMMANDS]


def announce_commands(bot: telebot.TeleBot, stopping: threading.Event, attempts: int = 5) -> None:
    """``set_my_commands`` in both languages; retried with backoff, never fatal (the menu is cosmetic)."""
    for attempt in range(attempts):
        try:
            bot.set_my_commands(commands(texts.EN))
            bot.set_my_commands(commands(texts.RU), language_code=texts.RU)
            return
        except Exception as exc:  # any failure just means "try again later"
            log.warning("set_my_commands failed (%s); retrying", type(exc).__name__)
            if stopping.wait(2**attempt):
                return


def register(bot: telebot.TeleBot, h: Handlers) -> None:
    """Attach the handlers in routing order (telebot uses the first that matches)."""
    bot.add_custom_filter(StepFilter(h.store))
    bot.add_custom_filter(ImageFilter())
    bot.add_custom_filter(AlbumFilter())
    bot.add_custom_filter(CallbackFilter())
    media = ["photo", "document"]
    g = functools.partial(guarded, tg=h.tg)
    on = bot.register_message_handler
    register_groups(bot, h, g, COMMANDS)  # group chats first: their own flow under privacy mode (chat/groups.py)
    on(g(h.start), commands=["start"])
    on(g(h.help), commands=["help"])
    on(g(h.cancel), commands=["cancel"])
    on(g(h.settings), commands=["settings"])
    on(g(h.forget), commands=["forget"])
    on(g(h.unknown_command), func=lambda m: (m.text or "").startswith("/"))
    on(g(h.album), content_types=media, album=True)
    on(g(h.style), content_types=media, image=True, step=STEP_STYLE)
    on(g(h.mix.second_style), content_types=media, image=True, step=STEP_MIX)
    on(g(h.content), content_types=media, image=True)
    on(g(h.not_an_image), func=lambda m: True, content_types=telebot.util.content_type_media)
    # Presses whose data does not parse (an old layout, a forged button) fall through to the stale answer.
    cb = bot.register_callback_query_handler
    cb(g(h.on_settings), _always, button=keyboards.SETTINGS.filter())
    cb(g(h.on_recent_style), _always, button=keyboards.RECENT_STYLE.filter())
    cb(g(h.on_gallery_pick), _always, button=keyboards.GALLERY.filter())
    cb(g(h.on_gallery_page), _always, button=keyboards.GALLERY_PAGE.filter())
    cb(g(h.on_rerun), _always, button=keyboards.RERUN.filter(direction=keyboards.DIRECTIONS))
    cb(g(h.on_restyle), _always, button=keyboards.RESTYLE.filter())
    cb(g(h.on_full), _always, button=keyboards.FULL.filter())
    cb(g(h.on_timelapse), _always, button=keyboards.LAPSE.filter())
    cb(g(h.mix.on_mix_with), _always, button=keyboards.MIX_WITH.filter())
    cb(g(h.mix.on_mix), _always, button=keyboards.MIX.filter(share=keyboards.MIX_SHARES))
    cb(g(h.stale), _always)


def _always(_update: object) -> bool:
    """No condition beyond the handler's other filters (telebot requires a ``func``)."""
    return True
