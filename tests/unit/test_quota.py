"""stylebot/jobs/quota.py: the quota counts work (pixels), and the timeout scales with size."""

from __future__ import annotations

from stylebot.jobs import quota


def test_cost_is_pixels_relative_to_the_default_job() -> None:
    assert quota.job_cost(512, 512) == 1
    assert quota.job_cost(1024, 512) == 4
    assert quota.job_cost(768, 512) == 2.25
    assert quota.job_cost(None, 512) == 1  # recorded before sizes were
    assert quota.job_cost(256, 512) == 1  # the coarse levels are the same for every size: never under 1
    assert quota.job_cost(512, 48) == 1 and quota.job_cost(1024, 48) == 4  # a default under 512: 512 is one job
    assert quota.job_cost(1024, 1024) == 1


def test_timeout_scales_up_with_size_never_down() -> None:
    assert quota.scaled_timeout(900, 512, 512) == 900
    assert quota.scaled_timeout(900, 1024, 512) == 3600
    assert quota.scaled_timeout(900, 256, 512) == 900


def test_ten_default_jobs_an_hour_as_before() -> None:
    now = 10_000.0
    nine = [(now - 3000 + i, 1.0) for i in range(9)]
    assert quota.quota_wait(nine, 1.0, 10, now) is None
    ten = [*nine, (now - 100, 1.0)]
    # As the count-based rule said: wait until the oldest that counts leaves the hour (3000 s ago: 10 min).
    assert quota.quota_wait(ten, 1.0, 10, now) == 10
    assert quota.quota_wait(ten, 1.0, 0, now) is None  # 0: no limit


def test_a_1024_job_needs_four_default_jobs_of_room() -> None:
    now = 10_000.0
    seven = [(now - 3500 + 60 * i, 1.0) for i in range(7)]
    assert quota.quota_wait(seven, 1.0, 10, now) is None
    # 7 + 4 > 10: one job must leave first, the oldest at now-3500, in 100 s -> 2 min.
    assert quota.quota_wait(seven, 4.0, 10, now) == 2
    assert quota.quota_wait(seven[:6], 4.0, 10, now) is None


def test_a_job_never_costs_more_than_the_whole_quota() -> None:
    assert quota.quota_wait([], 4.0, 2, 0.0) is None
    assert quota.quota_wait([(0.0, 4.0)], 4.0, 2, 60.0) == 59


def test_the_runner_gives_a_larger_job_a_longer_timeout() -> None:
    from pathlib import Path
    from typing import Any

    from stylebot.jobs.job import Job
    from stylebot.jobs.run import Context

    none: Any = None
    ctx = Context(
        store=none, tg=none, engine=none, params=lambda j: j, results_dir=Path("."), delivery=none, job_timeout=900.0
    )
    job = Job(user_id=1, chat_id=1, content_file_id="c", style_file_id="s", size=512)
    assert ctx.timeout_for(job) == 900
    job.size = 1024
    assert ctx.timeout_for(job) == 3600
