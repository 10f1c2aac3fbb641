"""Quick or Painted (issue 20, stylebot/chat/speed.py): the rule that gives each job its speed, the /settings
row, and the caption under a quick result."""

from __future__ import annotations

import pytest

from stylebot.chat import keyboards
from stylebot.chat.speed import PAINT_SECONDS, SpeedRule
from stylebot.jobs.job import PAINTED, QUICK, Job
from stylebot.jobs.results import result_caption
from stylebot.store.base import UserSettings
from stylebot.texts import t


def auto(bound: float = 60.0, workers: int = 1) -> SpeedRule:
    return SpeedRule("auto", quick_available=True, bound=bound, default_size=512, workers=workers)


def test_auto_answers_quick_only_while_the_estimated_wait_is_over_the_bound() -> None:
    rule = auto(bound=60.0)
    assert rule.estimated_wait(3) == 3 * PAINT_SECONDS
    assert rule.choose(None, 0) == PAINTED
    assert rule.choose(None, 3) == PAINTED  # 60 s: not over the bound
    assert rule.choose(None, 4) == QUICK  # 80 s
    assert auto(bound=60.0, workers=2).choose(None, 4) == PAINTED  # two painters halve the wait
    assert auto(bound=0).choose(None, 1) == QUICK


def test_the_estimate_scales_with_the_default_size_as_the_quota_counts_work() -> None:
    big = SpeedRule("auto", True, 60.0, default_size=1024)
    assert big.estimated_wait(1) == 4 * PAINT_SECONDS
    assert big.choose(None, 1) == QUICK


@pytest.mark.parametrize("waiting", [0, 10])
def test_an_explicit_choice_wins_over_auto(waiting: int) -> None:
    assert auto().choose(PAINTED, waiting) == PAINTED
    assert auto().choose(QUICK, waiting) == QUICK


def test_painted_mode_paints_unless_the_user_chose_quick() -> None:
    rule = SpeedRule("painted", quick_available=True)
    assert rule.offered
    assert rule.choose(None, 100) == PAINTED
    assert rule.choose(QUICK, 0) == QUICK
    assert rule.ticked(None) == PAINTED
    assert auto().ticked(None) is None  # auto with no choice: neither is ticked
    assert auto().ticked(QUICK) == QUICK


def test_a_quick_only_process_offers_no_choice_and_answers_everything_quick() -> None:
    rule = SpeedRule("quick", quick_available=True)
    assert not rule.offered
    assert rule.chosen(PAINTED) is None
    assert rule.choose(PAINTED, 0) == QUICK
    assert rule.choose(None, 0) == QUICK


def test_without_the_draft_quick_is_neither_offered_nor_chosen() -> None:
    for mode in ("painted", "auto"):
        rule = SpeedRule(mode, quick_available=False, bound=0)
        assert not rule.offered
        assert rule.chosen(QUICK) is None
        assert rule.choose(QUICK, 50) == PAINTED
        assert rule.choose(None, 50) == PAINTED


def test_only_known_speeds_are_stored() -> None:
    assert auto().chosen(QUICK) == QUICK
    assert auto().chosen("turbo") is None


def test_the_settings_keyboard_has_the_speed_row_only_when_offered() -> None:
    def speed_buttons(markup) -> list[tuple[str, str]]:
        return [
            (b.text, b.callback_data)
            for row in markup.keyboard
            for b in row
            if (b.callback_data or "").startswith("set:speed:")
        ]

    s = UserSettings(1, size=48)
    assert speed_buttons(keyboards.settings_keyboard("en", s, [48])) == []
    assert speed_buttons(keyboards.settings_keyboard("en", s, [48], QUICK)) == [
        (t("en", "speed_painted"), "set:speed:painted"),
        ("✓ " + t("en", "speed_quick"), "set:speed:quick"),
    ]
    ru = speed_buttons(keyboards.settings_keyboard("ru", s, [48], None))
    assert [text for text, _ in ru] == [t("ru", "speed_painted"), t("ru", "speed_quick")]


def test_a_job_reads_as_painted_by_default_and_a_quick_result_says_so() -> None:
    job = Job(user_id=1, chat_id=1, content_file_id="c", style_file_id="s", size=48)
    assert job.speed == PAINTED
    assert t("en", "quick_caption") not in result_caption(job, (48, 32))
    job.speed = QUICK
    for lang in ("en", "ru"):
        job.lang = lang
        assert t(lang, "quick_caption") in result_caption(job, (48, 32))


def test_the_auto_bound_comes_from_its_variable() -> None:
    from stylebot.config import Config, ConfigError

    token = {"TELEGRAM_BOT_TOKEN": "123456:ABC"}
    assert Config.from_env(token, dotenv=None).auto_quick_wait == 60
    assert Config.from_env({**token, "STYLEBOT_AUTO_QUICK_WAIT": "15"}, dotenv=None).auto_quick_wait == 15
    with pytest.raises(ConfigError, match="STYLEBOT_AUTO_QUICK_WAIT"):
        Config.from_env({**token, "STYLEBOT_AUTO_QUICK_WAIT": "soon"}, dotenv=None)
