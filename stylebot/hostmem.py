"""hostmem: how much memory this process may use, and which output sizes fit in it.

A bot that offers 1024 px on a 512 MB dyno is killed by the kernel in the middle of a job, with no
reply to anyone. So each painting process (the polling bot, an RQ worker) reads its limit once at
start and keeps only the sizes, and the number of workers, whose measured peak fits:

* the limit: ``STYLEBOT_MEMORY_LIMIT`` (parsed by :func:`parse_size`) when set; else the memory cgroup
  of this process (v2 ``memory.max``, v1 ``memory.limit_in_bytes``, found through /proc/self/cgroup;
  the tightest along the path up to the root), capped by physical memory (/proc/meminfo);
* the model, written once in :func:`fits`: ``base + workers × share(size, dtype) + headroom <= limit``.
  ``base`` is the idle bot with the engine loaded, ``share(size)`` one job's peak above it, both
  measured with the CPU wheels by ``bench/memory_table.py`` (DESIGN.md "Memory that fits the host").
  Every worker may paint the largest size at once, so each is counted at that size.

Torch-free and dependency-free on purpose: config reads it before any engine is loaded, the webhook
process has no engine at all, and the unit tests feed it fake cgroup trees (a folder given as ``root``).
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

MIB = 1024 * 1024

#: Resident set of the idle bot with the engine loaded (MiB): ``import stylebot.app`` + ``Engine(...)``
#: with torch 2.13.0+cpu, measured by ``bench/memory_table.py`` (257-263 MiB over its eight cells; the largest kept).
BASE_MIB = 263

#: One job's peak above the base (MiB) for a square N×N content, by dtype: ``bench/memory_table.py``
#: (CPU wheels, torch 2.13.0+cpu, 2 threads, preset "default"; the first job of a process, so torch's
#: one-time costs are in). Between two sizes the share is interpolated in pixels; above the last, it
#: grows with the pixels like the last step; below the first, it is the first's.
SHARE_MIB: dict[str, dict[int, float]] = {
    "bf16": {256: 140, 512: 183, 768: 271, 1024: 385},
    "fp32": {256: 186, 512: 214, 768: 338, 1024: 481},
}

#: What the model keeps free beside the bot and its jobs (MiB): a burst's arrivals decoded in the
#: handlers, a later job's fragmentation, and the error of one machine's measurement. Set from
#: ``bench/memory_burst.py`` (50 users, 512M, 3 results): the bot peaked 26 MiB (bf16) and 36 MiB (fp32)
#: above ``BASE_MIB + share(512)``; 40 covers both.
HEADROOM_MIB = 40

#: The least decode budget a painting process keeps (MiB): a 12 MP phone JPEG decodes reduced (draft) in
#: a few MiB, a 16 MP RGBA PNG needs ~64; images up to 16 MP are decoded alone when over the budget.
DECODE_FLOOR_MIB = 48

#: Output sizes a host may be left with when the configured ones do not fit (largest that fits wins).
LADDER = (256, 384, 512, 768, 1024, 1536, 2048)

#: cgroup v1 writes "no limit" as a huge number (PAGE_COUNTER_MAX pages); anything above this is none.
_UNLIMITED = 1 << 60


@dataclass(frozen=True)
class MemoryLimit:
    """The limit this process runs under, and where it was read (said in the start-up log line)."""

    bytes: int
    source: str

    @property
    def mib(self) -> float:
        return self.bytes / MIB


def parse_size(text: str) -> int:
    """``512M``, ``1G``, ``1.5GiB``, ``536870912`` → bytes (K/M/G/T are binary, as Docker and Heroku mean them).

    :raises ValueError: anything else, or a size under 1 MiB (surely a mistake: the bot needs hundreds).
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"not a memory size: {text!r} (expected e.g. 512M, 1G or a number of bytes)")
    value = float(m.group(1)) * 1024 ** " kmgt".index((m.group(2) or " ").lower())
    if value < MIB:
        raise ValueError(f"memory size {text!r} is under 1 MiB")
    return int(value)


def _read_int(path: Path) -> int | None:
    """A limit file's number; ``None`` for "max", a missing or unreadable file, or v1's "unlimited"."""
    try:
        raw = path.read_text().strip()
    except OSError:
        return None
    if not raw.isdigit():
        return None
    value = int(raw)
    return value if 0 < value < _UNLIMITED else None


