"""A scale-out worker's identity: unique among live workers wherever they run."""

from __future__ import annotations

import pytest


def test_worker_identities_differ_even_with_one_host_and_pid() -> None:
    """Containers share pid 1 (and, with host networking, the host name): identities must still differ."""
    pytest.importorskip("rq")
    from stylebot.scaleout.rq_queue import worker_identity

    first, second = worker_identity(), worker_identity()
    assert first != second
    assert first.rsplit(":", 1)[0] == second.rsplit(":", 1)[0]  # host:pid, then the nonce
