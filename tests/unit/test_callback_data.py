"""Callback data: the factories in stylebot.chat.keyboards build and parse the exact wire strings.

Buttons already sitting in users' chats carry these strings, so they are a contract.
"""

from __future__ import annotations

import dataclasses

import pytest
from telebot import types
from telebot.callback_data import CallbackData

from stylebot.chat import keyboards
from stylebot.chat.filters import CallbackFilter
from stylebot.jobs.job import Job
from stylebot.store.base import UserSettings

JOB_ID = "0123456789ab"


@pytest.mark.parametrize(
    ("factory", "parts", "wire"),
    [
        (keyboards.SETTINGS, {"what": "size", "value": "48"}, "set:size:48"),
        (keyboards.SETTINGS, {"what": "strength", "value": "strong"}, "set:strength:strong"),
        (keyboards.SETTINGS, {"what": "colors", "value": "1"}, "set:colors:1"),
        (keyboards.RERUN, {"job_id": JOB_ID, "direction": "stronger"}, f"rerun:{JOB_ID}:stronger"),
        (keyboards.RERUN, {"job_id": JOB_ID, "direction": "weaker"}, f"rerun:{JOB_ID}:weaker"),
        (keyboards.RESTYLE, {"job_id": JOB_ID}, f"restyle:{JOB_ID}"),
        (keyboards.FULL, {"job_id": JOB_ID}, f"full:{JOB_ID}"),
        (keyboards.RECENT_STYLE, {"n": "3"}, "style:3"),
    ],
)
def test_every_factory_builds_the_exact_string_and_parses_it_back(
    factory: CallbackData, parts: dict[str, str], wire: str
) -> None:
    assert factory.new(**parts) == wire
    assert keyboards.parse(factory, wire) == {"@": factory.prefix, **parts}


@pytest.mark.parametrize(
    ("factory", "data"),
    [
        (keyboards.SETTINGS, "set:"),
        (keyboards.SETTINGS, "set:size"),
        (keyboards.SETTINGS, "set:size:48:extra"),
        (keyboards.SETTINGS, "settings:size:48"),
        (keyboards.RERUN, f"rerun:{JOB_ID}"),
        (keyboards.RERUN, f"restyle:{JOB_ID}"),
        (keyboards.RESTYLE, f"restyle:{JOB_ID}:x"),
        (keyboards.FULL, "full"),
        (keyboards.FULL, f"rerun:{JOB_ID}:stronger"),
        (keyboards.RECENT_STYLE, "style"),
        (keyboards.RECENT_STYLE, "style:1:2"),
        (keyboards.RECENT_STYLE, ""),
        (keyboards.RECENT_STYLE, None),
    ],
)
def test_malformed_data_is_rejected(factory: CallbackData, data: str | None) -> None:
    assert keyboards.parse(factory, data) is None


def press(data: str | None) -> types.CallbackQuery:
    return types.CallbackQuery.de_json(
        {"id": "1", "from": {"id": 7, "is_bot": False, "first_name": "A"}, "chat_instance": "1", "data": data}
    )


def test_routing_filter_matches_only_its_factory_and_allowed_values() -> None:
    rerun = keyboards.RERUN.filter(direction=keyboards.DIRECTIONS)
    check = CallbackFilter().check
    assert check(press(f"rerun:{JOB_ID}:stronger"), rerun)
    assert check(press(f"rerun:{JOB_ID}:weaker"), rerun)
    assert not check(press(f"rerun:{JOB_ID}:sideways"), rerun)
    assert not check(press(f"rerun:{JOB_ID}"), rerun)
    assert not check(press(f"full:{JOB_ID}"), rerun)
    assert not check(press(None), rerun)  # a game button has no data: no match, no crash


def buttons(markup: types.InlineKeyboardMarkup) -> list[list[str]]:
    return [[b.callback_data for b in row] for row in markup.keyboard]


def test_keyboards_carry_the_contract_strings() -> None:
    settings = keyboards.settings_keyboard("en", UserSettings(7, size=96, strength=2.0, keep_colors=True), [48, 96])
    assert buttons(settings) == [
        ["set:size:48", "set:size:96"],
        ["set:strength:weak", "set:strength:normal", "set:strength:strong"],
        ["set:colors:0"],
    ]
    ticked = [b.text for row in settings.keyboard for b in row if b.text.startswith("✓")]
    assert len(ticked) == 2  # the size and the strength in use

    job = Job(
        user_id=7,
        chat_id=7,
        content_file_id="c",
        style_file_id="s",
        size=48,
        strength=1.0,
        keep_colors=False,
        lang="en",
    )
    assert buttons(keyboards.result_buttons(job)) == [
        [f"rerun:{job.id}:stronger", f"rerun:{job.id}:weaker"],
        [f"restyle:{job.id}", f"full:{job.id}"],
        [f"mixwith:{job.id}"],
    ]
    mixed = dataclasses.replace(job, style2_file_id="s2", mix=0.75)
    assert buttons(keyboards.result_buttons(mixed))[-1] == [
        f"mix:{mixed.id}:25",
        f"mix:{mixed.id}:50",
        f"mix:{mixed.id}:75",
    ]
    assert keyboards.parse(keyboards.MIX, f"mix:{mixed.id}:75") == {"@": "mix", "job_id": mixed.id, "share": "75"}
    assert keyboards.parse(keyboards.MIX, f"mixwith:{mixed.id}") is None  # prefixes do not overlap
    assert buttons(keyboards.result_buttons(job, full=False))[1] == [f"restyle:{job.id}"]
    assert [d for row in buttons(keyboards.recent_style_buttons("en", 3)) for d in row] == [
        "style:1",
        "style:2",
        "style:3",
    ]