def _cgroup_paths(root: Path) -> tuple[str | None, str | None]:
    """This process's (v2 path, v1 memory path) from /proc/self/cgroup."""
    v2 = v1 = None
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None, None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v2, v1


def _tightest(mount: Path, cgroup_path: str, name: str) -> tuple[int, Path] | None:
    """The smallest ``name`` limit from the process's cgroup up to the mount's root.

    A container often sees the host's path in /proc/self/cgroup but its own cgroup mounted at the
    root, so the walk also reads the root; a parent's limit binds its children either way.
    """
    found: tuple[int, Path] | None = None
    here = mount / cgroup_path.strip("/")
    for folder in [here, *here.parents]:
        if folder != mount and mount not in folder.parents:
            break
        value = _read_int(folder / name)
        if value is not None and (found is None or value < found[0]):
            found = (value, folder / name)
    return found


def physical_memory(root: Path = Path("/")) -> int | None:
    """MemTotal from /proc/meminfo, in bytes."""
    try:
        for line in (root / "proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def read_limit(override: int | None = None, root: Path = Path("/")) -> MemoryLimit | None:
    """The memory this process may use: ``override`` (STYLEBOT_MEMORY_LIMIT), else cgroup, else physical.

    ``root`` is the file system root to read from (tests pass a folder with a fake tree). ``None`` when
    nothing can be read (not Linux): then nothing is clamped.
    """
    if override is not None:
        return MemoryLimit(override, "STYLEBOT_MEMORY_LIMIT")
    physical = physical_memory(root)
    v2, v1 = _cgroup_paths(root)
    candidates: list[tuple[int, str]] = []
    if v2 is not None:
        for mount in (root / "sys/fs/cgroup", root / "sys/fs/cgroup/unified"):
            hit = _tightest(mount, v2, "memory.max")
            if hit is not None:
                candidates.append((hit[0], f"cgroup v2 {_shown(hit[1], root)}"))
                break
    if v1 is not None:
        hit = _tightest(root / "sys/fs/cgroup/memory", v1, "memory.limit_in_bytes")
        if hit is not None:
            candidates.append((hit[0], f"cgroup v1 {_shown(hit[1], root)}"))
    if candidates:
        value, source = min(candidates)
        if physical is None or value <= physical:
            return MemoryLimit(value, source)
    if physical is not None:
        return MemoryLimit(physical, "physical memory (/proc/meminfo)")
    return None


def _shown(path: Path, root: Path) -> str:
    return "/" + str(path.relative_to(root))


def cpu_has_native_bf16(root: Path = Path("/"), bf16_setting: str | None = None) -> bool:
    """Whether jobs here run in bf16: the CPU flags torch checks, read from /proc/cpuinfo (no torch).

    ``bf16_setting`` is STYLEBOT_CPU_BF16; "0" forces fp32, as in :mod:`stylebot.engine.platform`.
    """
    if (bf16_setting or "").strip() == "0":
        return False
    try:
        text = (root / "proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[-1].split())
            return bool(flags & {"avx512_bf16", "amx_bf16", "amx_tile"})
    return False


def share_mib(size: int, dtype: str) -> float:
    """One job's measured peak above the base at long side ``size`` (see :data:`SHARE_MIB`)."""
    table = sorted(SHARE_MIB[dtype].items())
    px = size * size
    if px <= table[0][0] ** 2:
        return table[0][1]
    for (s0, m0), (s1, m1) in itertools.pairwise(table):
        if px <= s1 * s1:
            return m0 + (m1 - m0) * (px - s0 * s0) / (s1 * s1 - s0 * s0)
    (s0, m0), (s1, m1) = table[-2], table[-1]
    return m1 + (m1 - m0) * (px - s1 * s1) / (s1 * s1 - s0 * s0)


def fits(limit_mib: float, workers: int, size: int, dtype: str) -> bool:
    """THE rule: the bot, ``workers`` jobs at ``size`` at once and the headroom fit in the limit."""
    return BASE_MIB + workers * share_mib(size, dtype) + HEADROOM_MIB <= limit_mib


@dataclass(frozen=True)
class Fit:
    """What a painting process keeps of its configured sizes and workers, and why (one log line)."""

    image_size: int
    max_image_size: int | None
    workers: int
    limit: MemoryLimit | None
    dtype: str
    sizes: tuple[int, ...] = field(default=())
    changed: tuple[str, ...] = field(default=())

    def allows(self, size: int) -> bool:
        return self.max_image_size is None or size <= self.max_image_size

    def decode_bytes(self, default: int = 256 * MIB, floor: int = DECODE_FLOOR_MIB * MIB) -> int:
        """The shared decode budget (stylebot/decode_budget.py) this host leaves beside the painting.

        What the limit holds beyond the bot and its workers painting at the default size: arrivals
        are decoded while a job paints. Never more than ``default`` (the budget of an unlimited host),
        never less than ``floor`` (a phone photo must still decode); on a GPU the jobs' tensors are
        not in host memory, so the default stands.
        """
        if self.limit is None or self.dtype == "cuda":
            return default
        spare = self.limit.mib - BASE_MIB - self.workers * share_mib(self.image_size, self.dtype)
        return int(max(floor, min(default, spare * MIB)))

    def describe(self) -> str:
        if self.limit is None:
            return "memory limit: unknown (no /proc); sizes and workers as configured"
        kept = ", ".join(map(str, self.sizes)) or "none"
        what = "; ".join(self.changed) if self.changed else "nothing clamped"
        return (
            f"memory limit {self.limit.mib:.0f} MiB from {self.limit.source}; model: {BASE_MIB} MiB bot + "
            f"{self.workers} worker(s) x peak(size, {self.dtype}) + {HEADROOM_MIB} MiB headroom; "
            f"sizes kept: {kept} (default {self.image_size}, workers {self.workers}); {what}; "
            f"decode budget {self.decode_bytes() // MIB} MiB"
        )


def fit(
    limit: MemoryLimit | None,
    image_size: int,
    max_image_size: int | None,
    workers: int,
    offered: list[int],
    dtype: str,
) -> Fit:
    """Clamp the default size, the largest size and the workers count to ``limit`` (:func:`fits`).

    The default size wins over the workers count (a worker that cannot paint the default is of no use),
    and one worker always stays: workers are cut first, then the default size, then the largest size.
    ``offered`` are the sizes /settings would offer without a limit.
    """
    if limit is None:
        return Fit(image_size, max_image_size, workers, None, dtype, tuple(offered))
    mib = limit.mib
    changed: list[str] = []
    keep_workers = workers
    while keep_workers > 1 and not fits(mib, keep_workers, image_size, dtype):
        keep_workers -= 1
    if keep_workers != workers:
        changed.append(f"STYLEBOT_WORKERS {workers} -> {keep_workers}")
    default = image_size
    if not fits(mib, keep_workers, default, dtype):
        smaller = [s for s in LADDER if s < image_size and fits(mib, keep_workers, s, dtype)]
        default = smaller[-1] if smaller else min(LADDER[0], image_size)
        if default != image_size:
            changed.append(f"STYLEBOT_IMAGE_SIZE {image_size} -> {default}")
        if not smaller:
            changed.append(f"even {default} px does not fit: jobs may be killed for memory")
    largest = max([default, *(s for s in offered if fits(mib, keep_workers, s, dtype))])
    cap = largest if max_image_size is None else min(max_image_size, largest)
    cap = max(cap, default)
    if max_image_size is not None and cap < max_image_size:
        changed.append(f"STYLEBOT_MAX_IMAGE_SIZE {max_image_size} -> {cap}")
    elif max_image_size is None and any(s > cap for s in offered):
        changed.append(f"largest size {max(offered)} -> {cap}")
    sizes = tuple(sorted({s for s in offered if s <= cap} | {default}))
    return Fit(default, cap, keep_workers, limit, dtype, sizes, tuple(changed))


#: glibc's ``M_ARENA_MAX`` (mallopt): how many malloc arenas threads may spread over.
_M_ARENA_MAX = -8
#: The malloc arenas a painting process keeps (:func:`limit_malloc_arenas`).
MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process (before its threads start); False where not glibc.

    Why: glibc gives each thread that allocates at once its own arena, up to 8 per core, and an arena
    keeps what was freed in it. A burst of users has dozens of handler threads each decoding an image,
    and with the engine's raised mmap threshold those buffers land in arenas that are never given back.
    ``bench/memory_burst.py`` (50 users, 512M, to the first result, two runs side by side): the bot's
    peak RSS was 483 MiB with glibc's default arenas and 458 MiB with 2 (DESIGN.md has the rest).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, int(arenas)))
    except (OSError, AttributeError):
        return False
