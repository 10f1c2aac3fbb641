"""Intra-op threads chosen per pyramid level from what this machine does now, not from constants.

Why: whether a second thread pays depends on the machine and on its neighbours. On the 2-core AVX2 host of
issue 13 two threads gave nothing above 128² (512²: 3.28 s an evaluation on one thread, 3.43 s on two), and
with one busy single-threaded process beside it the default 512 px job went from 41.5 s to 100.5 s: two
OpenMP threads fighting for one free core wait at every barrier. So each level times its own evaluations:

* evaluation 0 warms up (new shapes, first page faults) and is not compared;
* evaluations 1 and 2 run on 1 thread and on the engine's full count (the probes: real evaluations, so
  nothing is wasted but the difference between the two); levels of :data:`TWICE_FROM_EVALS` evaluations or
  more (the cheap coarse ones) probe each count twice, alternating, and keep each one's faster time, since
  a burst from a neighbour can double one evaluation on a shared machine;
* the rest of the level runs on the cheaper; more threads must win by :data:`MARGIN`, because one thread
  leaves a core to the bot, another worker or a neighbour;
* the full count is not probed at all while the other cores are busy: if fewer than :data:`IDLE_FOR_MORE`
  cores per extra thread sat idle during the one-thread probe (``platform.idle_cores``, from /proc/stat),
  the level stays on one thread. A two-thread probe beside a busy neighbour cost more than the whole
  level could win (``bench/contention.py``: busy/clean 2.44x with such probes, 1.41x without).

An evaluation is the same work at every step of a level, so a later one much slower than its probe means the
machine changed: after two such in a row the other count is timed again (:data:`REPROBE_ABOVE`), and
every :data:`RECHECK_EVERY` evaluations anyway, since a neighbour leaving does not slow the chosen count
down (on the coarse level, where evaluations are cheap, this costs next to nothing). Levels with fewer than
:data:`MIN_PROBE_EVALS` evaluations, and levels after one where the other count was :data:`KEEP_ABOVE`
times slower, keep the previous choice; the warm-up runs on the previous level's choice too.

Thread counts are set in the calling thread only and only on OpenMP builds (see
:func:`.platform.threads_are_per_thread`), where the count is each thread's own: two jobs in one process
(``STYLEBOT_WORKERS`` > 1) each choose for themselves and never flip each other's setting. Elsewhere the
count is process-wide and adaptation is off. Thread counts change reduction order, never the maths: results
differ by float rounding only (tests/unit/test_engine_threads.py).
"""

from __future__ import annotations

import logging

import torch

__all__ = [
    "IDLE_FOR_MORE",
    "KEEP_ABOVE",
    "MARGIN",
    "MIN_PROBE_EVALS",
    "RECHECK_EVERY",
    "REPROBE_ABOVE",
    "TWICE_FROM_EVALS",
    "LevelThreads",
    "use_threads",
]

log = logging.getLogger(__name__)

#: More threads are kept only when their evaluation takes under this fraction of one thread's.
MARGIN = 0.9
#: A level needs this many evaluations to be worth probing (warm-up, two probes, then at least 2 more).
MIN_PROBE_EVALS = 5
#: Levels with at least this many evaluations probe each count twice (1, n, 1, n).
TWICE_FROM_EVALS = 16
#: A level keeps the previous level's choice without probing when the other count was this many times slower.
KEEP_ABOVE = 2.0
#: Two evaluations in a row at the chosen count this much slower than its probe trigger a probe of the other.
REPROBE_ABOVE = 1.4
#: Evaluations on the chosen count after which the other is timed again anyway (a neighbour may have left).
RECHECK_EVERY = 16
#: More threads are probed only if, while one thread ran, at least this many other cores per extra thread sat
#: idle (``platform.idle_cores``): with a busy neighbour a 2-thread probe costs many evaluations' time.
IDLE_FOR_MORE = 0.5


def use_threads(n: int) -> None:
    """Set this thread's intra-op thread count (a no-op when it is already ``n``)."""
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


