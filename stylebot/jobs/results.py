"""results: the full-quality result files, and the words that describe a result.

The PNG behind "Full quality file" is written here (atomically, through
:func:`write_file`, the one seam where a full disk shows up), kept
``RESULT_HOURS`` and swept now and then; :func:`probe_disk` is the health probe.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from stylebot import texts
from stylebot.private import make_dirs, open_private

if TYPE_CHECKING:
    from stylebot.jobs.job import Job

log = logging.getLogger(__name__)

#: How long the full-quality PNG is kept for the "Full quality file" button.
RESULT_HOURS = 24
#: Old results are swept at most this often (seconds): globbing the folder after
#: every job cost each queued job a directory scan for nothing (issue 11).
SWEEP_EVERY = 600.0
_last_sweep: dict[Path, float] = {}
_sweep_lock = threading.Lock()


def strength_label(lang: str, strength: float) -> str:
    names = {0.5: "strength_weak", 1.0: "strength_normal", 2.0: "strength_strong"}
    key = names.get(round(strength, 3))
    return texts.t(lang, key) if key else texts.t(lang, "strength_custom", value=f"{strength:g}")


def result_caption(job: Job, size: tuple[int, int], styles_dir: Path | None = None) -> str:
    colors = texts.t(job.lang, "colors_kept" if job.keep_colors else "colors_style")
    caption = texts.t(
        job.lang,
        "result_caption",
        width=size[0],
        height=size[1],
        strength=strength_label(job.lang, job.strength),
        colors=colors,
    )
    if job.style2_file_id:  # mixed styles: say so, with the ratio the buttons below change
        second = round(job.mix * 100)
        caption += " · " + texts.t(job.lang, "mix_caption", first=100 - second, second=second)
    quick = [texts.t(job.lang, "quick_caption")] if job.speed == "quick" else []  # the draft, not a painting
    return "\n".join([caption, *quick, *style_credits(job, styles_dir)])  # gallery styles: name and credit


def style_credits(job: Job, styles_dir: Path | None = None) -> list[str]:
    """One line per gallery style of ``job`` still in the gallery (a cached catalog: two stats a call)."""
    from stylebot.gallery.catalog import DEFAULT_DIR, find_style

    lines = []
    for slug in (job.style_slug, job.style2_slug):
        style = find_style(styles_dir or DEFAULT_DIR, slug) if slug else None
        if style is not None:
            name, credit = style.name(job.lang), style.credit_text(job.lang)
            lines.append(texts.t(job.lang, "result_style_credit", name=name, credit=credit) if credit else name)
    return lines


def result_path(results_dir: Path, job_id: str) -> Path:
    return results_dir / f"{job_id}.png"


def timelapse_path(results_dir: Path, job_id: str) -> Path:
    """The "How it was painted" GIF: kept, swept and forgotten with the result PNG."""
    return results_dir / f"{job_id}.gif"


def sweep_results(results_dir: Path, hours: float = RESULT_HOURS) -> int:
    """Delete full-quality results older than the retention period."""
    if not results_dir.is_dir():
        return 0
    cutoff = time.time() - hours * 3600
    removed = 0
    for path in [*results_dir.glob("*.png"), *results_dir.glob("*.gif")]:  # results and their timelapses
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass
    return removed


def sweep_now_and_then(results_dir: Path, every: float = SWEEP_EVERY) -> None:
    """:func:`sweep_results` at most once per ``every`` seconds per folder; never raises."""
    now = time.monotonic()
    with _sweep_lock:
        if now - _last_sweep.get(results_dir, -every) < every:
            return
        _last_sweep[results_dir] = now
    try:
        sweep_results(results_dir)
    except OSError as exc:
        log.warning("sweeping old results failed: %s", exc)


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, then rename).

    Every file the worker writes goes through here: it is the seam where a
    full disk (``OSError`` ENOSPC) shows up, and where tests inject one; and
    where files are made private (0600, in 0700 folders: stylebot/private.py).
    """
    make_dirs(path.parent)
    tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
    try:
        with open_private(tmp) as out:  # 0600 from its creation: results are the user's pictures
            out.write(data)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: Size of the probe file: large enough that a disk with no room refuses it.
PROBE_BYTES = 64 * 1024


def probe_disk(directory: Path) -> None:
    """Raise ``OSError`` unless ``directory`` takes a small write now (the health probe)."""
    path = Path(directory) / ".probe"
    write_file(path, b"\0" * PROBE_BYTES)
    path.unlink(missing_ok=True)
