"""speed: Quick or Painted, the /settings choice and the rule that gives each job its speed (issue 20).

Quick answers with the draft network in about a second; Painted is the Gatys engine (the default). The
rule, in one place so the handlers only ask it (:meth:`SpeedRule.for_job`):

* ``STYLEBOT_ENGINE=quick``: every job is Quick, and /settings offers no choice;
* a user's explicit choice in /settings (Quick or Painted) always wins;
* no choice made: ``auto`` answers Quick while the painting queue's estimated wait is over
  ``STYLEBOT_AUTO_QUICK_WAIT`` seconds, Painted otherwise; ``painted`` always Painted.

Where this process cannot run the draft (no onnxruntime or no model files) Quick is neither offered nor
chosen. The estimate is deliberately simple: the number of jobs waiting × :data:`PAINT_SECONDS` scaled to
the default size by the same work measure the quota uses (jobs/quota.py), over the worker count.
"""

from __future__ import annotations

from dataclasses import dataclass

from stylebot.jobs.job import PAINTED, QUICK, SPEEDS
from stylebot.jobs.quota import job_cost
from stylebot.store.base import StateStore

__all__ = ["PAINT_SECONDS", "SpeedRule"]

#: Seconds one default (512 px) painting takes, per worker: 13.7-19 s measured on the 2-core AMX box
#: (issue 20), 40-75 s on an AVX2-only one; 20 s is the estimate of the queue's wait per waiting job.
PAINT_SECONDS = 20.0
#: The size :data:`PAINT_SECONDS` is for.
PAINT_SECONDS_SIZE = 512


@dataclass(frozen=True)
class SpeedRule:
    """Which speed a job gets (module docstring); built once per process from its config."""

    #: ``STYLEBOT_ENGINE``: painted | quick | auto.
    mode: str = "painted"
    #: Whether this process can answer with the draft (a painted process with the draft network loaded).
    quick_available: bool = False
    #: ``STYLEBOT_AUTO_QUICK_WAIT``: with ``auto``, Quick while the estimated wait is over this (seconds).
    bound: float = 60.0
    #: The operator's default size: what a waiting job is estimated at.
    default_size: int = 512
    workers: int = 1

    @property
    def offered(self) -> bool:
        """/settings shows the choice: not in a quick-only process (all is quick), nor without the draft."""
        return self.mode != QUICK and self.quick_available

    def ticked(self, explicit: str | None) -> str | None:
        """The speed /settings ticks: the user's choice; with none, Painted (``painted``) or none (``auto``)."""
        if explicit in SPEEDS:
            return explicit
        return PAINTED if self.mode == PAINTED else None

    def chosen(self, value: str) -> str | None:
        """A ``set:speed:<value>`` press as the choice to store, or None when it is no valid choice here."""
        return value if self.offered and value in SPEEDS else None

    def estimated_wait(self, waiting: int) -> float:
        """Seconds until a job queued now starts: ``waiting`` jobs × the per-job estimate, over the workers."""
        per_job = PAINT_SECONDS * job_cost(self.default_size, PAINT_SECONDS_SIZE)
        return waiting * per_job / max(self.workers, 1)

    def choose(self, explicit: str | None, waiting: int) -> str:
        """The speed of a job whose user chose ``explicit`` (None: no choice), with ``waiting`` jobs queued."""
        if self.mode == QUICK:
            return QUICK
        if not self.quick_available:
            return PAINTED
        if explicit in SPEEDS:
            return str(explicit)
        if self.mode == "auto" and self.estimated_wait(waiting) > self.bound:
            return QUICK
        return PAINTED

    def for_job(self, explicit: str | None, store: StateStore) -> str:
        """:meth:`choose` with the queue read from ``store`` only when the answer depends on it."""
        if self.mode != "auto" or explicit in SPEEDS or not self.quick_available:
            return self.choose(explicit, 0)
        return self.choose(explicit, len(store.queued_jobs()))


def rule_for(mode: str, quick_available: bool, bound: float, default_size: int, workers: int) -> SpeedRule:
    """The rule of a process (what ``Handlers.for_config`` builds from the config)."""
    return SpeedRule(mode, quick_available, float(bound), default_size, workers)
