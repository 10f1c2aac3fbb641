"""The delivered-jobs ledger (stylebot/jobs/ledger.py) and what start-up recovery does with it.

Issue 11: a result sent while the disk was full could not be marked DONE; after a SIGKILL the
job ran again. The ledger must be writable on a completely full disk, so that part runs on a
real small tmpfs filled to its last page (skipped, with the reason, where mounting is not allowed).
"""

from __future__ import annotations

import errno
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from stylebot.jobs.health import Health
from stylebot.jobs.job import Job, JobStatus, Stop
from stylebot.jobs.ledger import SLOT_SIZE, Ledger
from stylebot.jobs.threads import ThreadQueue
from stylebot.store.sqlite_store import Store


def test_recorded_ids_are_read_back_after_reopening(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "delivered.ledger", slots=8)
    ledger.record("aaaaaaaaaaaa")
    ledger.record("bbbbbbbbbbbb")
    ledger.close()
    again = Ledger(tmp_path / "delivered.ledger")
    assert again.slots == 8  # an existing file keeps its size
    assert again.delivered(["aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"]) == {"aaaaaaaaaaaa", "bbbbbbbbbbbb"}
    assert "aaaaaaaaaaaa" in again and "cccccccccccc" not in again
    # A long id (not ours today) still fits its fixed-size slot, by digest.
    again.record("x" * 50)
    assert "x" * 50 in again and "x" * 49 not in again
    again.close()


def test_the_file_is_preallocated_and_never_grows(tmp_path: Path) -> None:
    path = tmp_path / "delivered.ledger"
    ledger = Ledger(path, slots=16)
    assert path.stat().st_size == 16 * SLOT_SIZE
    assert path.stat().st_blocks * 512 >= 16 * SLOT_SIZE  # real blocks, not a sparse hole
    for n in range(40):
        ledger.record(f"job{n:09d}")
    assert path.stat().st_size == 16 * SLOT_SIZE
    ledger.close()


def test_wrap_around_keeps_the_newest_and_continues_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "delivered.ledger"
    ledger = Ledger(path, slots=4)
    ids = [f"job{n:09d}" for n in range(6)]
    for job_id in ids:
        ledger.record(job_id)
    ledger.close()
    ledger = Ledger(path)
    assert ledger.delivered(ids) == set(ids[2:])  # the two oldest were overwritten
    ledger.record("job000000006")  # the sequence goes on where it was: the oldest slot (ids[2]) goes next
    assert ledger.delivered([*ids, "job000000006"]) == {*ids[3:], "job000000006"}
    ledger.close()


def test_a_torn_slot_reads_as_unused(tmp_path: Path) -> None:
    path = tmp_path / "delivered.ledger"
    ledger = Ledger(path, slots=4)
    ledger.record("aaaaaaaaaaaa")
    ledger.record("bbbbbbbbbbbb")
    ledger.close()
    data = bytearray(path.read_bytes())
    data[SLOT_SIZE + 10] ^= 0xFF  # the second slot, half written
    path.write_bytes(bytes(data))
    assert Ledger(path).delivered(["aaaaaaaaaaaa", "bbbbbbbbbbbb"]) == {"aaaaaaaaaaaa"}


