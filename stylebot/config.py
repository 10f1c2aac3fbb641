"""config: every setting the bot reads, in one frozen dataclass.

This is the only module that reads ``os.environ``. A missing or malformed
variable raises :class:`ConfigError` naming the variable (never its value:
one of them is the bot token).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from stylebot import hostmem
from stylebot.errors import ConfigError
from stylebot.logs import safe_url

#: The repository root (where `.env`, `data/` and `vgg19_cache.pth` live by default).
ROOT = Path(__file__).resolve().parents[1]
#: The gallery shipped with the bot. Defined here, at the bottom of the layers, so that config needs
#: nothing from the gallery package; ``stylebot.gallery.catalog.DEFAULT_DIR`` is this same folder.
DEFAULT_STYLES_DIR = Path(__file__).resolve().parent / "gallery" / "styles"

#: Devices the engine accepts (``auto`` picks CUDA when present).
DEVICES = ("auto", "cpu", "cuda")
MODES = ("polling", "webhook")
#: ``0`` turns off certificate and host name checks of ``rediss://`` (Heroku Redis); read by ``redis_store.connect``.
REDIS_TLS_VERIFY = "STYLEBOT_REDIS_TLS_VERIFY"
ENGINES = ("painted", "quick", "auto")


@dataclass(frozen=True)
class Config:
    """Settings for one bot process.

    ``token`` is excluded from ``repr`` so that logging a config, or a
    traceback that shows one, can never leak it.
    """

    token: str = field(repr=False)
    api_url: str | None = None
    data_dir: Path = ROOT / "data"
    weights: Path = ROOT / "vgg19_cache.pth"
    device: str = "auto"
    workers: int = 1
    image_size: int = 512
    max_image_size: int | None = None
    rate_limit: int = 10
    redis_url: str | None = field(default=None, repr=False)
    mode: str = "polling"
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    port: int = 8080
    job_timeout: int = 900  # seconds a job may paint before it is stopped and its user told
    #: The style gallery: images plus an optional manifest.json (names, credits); a missing folder shows none.
    styles_dir: Path = DEFAULT_STYLES_DIR
    #: STYLEBOT_MEMORY_LIMIT in bytes; None: read the cgroup, else physical memory (stylebot/hostmem.py).
    memory_limit: int | None = None
    #: STYLEBOT_CPU_BF16 is not "0": a CPU with native bf16 paints in bf16 (its memory model is bf16's).
    cpu_bf16: bool = True
    #: STYLEBOT_ENGINE: "painted" (the Gatys engine), "quick" (the draft network only: no torch in the
    #: process) or "auto" (painted, or quick where the painted engine cannot load). See DESIGN.md.
    engine: str = "painted"
    #: STYLEBOT_AUTO_QUICK_WAIT: with ``engine="auto"``, a job whose user made no speed choice is answered Quick
    #: while the painting queue's estimated wait (seconds; stylebot/chat/speed.py) is over this bound.
    auto_quick_wait: int = 60

    @property
    def db_path(self) -> Path:
        return self.data_dir / "stylebot.sqlite3"

    @property
    def results_dir(self) -> Path:
        """Full-quality PNGs, kept so the "Full quality file" button works."""
        return self.data_dir / "results"

    def size_choices(self, gpu: bool) -> list[int]:
        """Output sizes offered in /settings: capped by the device and by config.

        A CPU job at 1024 px takes minutes and ~4x the memory of 512 px, so
        CPUs stop at 1024 unless the operator says otherwise; GPUs go to 2048.
        """
        cap = self.max_image_size or (2048 if gpu else 1024)
        cap = max(cap, self.image_size)
        sizes = {self.image_size, 512, 768, 1024} | ({2048} if gpu else set())
        return sorted(s for s in sizes if s <= cap)

    def fit_to_host(self, gpu: bool, root: Path = Path("/")) -> tuple[Config, hostmem.Fit]:
        """This config with sizes and workers that fit the process's memory, and why (one log line).

        For processes that paint (the polling bot, an RQ worker): sizes whose measured peak would not
        fit beside the bot and the other workers are dropped, and ``image_size``, ``max_image_size``
        and ``workers`` are clamped (:func:`stylebot.hostmem.fit`). On a GPU the jobs' tensors live
        in its memory, not the host's, so only the limit is said.
        """
        limit = hostmem.read_limit(self.memory_limit, root)
        offered = self.size_choices(gpu)
        if gpu:
            found = hostmem.Fit(self.image_size, self.max_image_size, self.workers, limit, "cuda", tuple(offered))
            return self, found
        dtype = "bf16" if self.cpu_bf16 and hostmem.cpu_has_native_bf16(root) else "fp32"
        found = hostmem.fit(limit, self.image_size, self.max_image_size, self.workers, offered, dtype)
        fitted = replace(self, image_size=found.image_size, max_image_size=found.max_image_size, workers=found.workers)
        return fitted, found

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        dotenv: Path | None = ROOT / ".env",
        require_token: bool = True,
    ) -> Config:
        """Read settings from ``env`` (default ``os.environ``) over a ``.env`` file.

        Real environment variables win over ``.env`` so that an operator can
        override a checked-out file on one run.
        """
        values: dict[str, str] = {}
        if dotenv is not None and dotenv.is_file():
            values.update(read_dotenv(dotenv))
        values.update(os.environ if env is None else env)

        def get(name: str) -> str | None:
            value = values.get(name, "").strip()
            return value or None

        token = _token(get, require_token)
        device = _choice(get, "STYLEBOT_DEVICE", DEVICES)
        mode = _choice(get, "STYLEBOT_MODE", MODES)
        engine = _choice(get, "STYLEBOT_ENGINE", ENGINES)
        redis_url = get("REDIS_URL")
        if mode == "webhook" and not redis_url:
            raise ConfigError("STYLEBOT_MODE=webhook needs REDIS_URL (jobs run on RQ workers)")
        return cls(
            token=token or "",
            api_url=_api_url(get),
            data_dir=_path(get, "STYLEBOT_DATA_DIR", ROOT / "data"),
            weights=_path(get, "STYLEBOT_WEIGHTS", ROOT / "vgg19_cache.pth"),
            device=device,
            workers=_int(get, "STYLEBOT_WORKERS", 1, low=1, high=64),
            image_size=_int(get, "STYLEBOT_IMAGE_SIZE", 512, low=16, high=4096),
            max_image_size=_optional_int(get, "STYLEBOT_MAX_IMAGE_SIZE", low=16, high=8192),
            rate_limit=_int(get, "STYLEBOT_RATE_LIMIT", 10, low=0, high=100000),
            redis_url=redis_url,
            mode=mode,
            webhook_url=get("STYLEBOT_WEBHOOK_URL"),
            webhook_secret=get("STYLEBOT_WEBHOOK_SECRET"),
            port=_int(get, "PORT", 8080, low=1, high=65535),
            job_timeout=_int(get, "STYLEBOT_JOB_TIMEOUT", 900, low=10, high=86400),
            styles_dir=_path(get, "STYLEBOT_STYLES_DIR", DEFAULT_STYLES_DIR),
            memory_limit=_memory_limit(get),
            cpu_bf16=get("STYLEBOT_CPU_BF16") != "0",
            engine=engine,
            auto_quick_wait=_int(get, "STYLEBOT_AUTO_QUICK_WAIT", 60, low=0, high=86400),
        )

    def describe(self) -> str:
        """One log line of the effective settings, with secrets left out."""
        shown = []
        for f in fields(self):
            value = getattr(self, f.name) if f.repr else ("set" if getattr(self, f.name) else "unset")
            if f.name == "api_url":
                value = safe_url(value)  # no userinfo, token path or query in a log line (issue 18)
            shown.append(f"{f.name}={value}")
        return " ".join(shown)


Getter = Callable[[str], str | None]


def _token(get: Getter, required: bool) -> str:
    """The bot token, checked for shape (never echoed: it is the one secret)."""
    token = get("TELEGRAM_BOT_TOKEN")
    if token is None and required:
        raise ConfigError(
            "TELEGRAM_BOT_TOKEN is not set. Create a bot with @BotFather, then "
            "`export TELEGRAM_BOT_TOKEN=...` (or put it in .env). "
            "To try the bot without a token: `python main.py --playground`."
        )
    if token is not None and (":" not in token or any(c.isspace() for c in token)):
        raise ConfigError("TELEGRAM_BOT_TOKEN does not look like a bot token (expected 123456:ABC...)")
    return token or ""


def _choice(get: Getter, name: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed``; the first is the default."""
    value = get(name) or allowed[0]
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}")
    return value


