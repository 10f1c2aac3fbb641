"""/forget at the store level: the real SQLite store leaves none of the user's data in any file on disk.

The e2e test (tests/e2e/test_reliability_chats.py) checks this through the bot; here
the store alone is checked, in a fraction of a second: every file id and job id of
the forgotten user is gone from the database, its WAL and shared-memory files
(deleted rows must be overwritten, not just unlinked from the b-tree), while another
user's data stays and the hashed rate-limit events survive.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from stylebot.jobs.job import Job, JobStatus
from stylebot.store.base import STEP_STYLE, Dialog, UserSettings
from stylebot.store.sqlite_store import Store

GONE, STAYS, GROUP = 5005, 6006, -100123


def fill(store: Store, user_id: int) -> set[str]:
    """Give ``user_id`` a row in every table (private and group dialogs); return the strings that identify them."""
    tag = f"{user_id}-{uuid.uuid4().hex}"
    secrets = {
        f"content-{tag}",
        f"group-photo-{tag}",
        f"style-{tag}",
        f"thumb-{tag}",
        f"album-{tag}",
        f"job{uuid.uuid4().hex[:10]}",
        f"job{uuid.uuid4().hex[:10]}",
        f"error-{tag}",
    }
    store.set_dialog(Dialog(user_id, STEP_STYLE, f"content-{tag}"))
    store.set_dialog(Dialog(user_id, STEP_STYLE, f"group-photo-{tag}", GROUP))
    store.save_settings(UserSettings(user_id, size=256, strength=2.0, keep_colors=True))
    store.remember_style(user_id, f"style-{tag}", f"thumb-{tag}")
    store.add_album_item(f"album-group-{tag}", user_id, 7, f"album-{tag}", None, chat_id=GROUP)
    job_ids = sorted(s for s in secrets if s.startswith("job"))
    store.create_job(
        Job(
            user_id=user_id,
            chat_id=user_id,
            content_file_id=f"content-{tag}",
            style_file_id=f"style-{tag}",
            size=64,
            id=job_ids[0],
            status=JobStatus.DONE,
        )
    )
    store.create_job(
        Job(
            user_id=user_id,
            chat_id=GROUP,
            content_file_id=f"group-photo-{tag}",
            style_file_id=f"style-{tag}",
            size=64,
            id=job_ids[1],
        )
    )
    store.set_status(job_ids[1], JobStatus.FAILED, f"error-{tag}")
    return secrets


def on_disk(folder: Path, secrets: set[str]) -> dict[str, list[str]]:
    """Which of ``secrets`` each file in ``folder`` still holds, byte for byte."""
    found = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        data = path.read_bytes()
        hits = sorted(s for s in secrets if s.encode() in data)
        if hits:
            found[path.name] = hits
    return found


def test_forget_user_leaves_no_trace_on_disk_and_keeps_the_rate_limit(tmp_path: Path) -> None:
    store = Store(tmp_path / "stylebot.sqlite3")
    try:
        gone, stays = fill(store, GONE), fill(store, STAYS)
        assert on_disk(tmp_path, gone), "the scan must see the data before /forget (else it proves nothing)"
        limit_before = len(store.jobs_created_since(GONE, time.time() - 60))
        assert limit_before == 2

        deleted = store.forget_user(GONE)

        assert sorted(deleted) == sorted(s for s in gone if s.startswith("job"))
        assert on_disk(tmp_path, gone) == {}
        assert store.get_dialog(GONE) == Dialog(GONE) and store.get_dialog(GONE, GROUP) == Dialog(GONE, chat_id=GROUP)
        assert store.get_settings(GONE) == UserSettings(GONE)
        assert store.recent_styles(GONE) == [] and store.last_job(GONE) is None
        assert all(store.get_job(job_id) is None for job_id in deleted)
        assert len(store.jobs_created_since(GONE, time.time() - 60)) == limit_before  # /forget is no reset
        # The other user is untouched, in the store and on disk.
        assert store.get_dialog(STAYS).content_file_id is not None and store.last_job(STAYS) is not None
        assert store.get_settings(STAYS).size == 256
        assert set().union(*on_disk(tmp_path, stays).values()) >= {s for s in stays if s.startswith("style")}
    finally:
        store.close()