class LevelThreads:
    """The thread count for each evaluation of one level: :meth:`before` each, :meth:`after` with its time."""

    def __init__(
        self, label: str, full: int, n_evals: int, previous: int, adaptive: bool, previous_margin: float = 1.0
    ) -> None:
        """
        :param label: the level, for the log line ("512x341").
        :param full: the engine's thread count (the most this job uses).
        :param previous: the previous level's choice: the warm-up runs on it, and it is kept when this level
            is not probed.
        :param adaptive: False: ``full`` threads throughout (the fixed baseline of ``bench/contention.py``).
        :param previous_margin: the previous level's :attr:`margin`; from :data:`KEEP_ABOVE` its choice is
            kept without probing (a 512 px probe on 2 threads beside a busy neighbour took 14 s, against
            1.6 s on one: probing the loser again would cost more than the whole rest of the level).
        """
        self.label, self.full = label, full
        kept = adaptive and previous_margin >= KEEP_ABOVE
        self.probing = adaptive and full > 1 and n_evals >= MIN_PROBE_EVALS and not kept
        #: probe order after the warm-up: one thread, then the full count
        self._queue: list[int] = ([1, full] * (2 if n_evals >= TWICE_FROM_EVALS else 1)) if self.probing else []
        self.chosen: int | None = None if self.probing else (previous if adaptive else full)
        self.times: dict[int, float] = {}
        self._evals = 0
        self._since = self._slow = 0  # evaluations on the chosen count since the last decision; slow ones in a row
        self._current = previous if self.probing and adaptive else self.chosen  # the warm-up's count
        self.reprobes = 0
        if not self.probing:
            why = (
                "fixed"
                if not adaptive or full == 1
                else f"kept: the other count was {previous_margin:.1f}x slower a level below"
                if kept
                else "kept from the previous level"
            )
            log.info("level %s: %d thread%s (%s)", label, self.chosen, "" if self.chosen == 1 else "s", why)

    @property
    def current(self) -> int:
        """The count the next evaluation runs on."""
        assert self._current is not None
        return self._current

    def before(self) -> None:
        """Set the count for the evaluation about to run (in the calling thread)."""
        use_threads(self.current)

    def after(self, seconds: float, idle: float | None = None) -> None:
        """Record the evaluation's wall time and choose the next evaluation's count.

        ``idle``: cores that sat idle during it (None: unknown). After an evaluation on one thread with too
        few idle cores for the others (:data:`IDLE_FOR_MORE`), the full count is not probed: one thread.
        """
        self._evals += 1
        busy = idle is not None and self._current == 1 and self.full > 1 and idle < IDLE_FOR_MORE * (self.full - 1)
        if busy and self.probing and self._evals > 1 and self.full in self._queue:
            self._queue = []
            self.times.setdefault(1, seconds)
            first = self.chosen is None
            self.chosen = self._current = 1
            self._since = self._slow = 0
            if first:
                log.info(
                    "level %s: 1 thread (%.2f s/eval; %.1f idle cores: no probe of %d)",
                    self.label,
                    seconds,
                    idle,
                    self.full,
                )
            return
        log.debug("level %s: evaluation %d on %d thread(s): %.3f s", self.label, self._evals, self._current, seconds)
        if not self.probing or self._evals == 1:  # not probed, or the warm-up: nothing to compare
            if self._queue:
                self._current = self._queue[0]
            return
        ran = self._current
        assert ran is not None
        if self._queue and self._queue[0] == ran:  # a probe
            self._queue.pop(0)
            self.times[ran] = min(seconds, self.times.get(ran, seconds)) if self.chosen is None else seconds
            if self._queue:
                self._current = self._queue[0]
                return
            self._decide()
        else:  # on the chosen count
            self._since += 1
            self._slow = self._slow + 1 if seconds > REPROBE_ABOVE * self.times[ran] else 0
            if busy and (self._slow >= 2 or self._since >= RECHECK_EVERY):  # the other cores are still busy
                self._since = self._slow = 0
                return
            if self._slow >= 2 or self._since >= RECHECK_EVERY:  # the machine changed, or may have
                if self._slow >= 2:  # confirmed twice; one periodic sample could be a burst (seen: "21x")
                    self.times[ran] = seconds
                other = 1 if ran != 1 else self.full
                self._queue = [other]
                self._current = other
                self.reprobes += 1

    @property
    def margin(self) -> float:
        """How many times slower the count not chosen was than the chosen one (1.0 when not measured)."""
        if self.chosen is None or len(self.times) < 2:
            return 1.0
        other = 1 if self.chosen != 1 else self.full
        return self.times[other] / self.times[self.chosen]

    def _decide(self) -> None:
        one, full = self.times[1], self.times[self.full]
        first = self.chosen is None
        self.chosen = self.full if full < MARGIN * one else 1
        self._current = self.chosen
        self._since = self._slow = 0
        other = 1 if self.chosen != 1 else self.full
        msg = "level %s: %d thread%s (%.2f s/eval vs %.2f s with %d)"
        args = (
            self.label,
            self.chosen,
            "" if self.chosen == 1 else "s",
            self.times[self.chosen],
            self.times[other],
            other,
        )
        # Once per level at INFO; a mid-level change (REPROBE_ABOVE) at DEBUG.
        log.log(logging.INFO if first else logging.DEBUG, ("" if first else "re-probed: ") + msg, *args)
