"""main: start the style-transfer bot.

    python main.py                 # the bot: long polling + in-process worker threads
    python main.py --playground    # the same bot against a local Bot API and a chat page
    python main.py worker          # an RQ worker (scale-out mode, needs REDIS_URL)
    STYLEBOT_MODE=webhook python main.py   # the webhook web process (needs REDIS_URL)

Only the command line lives here; :mod:`stylebot.app` builds and runs the parts.
"""

from __future__ import annotations

import argparse
import sys

from stylebot.config import Config, ConfigError
from stylebot.logs import setup_logging


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="main.py",
        description="Telegram bot that repaints a photo in the style of another picture.",
        epilog="Settings come from the environment (or .env): TELEGRAM_BOT_TOKEN, TELEGRAM_API_URL, "
        "STYLEBOT_DATA_DIR, STYLEBOT_WEIGHTS, STYLEBOT_DEVICE, STYLEBOT_WORKERS, STYLEBOT_IMAGE_SIZE, "
        "STYLEBOT_STYLES_DIR. See README.md.",
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=["bot", "worker"],
        default="bot",
        help="bot (default): run the bot; worker: run an RQ worker (needs REDIS_URL)",
    )
    parser.add_argument(
        "--playground",
        action="store_true",
        help="run the bot against a local Bot API emulator with a chat page; no token needed",
    )
    parser.add_argument("--port", type=int, default=8080, help="playground page port (default 8080)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = Config.from_env(require_token=not args.playground)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.playground:
        from stylebot.app import run_playground

        return run_playground(config, args.port)
    setup_logging(config.token)
    if args.command == "worker":
        from stylebot.scaleout.worker import run_worker

        return run_worker(config)
    if config.mode == "webhook":
        from stylebot.scaleout.webhook import run_webhook

        return run_webhook(config)
    from stylebot.app import run_polling

    return run_polling(config)


if __name__ == "__main__":
    sys.exit(main())