def _api_url(get: Getter) -> str | None:
    api_url = get("TELEGRAM_API_URL")
    if api_url is not None and not api_url.startswith(("http://", "https://")):
        raise ConfigError("TELEGRAM_API_URL must start with http:// or https://")
    return None if api_url is None else api_url.rstrip("/")


def _path(get: Getter, name: str, default: Path) -> Path:
    """A path setting; a relative one is taken from the working directory, as a shell user expects."""
    path = Path(get(name) or default)
    return path if path.is_absolute() else Path.cwd() / path


def _memory_limit(get: Getter) -> int | None:
    raw = get("STYLEBOT_MEMORY_LIMIT")
    try:
        return None if raw is None else hostmem.parse_size(raw)
    except ValueError:
        raise ConfigError("STYLEBOT_MEMORY_LIMIT must be a size such as 512M, 1G or a number of bytes") from None


def _int(get: Callable[[str], str | None], name: str, default: int, low: int, high: int) -> int:
    """A setting that always has a value: ``default`` when unset (so the field stays a plain ``int``)."""
    value = _optional_int(get, name, low, high)
    return default if value is None else value


def _optional_int(get: Callable[[str], str | None], name: str, low: int, high: int) -> int | None:
    """A whole number in ``[low, high]``, or None when the variable is unset."""
    raw = get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}")
    return value


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines parsed by python-dotenv: comments (also after a value), quotes, ``export``."""
    from dotenv import dotenv_values

    return {key: value for key, value in dotenv_values(path).items() if value is not None}
