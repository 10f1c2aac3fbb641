"""private: the data directory is 0700 and every file the bot writes is 0600 (issue 18).

A public bot keeps users' results, their Telegram file ids and a delivery ledger on
disk; on a shared host none of that is anyone else's business. Files are *created*
with mode 0600 through one opener (no window in which they are world-readable, and
no ``chmod`` to forget at each call site); the data directory is created 0700, and at
start-up an existing one is tightened, with everything in it, if it is ours, or
refused with a clear error if it is not.

SQLite creates its ``-wal`` and ``-shm`` files with the mode of the database file,
so creating the database file here first (:func:`create_file`) makes them 0600 too.
This module imports nothing of the bot but its errors: any layer may use it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO

from stylebot.errors import ConfigError

__all__ = ["DIR_MODE", "FILE_MODE", "DataDirError", "create_file", "make_dirs", "open_private", "opener", "secure_dir"]

DIR_MODE = 0o700
FILE_MODE = 0o600


class DataDirError(ConfigError):
    """The data directory cannot be made private (someone else owns it, or it cannot be changed)."""


def opener(path: str | os.PathLike[str], flags: int) -> int:
    """``open(..., opener=opener)``: a new file is created 0600; an existing one is tightened to 0600.

    The mode argument of ``os.open`` only counts when the file is created, so a file left
    0644 by an older release is ``fchmod``-ed on the descriptor (no race with a rename).
    """
    fd = os.open(path, flags, FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & ~FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_private(path: str | os.PathLike[str], mode: str = "wb") -> IO[bytes]:
    """``open(path, mode)`` for bytes, with the file 0600 (see :func:`opener`)."""
    return open(path, mode, opener=opener)


def create_file(path: str | os.PathLike[str]) -> None:
    """Make sure ``path`` exists and is 0600, leaving its contents alone (the SQLite database)."""
    os.close(opener(path, os.O_RDWR | os.O_CREAT))


def make_dirs(path: Path) -> Path:
    """``mkdir -p`` where every folder it creates is 0700 (``Path.mkdir`` gives new parents the default mode)."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:
            pass  # made meanwhile by another thread or process
    return path


def secure_dir(path: Path) -> Path:
    """Create ``path`` 0700, or tighten an existing one and all it holds; :class:`DataDirError` if it is not ours.

    Walks the tree without following symbolic links: folders become 0700, files 0600.
    A folder or file owned by another user (or that refuses ``chmod``) is refused, not
    silently left open: the operator must fix it (the message says how).
    """
    make_dirs(path)
    me = os.geteuid()
    owner = path.stat().st_uid
    if owner != me:
        raise DataDirError(
            f"the data directory {path} is owned by uid {owner}, not this user (uid {me}); the bot keeps "
            "users' data there: make it yours (chown) or set STYLEBOT_DATA_DIR elsewhere"
        )
    for folder, dirs, files in os.walk(path):
        for name in [".", *dirs, *files]:
            entry = Path(folder) / name if name != "." else Path(folder)
            if name != "." and entry.is_symlink():
                continue
            _tighten(entry, me, DIR_MODE if name == "." or name in dirs else FILE_MODE)
    return path


def _tighten(entry: Path, me: int, mode: int) -> None:
    try:
        info = entry.stat()
    except FileNotFoundError:
        return  # gone meanwhile (a swept result)
    if stat.S_IMODE(info.st_mode) & ~mode == 0:
        return
    if info.st_uid != me:
        raise DataDirError(
            f"{entry} is mode {stat.S_IMODE(info.st_mode):o} and owned by uid {info.st_uid}, not this user "
            f"(uid {me}); the bot keeps users' data there: make it yours (chown) or set STYLEBOT_DATA_DIR elsewhere"
        )
    try:
        os.chmod(entry, mode)
    except OSError as exc:
        raise DataDirError(
            f"cannot make {entry} private (mode {mode:o}): {exc.strerror}; fix it or set STYLEBOT_DATA_DIR elsewhere"
        ) from None
