"""The two language tables agree: every English text has a Russian one with the same placeholders.

A missing Russian key would silently fall back to English; a placeholder spelled
differently would raise KeyError in ``texts.t`` for Russian users only.
"""

from __future__ import annotations

import string

import pytest

from stylebot import texts

#: Language-neutral texts that may fall back to English on purpose ("×{value}").
NEUTRAL = {"strength_custom"}


def placeholders(template: str) -> set[str]:
    """The ``{name}`` fields of a str.format template."""
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


def test_every_english_key_has_a_russian_text() -> None:
    missing = texts.keys(texts.EN) - texts.keys(texts.RU)
    assert missing <= NEUTRAL, f"English keys without a Russian text: {sorted(missing - NEUTRAL)}"


def test_no_russian_key_is_missing_in_english() -> None:
    extra = texts.keys(texts.RU) - texts.keys(texts.EN)
    assert not extra, f"Russian keys with no English text (English users would get a KeyError): {sorted(extra)}"


@pytest.mark.parametrize("key", sorted(texts.keys(texts.EN) & texts.keys(texts.RU)))
def test_both_languages_use_the_same_placeholders(key: str) -> None:
    english, russian = texts.t(texts.EN, key), texts.t(texts.RU, key)
    assert placeholders(english) == placeholders(russian), (key, english, russian)


def test_the_checks_above_can_fail() -> None:
    """Guard against a vacuous comparison (the old test compared English with itself)."""
    assert texts.EN != texts.RU
    assert texts.keys(texts.EN) and texts.keys(texts.RU)
    assert placeholders("{a} and {b:>3}") == {"a", "b"} != placeholders("{a}")
