"""quota: what a job costs against its user's hourly quota, and how long it may paint.

The quota counts work, not jobs: a job's cost is its output pixels relative to the default job,
``(size / base)²`` with ``base = max(STYLEBOT_IMAGE_SIZE, 512)``, and never less than 1. So a
1024 px job costs 4 where a 512 px one costs 1, and ``STYLEBOT_RATE_LIMIT`` keeps its meaning:
that many default-size jobs per hour (existing users see no change at 512 px).

Why pixels and not engine-seconds: the cost must be known when the job is asked for (to refuse
it before it queues), it must be the same on a fast and a slow host, and it must not charge a user
for a machine that other work slows down. The finest level's time and memory per evaluation grow
with its pixels, and on large jobs it is most of the work (bench/memory_table.py: 1024 px took 4.1x
the 512 px job's time). Small jobs cost 1, not less: the coarse levels (128 and 256 px) are the same
for every size and are most of a small job's work. The same rule scales the job timeout.

Pure functions, written once: both stores (SQLite, Redis) record each job's size under the user's
keyed hash and apply :func:`job_cost` when asked for the window's work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: The quota's window (seconds).
WINDOW = 3600.0

#: Jobs up to this size (or up to the default, when larger) cost one job.
BASE_SIZE = 512


def job_cost(size: int | None, default_size: int) -> float:
    """Work of a job at long side ``size`` in default jobs (``None``: recorded before sizes were, 1)."""
    if size is None or size <= 0:
        return 1.0
    return max(1.0, (size / max(default_size, BASE_SIZE)) ** 2)


def scaled_timeout(base: float, size: int, default_size: int) -> float:
    """``STYLEBOT_JOB_TIMEOUT`` is for the default size; larger jobs get it times their cost, smaller ones it all."""
    return base * max(1.0, job_cost(size, default_size))


def quota_wait(spent: Sequence[tuple[float, float]], cost: float, limit: float, now: float) -> int | None:
    """Minutes until a job of ``cost`` fits the quota, or ``None`` if it fits now.

    ``spent``: ``(created_at, cost)`` of the user's jobs in the window, oldest first. A job never
    costs more than the whole quota, so a user with an empty window may always paint one.
    """
    if limit <= 0:
        return None
    cost = min(cost, limit)
    used = sum(c for _, c in spent)
    if used + cost <= limit + 1e-9:
        return None
    for at, c in spent:  # the oldest leave the window first
        used -= c
        if used + cost <= limit + 1e-9:
            return max(1, math.ceil((at + WINDOW - now) / 60 - 1e-9))
    return max(1, math.ceil((spent[-1][0] + WINDOW - now) / 60)) if spent else None
