"""keyboards: every inline keyboard, and the one place callback data is built and parsed.

Each button kind has a :class:`telebot.callback_data.CallbackData` factory. Buttons
are made with ``factory.new(...)``, handlers read them with :func:`parse` and
``register`` routes them with ``factory.filter()``, so a button's wire format is
written once. The strings are a contract: buttons already sitting in users' chats
keep working, so they must stay byte-identical:

    set:size:48  set:strength:strong  set:colors:1  set:speed:quick|painted
    rerun:<job_id>:stronger|weaker  restyle:<job_id>  full:<job_id>  style:<n>
    lapse:<job_id>
    gal:<slug>  galp:<page>
    mixwith:<job_id>  mix:<job_id>:25|50|75
"""

from __future__ import annotations

from telebot import types
from telebot.callback_data import CallbackData

from stylebot import texts
from stylebot.jobs.job import SPEEDS, Job
from stylebot.store.base import UserSettings

#: /settings: ``what`` is size | strength | colors | speed; ``value`` px, a strength name, 0/1, or a speed.
SETTINGS = CallbackData("what", "value", prefix="set")
#: "Stronger"/"Weaker" under a result: paint the same pair again one step along the ladder.
RERUN = CallbackData("job_id", "direction", prefix="rerun")
#: "Another style" under a result: keep the photo, ask for a style.
RESTYLE = CallbackData("job_id", prefix="restyle")
#: "Full quality file" under a result: the PNG kept on disk.
FULL = CallbackData("job_id", prefix="full")
#: "How it was painted" under a result: the timelapse GIF kept beside the PNG.
LAPSE = CallbackData("job_id", prefix="lapse")
#: "Mix with another style" under a one-style result: ask for a second style to mix with the first.
MIX_WITH = CallbackData("job_id", prefix="mixwith")
#: A mix ratio under a mixed result: the second style's share in percent (one of MIX_SHARES).
MIX = CallbackData("job_id", "share", prefix="mix")
#: One of the user's recent styles, numbered from 1 as in the preview album.
RECENT_STYLE = CallbackData("n", prefix="style")
#: A style picked from the gallery, by its slug (a file's stem: no ":"; stale once removed).
GALLERY = CallbackData("slug", prefix="gal")
#: A gallery page (from 0): the sheet message is edited to show it.
GALLERY_PAGE = CallbackData("page", prefix="galp")

#: The three strengths named in /settings (button value -> style weight multiplier).
NAMED_STRENGTHS = {"weak": 0.5, "normal": 1.0, "strong": 2.0}
DIRECTIONS = ("stronger", "weaker")
#: The mix ratios offered under a mixed result (the second style's share, %).
MIX_SHARES = ("25", "50", "75")


def parse(factory: CallbackData, data: str | None) -> dict[str, str] | None:
    """The parts of ``data`` by name, or ``None`` if it is not this factory's (an old or forged button)."""
    if data is None:
        return None
    try:
        return factory.parse(data)
    except ValueError:
        return None


def settings_keyboard(
    lang: str, s: UserSettings, size_choices: list[int], speed: str | None = "off"
) -> types.InlineKeyboardMarkup:
    """/settings: sizes, named strengths, keep colours, and (``speed`` not "off") Painted/Quick with
    ``speed`` ticked (None: neither); the current choice is ticked."""

    def mark(text: str, on: bool) -> str:
        return f"✓ {text}" if on else text

    markup = types.InlineKeyboardMarkup()
    markup.row(
        *[
            types.InlineKeyboardButton(mark(f"{size} px", size == s.size), callback_data=SETTINGS.new("size", size))
            for size in size_choices
        ]
    )
    markup.row(
        *[
            types.InlineKeyboardButton(
                mark(texts.t(lang, f"strength_{name}"), abs(value - s.strength) < 1e-6),
                callback_data=SETTINGS.new("strength", name),
            )
            for name, value in NAMED_STRENGTHS.items()
        ]
    )
    colors = "settings_colors_on" if s.keep_colors else "settings_colors_off"
    markup.row(
        types.InlineKeyboardButton(texts.t(lang, colors), callback_data=SETTINGS.new("colors", int(not s.keep_colors)))
    )
    if speed != "off":  # quick mode (issue 20, stylebot/chat/speed.py)
        markup.row(
            *[
                types.InlineKeyboardButton(
                    mark(texts.t(lang, f"speed_{name}"), name == speed), callback_data=SETTINGS.new("speed", name)
                )
                for name in SPEEDS
            ]
        )
    return markup