@pytest.fixture
def full_tmpfs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A 1 MB tmpfs and the path of the filler file that will take its every page."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, timeout=30
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {done.stderr.decode().strip()}")
    try:
        yield mount, mount / "filler.bin"
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True, timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def _fill(filler: Path) -> None:
    with open(filler, "ab", buffering=0) as out:
        for chunk in (1 << 16, 4096):
            while True:
                try:
                    out.write(b"\0" * chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break


def test_recording_works_on_a_completely_full_filesystem(full_tmpfs: tuple[Path, Path]) -> None:
    mount, filler = full_tmpfs
    ledger = Ledger(mount / "delivered.ledger", slots=64)
    _fill(filler)
    with pytest.raises(OSError) as full:
        (mount / "probe").write_bytes(b"\0" * 4096)  # the disk really is full
    assert full.value.errno == errno.ENOSPC
    ids = [f"job{n:09d}" for n in range(100)]  # past the end: wrap-around on the full disk too
    for job_id in ids:
        ledger.record(job_id)
    ledger.close()
    assert Ledger(mount / "delivered.ledger").delivered(ids) == set(ids[-64:])


def test_a_ledger_that_cannot_be_created_on_a_full_disk_is_created_once_space_returns(
    full_tmpfs: tuple[Path, Path],
) -> None:
    mount, filler = full_tmpfs
    _fill(filler)
    ledger = Ledger(mount / "delivered.ledger", slots=512)  # 16 KiB: no room; logged, not raised
    with pytest.raises(OSError):
        ledger.record("aaaaaaaaaaaa")
    assert not list(mount.glob(".*.tmp"))  # no half-written temporary left behind
    filler.unlink()
    ledger.record("aaaaaaaaaaaa")
    assert "aaaaaaaaaaaa" in ledger
    ledger.close()


# --- start-up recovery with the ledger, on the real SQLite store ---------------


def _job(store: Store, job_id: str, user_id: int) -> Job:
    return store.create_job(
        Job(user_id=user_id, chat_id=user_id, content_file_id="c", style_file_id="s", size=64, id=job_id)
    )


def test_recover_marks_a_delivered_job_done_instead_of_queueing_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "stylebot.sqlite3")
    ledger = Ledger(tmp_path / "delivered.ledger")
    sent, cut_off = _job(store, "sent00000001", 1), _job(store, "cut000000002", 2)
    waiting = _job(store, "wait00000003", 3)
    assert store.claim_next() is not None and store.claim_next() is not None  # both running when "killed"
    ledger.record(sent.id)  # its result went out; DONE could not be written
    assert [j.id for j in store.recover(delivered=ledger)] == [cut_off.id, waiting.id]
    job = store.get_job(sent.id)
    assert job is not None and job.status is JobStatus.DONE
    store.close()
    ledger.close()


def test_deferred_start_up_step_runs_before_any_job_is_claimed(tmp_path: Path) -> None:
    """A start-up step that fails (a full disk) is retried by the worker loop; no job runs before it succeeds."""
    store = Store(tmp_path / "stylebot.sqlite3")
    _job(store, "wait00000001", 1)
    order: list[str] = []
    tries = 0
    ran = threading.Event()

    def step() -> None:
        nonlocal tries
        tries += 1
        if tries < 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        order.append("step")

    def execute(job: Job, stop: Stop) -> None:
        order.append(job.id)
        store.set_status(job.id, JobStatus.DONE)
        ran.set()

    health = Health()
    health.degrade("disk full")
    queue = ThreadQueue(store, execute, health=health, probe=lambda: None)
    queue.retry_min = queue.retry_max = 0.05
    queue.defer(step)
    queue.start()
    try:
        assert ran.wait(30), "the job never ran"
        assert order == ["step", "wait00000001"] and tries == 3
        assert health.ok
    finally:
        queue.stop(timeout=5)
        store.close()


def test_a_store_opened_on_a_full_disk_opens_once_space_returns(full_tmpfs: tuple[Path, Path]) -> None:
    """After a clean stop SQLite has removed its WAL and shared-memory files; on a full disk they
    cannot be made again, so opening failed and the bot exited. Now the opening waits for space."""
    mount, filler = full_tmpfs
    store = Store(mount / "stylebot.sqlite3")
    _job(store, "wait00000001", 1)
    store.close()
    _fill(filler)
    store = Store(mount / "stylebot.sqlite3")  # raised "disk I/O error" here
    with pytest.raises(sqlite3.OperationalError):
        store.recover()
    filler.unlink()
    assert [j.id for j in store.recover()] == ["wait00000001"]
    _job(store, "wait00000002", 2)  # the rate-limit salt was read late, and works
    assert len(store.jobs_created_since(2, 0)) == 1
    store.close()
