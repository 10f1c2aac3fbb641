"""ledger: which jobs' results went out, in a file that needs no free disk space to write.

Issue 11: a result sent while the disk is full cannot be marked ``DONE`` in SQLite
(``OutcomeNotRecorded`` keeps that in memory until the disk frees); a SIGKILL
before then lost it, and the restart ran the job again: two results for one job.
So a delivered job id is also written here, right after the result is sent. The
file is preallocated while space exists (zeros written and fsynced, so its blocks
are real, not holes) and a delivery overwrites one fixed-size slot in place with
``pwrite`` + ``fsync``: overwriting allocated blocks takes no new space on tmpfs or
ext4, so this write works on a completely full disk. Slots are used round-robin;
start-up recovery (``Store.recover``) marks a job found here done instead of
running it again.

Privacy: a slot holds a digest of a random job id and a sequence number, nothing about
users, and not even the id in the clear: after ``/forget`` no file names the user's jobs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import threading
import zlib
from pathlib import Path

from stylebot.private import make_dirs, opener

log = logging.getLogger(__name__)

#: Slots in a new ledger: far more than jobs that can await their ``DONE`` at once (one per worker).
SLOTS = 512
#: Sequence number (1, 2, ...; 0 marks an unused slot), the job id's key, and a CRC32 of both (a torn write
#: reads as unused). 32 bytes divide every page size, so a slot never straddles two pages.
_SLOT = struct.Struct(">Q20sI")
SLOT_SIZE = _SLOT.size
_KEY_BYTES = 20


def _key(job_id: str) -> bytes:
    """The fixed-size key of a job id: a digest, so the file never holds the id itself (see Privacy)."""
    return hashlib.blake2b(job_id.encode(), digest_size=_KEY_BYTES, person=b"stylebot-ledger").digest()


def _pack(seq: int, key: bytes) -> bytes:
    body = struct.pack(">Q20s", seq, key)
    return body + struct.pack(">I", zlib.crc32(body))


def _entries(data: bytes) -> dict[bytes, int]:
    """Every valid slot of a ledger's bytes, as key -> sequence number."""
    found: dict[bytes, int] = {}
    for offset in range(0, len(data) - SLOT_SIZE + 1, SLOT_SIZE):
        seq, key, crc = _SLOT.unpack_from(data, offset)
        if seq and crc == zlib.crc32(data[offset : offset + SLOT_SIZE - 4]):
            found[key] = max(seq, found.get(key, 0))
    return found


class Ledger:
    """A preallocated ring of delivered job ids at ``path`` (thread-safe; one process per data dir).

    Creating it needs space; when the disk is full at that moment it is retried at
    each :meth:`record` (which then raises ``OSError`` as long as it cannot exist).
    """

    def __init__(self, path: Path | str, slots: int = SLOTS) -> None:
        self.path = Path(path)
        self.slots = slots
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._next = 1
        try:
            with self._lock:
                self._open()
        except OSError as exc:
            log.warning("delivered-jobs ledger not available yet (%s); retried at the next delivery", exc)

    def _open(self) -> int:
        """The open file (created, zero-filled and fsynced first if missing); call with the lock held."""
        if self._fd is not None:
            return self._fd
        if not self._usable():
            self._create()
        fd = opener(self.path, os.O_RDWR)  # an older release's file is tightened to 0600
        try:
            size = os.fstat(fd).st_size
            entries = _entries(os.pread(fd, size, 0))
        except OSError:
            os.close(fd)
            raise
        self.slots = size // SLOT_SIZE  # an existing file keeps its own size: no entry is lost
        self._next = max(entries.values(), default=0) + 1
        self._fd = fd
        return fd

    def _usable(self) -> bool:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return False
        return size >= SLOT_SIZE and size % SLOT_SIZE == 0

    def _create(self) -> None:
        """Write the whole file under a temporary name, then link it in place (never over another's)."""
        make_dirs(self.path.parent)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            fd = opener(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:
                os.write(fd, b"\0" * (self.slots * SLOT_SIZE))  # real zeros: allocated blocks, not a sparse hole
                os.fsync(fd)
            finally:
                os.close(fd)
            if self.path.exists() and not self._usable():
                self.path.unlink()  # a file of a wrong size is no ledger (it cannot be one of ours)
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                pass  # another opener made it first: use theirs
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def record(self, job_id: str) -> None:
        """Write ``job_id`` as delivered, durably (fsynced) and in place; raises ``OSError`` on failure."""
        with self._lock:
            fd = self._open()
            seq = self._next
            os.pwrite(fd, _pack(seq, _key(job_id)), ((seq - 1) % self.slots) * SLOT_SIZE)
            os.fsync(fd)
            self._next = seq + 1

    def delivered(self, job_ids: list[str]) -> set[str]:
        """Those of ``job_ids`` recorded as delivered (none while the file cannot be read)."""
        try:
            data = self.path.read_bytes()
        except OSError:
            return set()
        keys = _entries(data)
        return {job_id for job_id in job_ids if _key(job_id) in keys}

    def __contains__(self, job_id: object) -> bool:
        return isinstance(job_id, str) and bool(self.delivered([job_id]))

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