def result_buttons(job: Job, full: bool = True, lapse: bool = False) -> types.InlineKeyboardMarkup:
    """Buttons under the result; callback data carries the job id, nothing else.

    ``full=False`` (the PNG could not be saved) leaves out "Full quality file";
    ``lapse=True`` (the timelapse GIF was saved) adds "How it was painted".
    """

    def t(key: str) -> str:
        return texts.t(job.lang, key)

    markup = types.InlineKeyboardMarkup(row_width=2)
    markup.add(
        types.InlineKeyboardButton(t("btn_stronger"), callback_data=RERUN.new(job.id, "stronger")),
        types.InlineKeyboardButton(t("btn_weaker"), callback_data=RERUN.new(job.id, "weaker")),
    )
    row = [types.InlineKeyboardButton(t("btn_another_style"), callback_data=RESTYLE.new(job.id))]
    if full:
        row.append(types.InlineKeyboardButton(t("btn_full_quality"), callback_data=FULL.new(job.id)))
    markup.add(*row)
    if lapse:
        markup.add(types.InlineKeyboardButton(t("btn_timelapse"), callback_data=LAPSE.new(job.id)))
    add_mix_buttons(markup, job)
    return markup


def add_mix_buttons(markup: types.InlineKeyboardMarkup, job: Job) -> None:
    """A mixed result gets the ratio row (the current one ticked); a one-style result "Mix with another style"."""
    if job.style2_file_id is None:
        markup.add(types.InlineKeyboardButton(texts.t(job.lang, "btn_mix_with"), callback_data=MIX_WITH.new(job.id)))
        return
    current = str(round(job.mix * 100))

    def label(share: str) -> str:
        text = texts.t(job.lang, "btn_mix_ratio", first=100 - int(share), second=share)
        return f"✓ {text}" if share == current else text

    markup.row(*[types.InlineKeyboardButton(label(s), callback_data=MIX.new(job.id, s)) for s in MIX_SHARES])


def recent_style_buttons(lang: str, count: int) -> types.InlineKeyboardMarkup:
    """One numbered button per recent style, matching the captions of the preview album."""
    markup = types.InlineKeyboardMarkup(row_width=5)
    markup.add(
        *[
            types.InlineKeyboardButton(texts.t(lang, "recent_style_button", n=n), callback_data=RECENT_STYLE.new(n))
            for n in range(1, count + 1)
        ]
    )
    return markup


def gallery_buttons(
    lang: str, names: list[tuple[int, str, str]], page: int, pages: int, columns: int = 2
) -> types.InlineKeyboardMarkup:
    """The gallery sheet's buttons: ``(number on the sheet, slug, name)`` each, then ◀ n/m ▶ when paged."""
    markup = types.InlineKeyboardMarkup(row_width=columns)
    markup.add(
        *[
            types.InlineKeyboardButton(texts.t(lang, "gallery_button", n=n, name=name), callback_data=GALLERY.new(slug))
            for n, slug, name in names
        ]
    )
    if pages > 1:  # ◀ and ▶ wrap around; the middle one names the page (and just shows it again)
        markup.row(
            types.InlineKeyboardButton(
                texts.t(lang, "gallery_prev"), callback_data=GALLERY_PAGE.new((page - 1) % pages)
            ),
            types.InlineKeyboardButton(f"{page + 1}/{pages}", callback_data=GALLERY_PAGE.new(page)),
            types.InlineKeyboardButton(
                texts.t(lang, "gallery_next"), callback_data=GALLERY_PAGE.new((page + 1) % pages)
            ),
        )
    return markup
