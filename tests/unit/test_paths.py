"""Distrust and privacy (issue 18), piece by piece: getFile paths, logged URLs, file modes, log pseudonyms, Redis TLS.

The whole bot is driven against these in tests/e2e/test_distrust.py and tests/e2e/test_privacy.py.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from stylebot import private
from stylebot.config import Config
from stylebot.errors import UnsafeFile
from stylebot.logs import pseudonym, safe_url, who
from stylebot.store.sqlite_store import Store
from stylebot.tg import FILE_PATH_MAX, check_file_path

HOSTILE_PATHS = [
    "",
    "../logOut",
    "photos/../../logOut",
    "photos/./file_1.jpg",
    "%2e%2e/logOut",
    "photos/%2e%2e/x",
    "https://evil.example/x.jpg",
    "//evil.example/x.jpg",
    "evil.example:80/x.jpg",
    "/etc/passwd",
    "photos/file_1.jpg?token=1",
    "photos/file_1.jpg#top",
    "photos/file\n_1.jpg",
    "photos/file\x00_1.jpg",
    "photos/file\x7f_1.jpg",
    "photos\\..\\logOut",
    "photos//file_1.jpg",
    "photos/file 1.jpg",
    "p" * (FILE_PATH_MAX + 1),
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_hostile_file_paths_are_refused(path: str) -> None:
    with pytest.raises(UnsafeFile, match="getFile"):
        check_file_path(path)


@pytest.mark.parametrize("path", ["photos/file_0.jpg", "documents/file_12.png", "animations/file_3.gif.mp4", "a"])
def test_telegrams_own_file_paths_pass(path: str) -> None:
    assert check_file_path(path) == path


def test_file_path_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(UnsafeFile):
        check_file_path(None)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:secret@api.example.org:8443/base?key=secret#frag", "https://api.example.org:8443/base"),
        ("http://127.0.0.1:8081", "http://127.0.0.1:8081"),
        ("https://api.example.org/bot123456:AAAA-secret/getMe", "https://api.example.org/bot<token>"),
        ("https://api.example.org/proxy/file/bot123:x/photos/a.jpg", "https://api.example.org/proxy/bot<token>"),
    ],
)
def test_safe_url_leaves_out_credentials(url: str, shown: str) -> None:
    assert safe_url(url) == shown


def test_config_describe_logs_the_api_url_without_credentials(tmp_path: Path) -> None:
    config = Config(token="1:x", api_url="https://ops:hunter2@bots.example.org/tg?auth=s3cr3t", data_dir=tmp_path)
    line = config.describe()
    assert "api_url=https://bots.example.org/tg" in line
    assert "hunter2" not in line and "s3cr3t" not in line and "ops" not in line


# --- file modes ---------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_files_are_created_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        with private.open_private(tmp_path / "a.png") as out:
            out.write(b"x")
        private.create_file(tmp_path / "db")
        folder = private.make_dirs(tmp_path / "x" / "y" / "z")
    finally:
        os.umask(old)
    assert mode(tmp_path / "a.png") == 0o600
    assert mode(tmp_path / "db") == 0o600
    assert [mode(p) for p in (folder, folder.parent, folder.parent.parent)] == [0o700] * 3


def test_an_existing_loose_file_is_tightened_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.png"
    path.write_bytes(b"old")
    path.chmod(0o644)
    with private.open_private(path, "ab") as out:
        out.write(b"new")
    assert mode(path) == 0o600 and path.read_bytes() == b"oldnew"


def test_secure_dir_tightens_an_existing_tree_of_ours(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "results").mkdir(parents=True)
    data.chmod(0o755)
    (data / "results").chmod(0o777)
    for name in ("stylebot.sqlite3", "stylebot.sqlite3-wal", "results/job.png"):
        (data / name).write_bytes(b"x")
        (data / name).chmod(0o644)
    os.symlink("/etc/hostname", data / "link")  # not followed: /etc/hostname keeps its mode
    before = mode(Path("/etc/hostname"))
    private.secure_dir(data)
    assert mode(data) == mode(data / "results") == 0o700
    assert {mode(data / n) for n in ("stylebot.sqlite3", "stylebot.sqlite3-wal", "results/job.png")} == {0o600}
    assert mode(Path("/etc/hostname")) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a folder to another user (chown)")
def test_secure_dir_refuses_a_folder_or_file_owned_by_someone_else(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(private.DataDirError, match="owned by uid 65534"):
        private.secure_dir(theirs)
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "planted.png").write_bytes(b"x")
    (ours / "planted.png").chmod(0o644)
    os.chown(ours / "planted.png", 65534, 65534)
    with pytest.raises(private.DataDirError, match=r"planted\.png"):
        private.secure_dir(ours)


# --- log pseudonyms -----------------------------------------------------------------------------


def test_pseudonyms_come_from_the_users_salt_and_forget_unties_them(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    name = who(store, 424242)
    assert name.startswith("u:") and len(name) == 10 and "424242" not in name
    assert who(store, 424242) == name  # stable while the salt lives
    assert who(Store(tmp_path / "db.sqlite3"), 424242) == name  # every process reads the same salt
    assert who(store, 424242, chat_id=-100777).split()[1].startswith("c:")
    assert who(store, 424242, chat_id=424242) == name  # a private chat is the user: one name
    assert who(store, 1) != name
    store.forget_user(424242)
    assert who(store, 424242) != name  # a new salt: old lines no longer point at the user
    assert pseudonym(b"salt", 5) == pseudonym(b"salt", 5) != pseudonym(b"pepper", 5)


def test_a_store_that_fails_still_gives_a_pseudonym_never_the_id() -> None:
    class Broken:
        def user_salt(self, user_id: int) -> bytes:
            raise OSError("disk full")

    assert who(Broken(), 31337).startswith("u:") and "31337" not in who(Broken(), 31337)
    assert "31337" not in who(object(), 31337)


# --- Redis TLS ----------------------------------------------------------------------------------


def test_rediss_verifies_certificates_and_host_names_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("redis")
    from stylebot.store.redis_store import connect

    monkeypatch.delenv("STYLEBOT_REDIS_TLS_VERIFY", raising=False)
    kwargs = connect("rediss://:pw@redis.example.org:6380/0").connection_pool.connection_kwargs
    assert kwargs["ssl_cert_reqs"] == "required" and kwargs["ssl_check_hostname"] is True


def test_rediss_verification_opt_out_is_explicit(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("redis")
    from stylebot.store.redis_store import connect

    monkeypatch.setenv("STYLEBOT_REDIS_TLS_VERIFY", "0")
    kwargs = connect("rediss://:pw@redis.example.org:6380/0").connection_pool.connection_kwargs
    assert kwargs["ssl_cert_reqs"] == "none" and kwargs["ssl_check_hostname"] is False
    monkeypatch.setenv("STYLEBOT_REDIS_TLS_VERIFY", "1")
    assert connect("rediss://redis.example.org/0").connection_pool.connection_kwargs["ssl_cert_reqs"] == "required"
    monkeypatch.setenv("STYLEBOT_REDIS_TLS_VERIFY", "maybe")
    with pytest.raises(SystemExit, match="STYLEBOT_REDIS_TLS_VERIFY"):
        connect("rediss://redis.example.org/0")
    monkeypatch.setenv("STYLEBOT_REDIS_TLS_VERIFY", "0")
    assert "ssl_cert_reqs" not in connect("redis://localhost/0").connection_pool.connection_kwargs  # plain: no TLS
