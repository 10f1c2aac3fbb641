"""config: the bot's settings, read from the environment or ``.env`` (see README's table).

The implementation lives in :mod:`stylebot.config`; this name stays at the top level because
operators and the original layout know it.
"""

from stylebot.config import DEVICES, MODES, ROOT, Config, ConfigError, read_dotenv

__all__ = ["DEVICES", "MODES", "ROOT", "Config", "ConfigError", "read_dotenv"]
