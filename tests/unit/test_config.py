"""Config.from_env in process: defaults, .env parsing, and errors that name the variable, never the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from stylebot.config import Config, ConfigError

TOKEN = "123456:ABCdefGHIjklMNOpqrSTUvwxYZ012345"


def test_defaults_with_only_a_token(tmp_path: Path) -> None:
    config = Config.from_env({"TELEGRAM_BOT_TOKEN": TOKEN}, dotenv=None)
    assert (config.token, config.workers, config.image_size, config.rate_limit) == (TOKEN, 1, 512, 10)
    assert config.device == "auto" and config.mode == "polling" and config.api_url is None
    assert config.data_dir.is_absolute() and config.weights.is_absolute()


def test_dotenv_with_comments_quotes_and_export(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        f"# the bot\nTELEGRAM_BOT_TOKEN={TOKEN}\nSTYLEBOT_WORKERS=2 # two\n"
        "export STYLEBOT_IMAGE_SIZE='256'\nSTYLEBOT_DEVICE=\"cpu\"\n\n"
    )
    config = Config.from_env({}, dotenv=dotenv)
    assert (config.token, config.workers, config.image_size, config.device) == (TOKEN, 2, 256, "cpu")


def test_environment_wins_over_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"TELEGRAM_BOT_TOKEN={TOKEN}\nSTYLEBOT_WORKERS=2\n")
    assert Config.from_env({"STYLEBOT_WORKERS": "3"}, dotenv=dotenv).workers == 3


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STYLEBOT_WORKERS", "many"),
        ("STYLEBOT_WORKERS", "0"),
        ("STYLEBOT_IMAGE_SIZE", "99999"),
        ("STYLEBOT_DEVICE", "tpu"),
        ("STYLEBOT_MODE", "carrier-pigeon"),
        ("TELEGRAM_API_URL", "ftp://example"),
        ("PORT", "-1"),
    ],
)
def test_a_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Config.from_env({"TELEGRAM_BOT_TOKEN": TOKEN, name: value}, dotenv=None)
    assert name in str(raised.value)
    assert TOKEN not in str(raised.value)


def test_missing_and_malformed_token() -> None:
    with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN is not set"):
        Config.from_env({}, dotenv=None)
    with pytest.raises(ConfigError) as raised:
        Config.from_env({"TELEGRAM_BOT_TOKEN": "not a token at all"}, dotenv=None)
    assert "not a token at all" not in str(raised.value)
    assert Config.from_env({}, dotenv=None, require_token=False).token == ""


def test_webhook_mode_needs_redis() -> None:
    with pytest.raises(ConfigError, match="REDIS_URL"):
        Config.from_env({"TELEGRAM_BOT_TOKEN": TOKEN, "STYLEBOT_MODE": "webhook"}, dotenv=None)


def test_token_and_secrets_stay_out_of_repr_and_describe() -> None:
    config = Config.from_env(
        {
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "REDIS_URL": "redis://:hunter2@localhost/0",
            "STYLEBOT_WEBHOOK_SECRET": "s3cret-value",
        },
        dotenv=None,
    )
    for shown in (repr(config), config.describe()):
        assert TOKEN not in shown and "hunter2" not in shown and "s3cret-value" not in shown
    assert "redis_url=set" in config.describe()


def test_size_choices_follow_the_device_and_the_operator() -> None:
    config = Config.from_env({"TELEGRAM_BOT_TOKEN": TOKEN, "STYLEBOT_IMAGE_SIZE": "640"}, dotenv=None)
    assert config.size_choices(gpu=False) == [512, 640, 768, 1024]
    assert config.size_choices(gpu=True) == [512, 640, 768, 1024, 2048]
    capped = Config.from_env({"TELEGRAM_BOT_TOKEN": TOKEN, "STYLEBOT_MAX_IMAGE_SIZE": "768"}, dotenv=None)
    assert capped.size_choices(gpu=True) == [512, 768]
