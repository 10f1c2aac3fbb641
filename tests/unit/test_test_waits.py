"""The tests' own waiting rules (issue 18, part 8): scaled deadlines, no fixed sleeps in e2e.

Every wait in tests/e2e goes through ``botkit.wait_until`` / ``botkit.deadline``, so that
``STYLEBOT_TEST_SLOWDOWN`` stretches all of them at once and a failure names what was awaited.
The scans below read the e2e files' syntax trees, so a comment or a string never trips them.
"""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from botkit import ROOT, SLOWDOWN_ENV, deadline, quiet, slowdown, wait_until

E2E = ROOT / "tests" / "e2e"

#: ``time.sleep(<number>)`` calls allowed in tests/e2e: (file name, the number) -> why it is not a wait.
SLEEP_ALLOWED = {
    ("test_reliability_network.py", 0.4): (
        "paces a client that sends its header one byte every 0.4 s: the slow client is the input "
        "under test (under the server's 1 s read timeout, over its 4 s request deadline), not a wait"
    ),
}


def e2e_files() -> list[Path]:
    return sorted(E2E.glob("*.py"))


def _number(node: ast.expr) -> float | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _number(node.operand)
        return None if value is None else -value
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    return None


def fixed_sleeps(source: str) -> list[tuple[int, float]]:
    """(line, seconds) of each ``time.sleep(<number>)`` or ``sleep(<number>)`` in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        is_sleep = (isinstance(func, ast.Attribute) and func.attr == "sleep") or (
            isinstance(func, ast.Name) and func.id == "sleep"
        )
        seconds = _number(node.args[0]) if is_sleep else None
        if seconds is not None:
            found.append((node.lineno, seconds))
    return found


def emulator_waits(source: str) -> list[int]:
    """Lines of ``<emulator>.wait_for(...)`` calls: the emulator's own, unscaled wait."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "wait_for":
            receiver = node.func.value
            name = receiver.attr if isinstance(receiver, ast.Attribute) else getattr(receiver, "id", "")
            if name in ("emulator", "api"):
                lines.append(node.lineno)
    return lines


def test_the_scans_see_what_they_look_for() -> None:
    source = (
        "import time\nfrom time import sleep\n"
        "time.sleep(0.5)\nsleep(2)\ntime.sleep(x)\ntime.sleep(max(0.0, t))\n"
        "emulator.wait_for(f, 30)\nuser.api.wait_for(f)\npage.locator('a').wait_for()\nfirst.wait_for(timeout=9)\n"
        "# time.sleep(1)\ns = 'time.sleep(1)'\n"
    )
    assert fixed_sleeps(source) == [(3, 0.5), (4, 2.0)]
    assert emulator_waits(source) == [7, 8]


def test_no_fixed_sleep_in_the_e2e_tier() -> None:
    """A ``time.sleep(n)`` "to let it happen" fails on a busy machine and wastes time on an idle one."""
    bad = []
    for path in e2e_files():
        for line, seconds in fixed_sleeps(path.read_text()):
            if (path.name, seconds) not in SLEEP_ALLOWED:
                bad.append(f"{path.relative_to(ROOT)}:{line}: time.sleep({seconds:g})")
    assert not bad, (
        "wait for an event or a reply instead (botkit.wait_until; for a 'nothing happens' check, a marker "
        "message answered after it, or botkit.quiet(seconds)):\n" + "\n".join(bad)
    )


def test_the_sleep_allow_list_is_still_needed() -> None:
    used = {(path.name, seconds) for path in e2e_files() for _, seconds in fixed_sleeps(path.read_text())}
    assert set(SLEEP_ALLOWED) <= used, f"stale entries: {set(SLEEP_ALLOWED) - used}"


def test_e2e_waits_go_through_the_scaled_helper() -> None:
    """``emulator.wait_for`` has its own deadline that ``STYLEBOT_TEST_SLOWDOWN`` does not reach."""
    bad = [f"{p.relative_to(ROOT)}:{line}" for p in e2e_files() for line in emulator_waits(p.read_text())]
    assert not bad, "use botkit.wait_until(condition, timeout, what, api=emulator):\n" + "\n".join(bad)


# --- the helper itself ------------------------------------------------------------


def test_deadline_scales_by_the_one_factor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SLOWDOWN_ENV, raising=False)
    assert slowdown() == 1.0 and deadline(30) == 30
    monkeypatch.setenv(SLOWDOWN_ENV, "2.5")
    assert deadline(30) == 75
    for bad in ("fast", "0", "-1", "nan", "inf"):
        monkeypatch.setenv(SLOWDOWN_ENV, bad)
        with pytest.raises(ValueError, match=SLOWDOWN_ENV):
            deadline(1)


