"""What the machine offers, decided once per process: the device, native bf16, intra-op threads and
glibc's allocator knobs. Each probe is cached and logged once (``logging``, never ``print``)."""

from __future__ import annotations

import ctypes
import functools
import logging
import os

import torch

__all__ = [
    "CpuTimes",
    "cpu_has_native_bf16",
    "cpu_times",
    "idle_cores",
    "limit_onednn_cache",
    "malloc_for",
    "resolve_device",
    "set_threads",
    "threads_are_per_thread",
]

log = logging.getLogger(__name__)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"`` -> a device; anything else is a ValueError."""
    if str(device) == "auto":
        return torch.device("cuda" if _cuda_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', not {device!r}")
    if dev.type == "cuda" and not _cuda_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available; use 'auto' or 'cpu'")
    return dev


@functools.cache
def _cuda_available() -> bool:
    ok = torch.cuda.is_available()
    log.info("CUDA %s", "available" if ok else "not available")
    return ok


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX512-BF16 or AMX, where oneDNN runs bf16 convolutions natively.

    Measured on the 2-core AVX2 dev machine (no native bf16): a 64->64 3x3 conv at 128² takes 0.032 s
    forward / 0.056 s backward in fp32 channels-last, but 0.198 s / 0.500 s in bf16 (emulated), i.e.
    6-9x slower; and a whole 128 px evaluation went from ~0.1 s to ~9 s. So bf16 is used only where the
    hardware has it (and on CUDA).
    """
    if os.environ.get("STYLEBOT_CPU_BF16", "").strip() == "0":  # measure as a CPU without it would run
        log.info("CPU native bf16: turned off by STYLEBOT_CPU_BF16=0 (fp32 on CPU)")
        return False
    try:
        ok = bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # older torch without these probes: stay in fp32
        ok = False
    log.info("CPU native bf16: %s", "yes (bf16 autocast allowed)" if ok else "no (fp32 on CPU)")
    return ok


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (process-wide) when given; return the count in force."""
    if threads is not None:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


@functools.cache
def threads_are_per_thread() -> bool:
    """True when torch's intra-op pool is OpenMP, where ``torch.set_num_threads`` sets the calling thread's
    own count (checked: a count set in one thread leaves another's alone). With torch's native pool the
    count is process-wide, so a job adapting it would change its neighbours' jobs: adaptation is off then.
    """
    ok = "parallel backend: OpenMP" in torch.__config__.parallel_info()
    log.info("intra-op threads: %s", "OpenMP, per thread (adaptive)" if ok else "process-wide pool (fixed)")
    return ok


#: (idle jiffies, all jiffies, CPUs) from /proc/stat's first line, or None where there is no /proc/stat.
CpuTimes = tuple[int, int, int]


def cpu_times() -> CpuTimes | None:
    """The machine's CPU time so far, to tell how many cores sat idle over an interval (:func:`idle_cores`).

    Why: whether a second thread can pay depends on whether a core is free; timing a probe on it while a
    neighbour is busy costs far more than the probe can win (an OpenMP barrier waits for the descheduled
    thread: one 512 px evaluation took 14 s instead of 1.6 s).
    """
    try:
        with open("/proc/stat", encoding="ascii") as f:
            first = f.readline().split()
            cpus = sum(1 for line in f if line.startswith("cpu") and line[3:4].isdigit())
    except (OSError, UnicodeDecodeError):
        return None
    if not first or first[0] != "cpu" or len(first) < 5 or not cpus:
        return None
    ticks = [int(v) for v in first[1:9]]
    return ticks[3] + ticks[4], sum(ticks), cpus  # idle + iowait, all


def idle_cores(before: CpuTimes | None, after: CpuTimes | None) -> float | None:
    """How many cores, on average, sat idle between two :func:`cpu_times` readings (None: unknown)."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1]) * after[2]


#: oneDNN's primitive cache (default 1024 entries) when a job switches thread counts: see :func:`limit_onednn_cache`.
ONEDNN_CACHE = 64


def limit_onednn_cache() -> None:
    """Cap oneDNN's primitive cache unless the environment already sets it (read once, before the first
    convolution: a no-op after that).

    oneDNN keeps a primitive per (shape, thread count), so a job whose levels run on 1 and on 2 threads
    (:mod:`.tuning`) keeps two sets: default 512 px job +231-241 MB instead of +205-213 fixed. With 64
    entries: +215-218 MB, 5% slower (12.1 s vs 11.3 s, alternating, on the AMX dev machine).
    """
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_CACHE))


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc, or None where there is none (macOS, musl): then the allocator is left alone."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 - both must exist
    except (OSError, AttributeError):
        log.info("not glibc: malloc tuning off")
        return None
    log.info("glibc: malloc tuning on (mmap threshold per level)")
    return libc


def malloc_for(threshold: int) -> None:
    """Trim the heap and set glibc's mmap threshold for the level about to run (process-wide,
    Linux/glibc only; elsewhere a no-op). :func:`stylebot.engine.strips.mmap_threshold` chooses it, because:

    Each block that glibc serves by mmap is returned on free and costs fresh page faults when the next
    one is mapped, which are expensive in this VM; heap blocks are reused, but a heap fragments and
    never shrinks past a live block. Measured on whole 512 px default jobs, one after the other on the
    idle dev machine, with a per-level RSS sampler (not kept; ``bench/strips.py`` shows the
    per-evaluation side of it):

    * glibc's default (a threshold that rises to 32 MB): heap only, 27.5 s, +300 MB (over budget);
    * 1 MB threshold at every level above MMAP_ABOVE_PX: 38.6 s, +198 MB, a quarter of the CPU time
      in the kernel (page faults);
    * per level, as here: small levels 32 MB (heap: the 128 px level took 20 s instead of 8 s under
      1 MB), the untiled 256 px level 1 MB (its whole-image graph in the heap peaked at +260 MB),
      strip-tiled levels just above a strip's feature map, with 8k px strips: 34.5 s, +218 MB.

    Two jobs at different levels at once just share the last setting; that changes memory and speed,
    never results.
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
        libc.mallopt(-3, threshold)  # M_MMAP_THRESHOLD