def test_wait_until_returns_the_value_as_soon_as_it_is_there() -> None:
    ready_at = time.monotonic() + 0.1
    started = time.monotonic()
    value = wait_until(lambda: time.monotonic() >= ready_at and "ready", 10, "the clock")
    assert value == "ready" and time.monotonic() - started < 5


def test_wait_until_names_what_it_waited_for_and_scales(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SLOWDOWN_ENV, "3")
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"timed out after 0\.3 s \(0\.1 s x STYLEBOT_TEST_SLOWDOWN=3\) "):
        wait_until(lambda: None, 0.1, "the answer to /start")
    assert time.monotonic() - started >= 0.3
    with pytest.raises(AssertionError, match="waiting for the answer to /start"):
        wait_until(lambda: None, 0.01, "the answer to /start")


def test_quiet_lets_the_scaled_window_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SLOWDOWN_ENV, "2")
    started = time.monotonic()
    quiet(0.05)
    assert time.monotonic() - started >= 0.1


# --- bin/test --busy ------------------------------------------------------------------------


def _burners(banner: str) -> list[int]:
    match = re.search(r"two busy processes \(pids (\d+) (\d+)\)", banner)
    assert match, banner
    return [int(match.group(1)), int(match.group(2))]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes; /proc says which.
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or ") Z " not in stat.read_text()


def test_bin_test_busy_passes_arguments_on_and_stops_its_burners(tmp_path: Path) -> None:
    failing = tmp_path / "test_fails.py"
    failing.write_text("def test_fails():\n    assert False\n")
    done = subprocess.run(
        [str(ROOT / "bin" / "test"), "--busy", "-q", "-p", "no:randomly", str(failing)],
        capture_output=True,
        text=True,
        timeout=deadline(120),
    )
    assert done.returncode == 1, done.stdout + done.stderr  # pytest's own status: one test failed
    assert "1 failed" in done.stdout
    pids = _burners(done.stdout)
    wait_until(lambda: not any(_alive(pid) for pid in pids), 10, f"the busy processes {pids} to end")


def _start_hanging(tmp_path: Path) -> subprocess.Popen:
    """``bin/test --busy`` on a test that never ends, in its own process group; read up to the banner."""
    hanging = tmp_path / "test_hangs.py"
    hanging.write_text("import threading\n\ndef test_hangs():\n    threading.Event().wait()\n")
    return subprocess.Popen(
        [str(ROOT / "bin" / "test"), "--busy", "-q", "-p", "no:randomly", "-p", "no:timeout", str(hanging)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _banner_pids(process: subprocess.Popen) -> list[int]:
    assert process.stdout is not None
    for line in process.stdout:  # bounded by pytest-timeout: the script prints it within seconds
        if "busy processes" in line:
            return _burners(line)
    raise AssertionError("bin/test --busy ended without starting its busy processes")


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    # Zombies (children of init now) do not count.
    return all(
        ") Z " in stat.read_text()
        for stat in Path("/proc").glob("[0-9]*/stat")
        if stat.exists() and _pgid_of(stat) == pgid
    )


def _pgid_of(stat: Path) -> int | None:
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


@pytest.mark.parametrize(
    "how", ["SIGTERM to its process group", "SIGTERM to the script alone", "SIGKILL to the script alone"]
)
def test_bin_test_busy_stops_its_burners_however_it_ends(tmp_path: Path, how: str) -> None:
    """A CI timeout signals the whole group; a signal to the script alone is trapped and passed on
    to pytest; a SIGKILL leaves no trap to run, so each burner also ends once the script is gone."""
    process = _start_hanging(tmp_path)
    try:
        pids = _banner_pids(process)
        assert all(_alive(pid) for pid in pids)
        if how == "SIGTERM to its process group":
            os.killpg(process.pid, signal.SIGTERM)
        elif how == "SIGTERM to the script alone":
            os.kill(process.pid, signal.SIGTERM)
        else:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(deadline(30))
        wait_until(lambda: not any(_alive(pid) for pid in pids), 10, f"the busy processes {pids} to end ({how})")
        if how.startswith("SIGTERM"):  # the hanging pytest too: nothing of the run is left
            wait_until(lambda: _group_gone(process.pid), 10, f"every process of the run to end ({how})")
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the hanging pytest, after a SIGKILL to the script
        except ProcessLookupError:
            pass
        process.wait()
