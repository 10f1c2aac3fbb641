"""The container image, built and run for real with podman (issue 21).

``bin/container-test`` builds the base image (cached) and the image; these tests then run it as an
operator would: against the local Bot API emulator on the host (``--network host``, TELEGRAM_API_URL),
under ``--memory 512m`` (a Heroku Eco/Basic dyno), with the weights mounted and the data dir a named
volume. A photo and a style go in, SIGTERM stops the first container mid-job, and a second container
on the same volume delivers the result. If the container runtime cannot start, the tests FAIL with the
reason: a machine that cannot run them must say so, not pass quietly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from botkit import ROOT, User, make_content, picture, wait_until, weights_path

from stylebot.playground.emulator import BotAPIEmulator

IMAGE = os.environ.get("STYLEBOT_IMAGE", "localhost/stylebot:test")
RUNTIME = os.environ.get("STYLEBOT_OCI_RUNTIME", "runc")
MEMORY = "512m"
#: A cold build (debootstrap, pip) takes minutes; pyproject's 300 s per test is for the bot's own tests.
pytestmark = pytest.mark.timeout(1800)
#: The log line the memory-limit work (the hardening issue) adds at start; asserted once it is there.


def podman(
    *args: str, timeout: float = 120, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["podman", "--runtime", RUNTIME, *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:2])} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done


@pytest.fixture(scope="module")
def image() -> str:
    """The image, built by bin/container-test (seconds when podman's caches are warm)."""
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: apt-get install podman runc debootstrap (see .ci/run)")
    started = time.monotonic()
    done = subprocess.run([str(ROOT / "bin" / "container-test")], capture_output=True, text=True, timeout=1800)
    print(done.stdout, done.stderr, f"bin/container-test: {time.monotonic() - started:.0f} s", sep="\n")
    if done.returncode != 0:
        pytest.fail(f"bin/container-test could not build or run the image:\n{done.stderr[-3000:]}")
    return IMAGE


@pytest.fixture
def weights() -> Path:
    path = weights_path()
    if path is None:
        pytest.fail("VGG weights not found: set STYLEBOT_WEIGHTS (the container test mounts them)")
    return path.resolve()


@pytest.fixture
def volume() -> Iterator[str]:
    name = f"stylebot-ct-{uuid.uuid4().hex[:8]}"
    podman("volume", "create", name)
    try:
        yield name
    finally:
        podman("volume", "rm", "-f", name, check=False)


class Containers:
    """Starts containers of the image and removes them (and prints their logs) at the end."""

    def __init__(self, image: str, api: BotAPIEmulator, weights: Path) -> None:
        self.image, self.api, self.weights = image, api, weights
        self.names: list[str] = []

    def run(self, volume: str, *cmd: str, **env: str) -> str:
        name = f"stylebot-ct-{uuid.uuid4().hex[:8]}"
        self.names.append(name)
        values = {"TELEGRAM_BOT_TOKEN": self.api.token, "TELEGRAM_API_URL": self.api.base_url, **env}
        # `-e NAME` without a value: podman takes it from its own environment, so the token is never on a
        # command line (ps) or in the image.
        flags = [f"-e={k}" for k in values]
        podman(
            "run", "-d", "--name", name, "--network", "host", "--memory", MEMORY, "--memory-swap", MEMORY,
            "-v", f"{volume}:/data", "-v", f"{self.weights}:/app/vgg19_cache.pth:ro",
            *flags, self.image, *cmd,
            env={**os.environ, **values},
        )  # fmt: skip
        return name

    def logs(self, name: str) -> str:
        done = podman("logs", name, check=False)
        return done.stdout + done.stderr

    def close(self) -> None:
        for name in self.names:
            print(f"--- podman logs {name}\n{self.logs(name)[-4000:]}")
            podman("rm", "-f", "-v", "-t", "0", name, check=False)


@pytest.fixture
def containers(image: str, emulator: BotAPIEmulator, weights: Path) -> Iterator[Containers]:
    pool = Containers(image, emulator, weights)
    try:
        yield pool
    finally:
        pool.close()


def cgroup_memory_mb(name: str) -> tuple[float | None, float | None]:
    """(limit, peak) of the container's memory cgroup in MiB: cgroup v2 ``memory.max``/``memory.peak``, or
    v1 ``memory.limit_in_bytes``/``memory.max_usage_in_bytes`` (this CI host); None where unreadable."""
    script = (
        "cd /sys/fs/cgroup; if [ -f memory.peak ]; then cat memory.max memory.peak; "
        "else cat memory/memory.limit_in_bytes memory/memory.max_usage_in_bytes; fi"
    )
    done = podman("exec", name, "sh", "-c", script, check=False)
    values: list[float | None] = []
    for word in [*done.stdout.split(), "", ""][:2]:
        values.append(int(word) / 2**20 if word.isdigit() else None)
    return values[0], values[1]


def test_the_image_declares_its_contract(image: str):
    inspect = json.loads(podman("image", "inspect", image).stdout)[0]
    health = inspect.get("Healthcheck") or inspect["Config"].get("Healthcheck") or {}
    assert "stylebot.healthcheck" in health.get("Test", []), "the HEALTHCHECK is lost (build with --format docker)"
    user = inspect["Config"].get("User", "")
    assert user and user not in ("root", "0"), f"the image runs as {user!r}"
    assert "/data" in inspect["Config"].get("Volumes", {})
    assert "PYTHONDONTWRITEBYTECODE=1" in inspect["Config"]["Env"]
    script = (
        "stat -c '%a %U' /data; command -v gcc cc || true; python -c 'import numpy, torch; print(torch.__version__)'"
    )
    done = podman("run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", script)
    lines = done.stdout.split()
    assert lines[:2] == ["700", "stylebot"], done.stdout
    assert "gcc" not in done.stdout and "/cc" not in done.stdout, "a compiler in the final image"
    assert "+cpu" in done.stdout


def test_missing_weights_fail_loudly_naming_the_path(image: str):
    done = podman("run", "--rm", "--network", "none", "-e", "TELEGRAM_BOT_TOKEN=1:x", image, check=False, timeout=60)
    assert done.returncode == 2, done
    assert "/app/vgg19_cache.pth" in done.stderr and "STYLEBOT_WEIGHTS" in done.stderr


def test_a_job_survives_sigterm_into_a_second_container(volume: str, containers: Containers, emulator):
    user = User(emulator, 9101)
    started = time.monotonic()
    first = containers.run(volume)
    user.say("/start")
    user.wait_text("Send me the photo", timeout=180)
    print(f"cold start to the first answer: {time.monotonic() - started:.1f} s (container start + imports + engine)")
    # The bot read --memory 512m from the cgroup and kept only the sizes whose measured peak fits (issue 18).
    kept = re.search(r"memory limit 512 MiB from cgroup.*sizes kept: ([\d, ]+) \(default (\d+)", containers.logs(first))
    assert kept, f"no memory-limit line naming 512 MiB from the cgroup in the log:\n{containers.logs(first)}"
    sizes, default = [int(x) for x in kept.group(1).split(",")], int(kept.group(2))
    assert 1024 not in sizes and default in sizes
    before = len(user.messages())
    user.say("/settings")
    menu = user.wait_text("Settings", timeout=60, after=before)
    offered = [
        int(b["callback_data"].split(":")[2])
        for row in menu["reply_markup"]["inline_keyboard"]
        for b in row
        if b["callback_data"].startswith("set:size:")
    ]
    assert offered == sizes, f"/settings offers {offered}, the memory model kept {sizes}"
    # A default job: default size (512 px long side) and preset; 640x480 is scaled down to 512x384.
    user.photo(picture((640, 480)))
    user.wait_seen("Now send")
    user.photo(picture((128, 128), (20, 20, 220)))
    user.wait_seen("Painting", timeout=120)
    podman("kill", "--signal", "TERM", first)
    code = podman("wait", first, timeout=60).stdout.strip()
    assert code == "0", f"the bot exited {code} on SIGTERM"
    assert not user.results()
    first_log = containers.logs(first)
    assert "stopping" in first_log and "stopped" in first_log

    second = containers.run(volume)
    user.wait_seen("your job is back in the queue", timeout=180)
    result = user.wait_result(timeout=900)
    assert user.result_image(result).size == (default, default * 3 // 4)  # 512 with native bf16, else less
    assert len(user.results()) == 1
    limit, peak = cgroup_memory_mb(second)
    assert limit == 512, f"the container's memory limit is {limit} MiB, not --memory {MEMORY}"
    print(f"peak memory of the second container (a 512 px default job, --memory {MEMORY}): {peak:.0f} MiB")
    health = podman("healthcheck", "run", second, check=False)
    assert health.returncode == 0, f"healthcheck: {health.stdout} {health.stderr}"
    modes = podman("exec", second, "sh", "-c", "stat -c '%a %n' /data /data/stylebot.sqlite3").stdout.split("\n")
    assert modes[0].startswith("700 ") and modes[1].startswith("600 "), modes
    log = containers.logs(second)
    assert emulator.token not in first_log + log
    assert "memory limit 512 MiB from cgroup" in log, "the second container did not report the limit it read"


def test_the_dockerfile_defaults_to_the_pinned_cpu_torch():
    """Without --build-arg TORCH the image installs requirements.txt's torch pin from PyTorch's CPU index:
    the TORCH override (a local wheel here) is for this machine's test build only."""
    text = (ROOT / "Dockerfile").read_text()
    assert 'ARG TORCH=""' in text and "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in text
    assert "sed -n 's/^torch==" in text and '"torch==$pin"' in text
    assert "ARG BASE=python:" in text and "python3 -m venv" in text
    assert "USER stylebot" in text and "HEALTHCHECK" in text and 'VOLUME ["/data"]' in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", "*.pth", ".venv", ".git"} <= set(ignored), "secrets, weights and the venv stay out of the context"


# --- compose.yaml, profile scale: Redis, the webhook and 2 RQ workers ----------------------------------

SECRET = "s3cret-for-the-container-test"


def compose_override(redis_port: int, web_port: int, api: BotAPIEmulator) -> str:
    """What the test changes in compose.yaml: host networking (the emulator listens on the host's
    127.0.0.1), free ports, the local Redis image, and Redis 'started' rather than 'healthy' (podman
    4.3 runs healthchecks on systemd timers, and CI machines have no systemd). Workers get the host's pid
    namespace: with host networking they share the host's hostname, and a worker's identity is host:pid,
    so two containers' pid 1 would collide in Redis (on a compose network each has its own hostname)."""
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    app_env = f"      REDIS_URL: {redis_url}\n      TELEGRAM_API_URL: {api.base_url}\n      OMP_NUM_THREADS: '1'\n"
    depends = "    depends_on:\n      redis:\n        condition: service_started\n"
    return (
        "services:\n"
        "  redis:\n    image: ${STYLEBOT_REDIS_IMAGE:-localhost/stylebot-redis:test}\n    network_mode: host\n"
        f"    command: [redis-server, --port, '{redis_port}', --bind, 127.0.0.1, --save, '', --appendonly, 'no']\n"
        "  webhook:\n    network_mode: host\n    environment:\n" + app_env + f"      PORT: '{web_port}'\n"
        f"      STYLEBOT_WEBHOOK_URL: http://127.0.0.1:{web_port}/telegram\n"
        f"      STYLEBOT_WEBHOOK_SECRET: {SECRET}\n" + depends + "  worker:\n    network_mode: host\n"
        "    pid: host\n    environment:\n" + app_env + depends
    )


class ComposeProject:
    """compose.yaml run by podman-compose from a temporary folder: a copy of compose.yaml, the test's
    override, and an .env holding the token (as an operator's does); ``close`` removes everything."""

    def __init__(self, tmp: Path, image: str, weights: Path, api: BotAPIEmulator, profile: str, override: str):
        compose_bin = Path(sys.executable).parent / "podman-compose"
        if not compose_bin.exists():
            pytest.fail("podman-compose is not installed: bin/setup --dev (requirements-dev.txt pins it)")
        self.project = f"stylebot-ct-{uuid.uuid4().hex[:6]}"
        self.tmp = tmp
        shutil.copy(ROOT / "compose.yaml", tmp / "compose.yaml")
        (tmp / "compose.override.yaml").write_text(override)
        env_file = tmp / ".env"
        env_file.write_text(f"TELEGRAM_BOT_TOKEN={api.token}\n")
        env_file.chmod(0o600)
        self.env = {**os.environ, "STYLEBOT_IMAGE": image, "STYLEBOT_WEIGHTS_FILE": str(weights)}
        self.base = [str(compose_bin), "--podman-args=--runtime=runc", "--in-pod=false", "-p", self.project]
        self.base += ["-f", "compose.yaml", "-f", "compose.override.yaml", "--profile", profile]

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.base, *args], cwd=self.tmp, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def up(self, *args: str) -> None:
        done = self("up", "-d", *args)
        assert done.returncode == 0, f"podman-compose up failed: {done.stdout[-2000:]} {done.stderr[-2000:]}"

    def names(self, all_: bool = False) -> list[str]:
        flags = ["-a"] if all_ else []
        return podman("ps", *flags, "--filter", f"name={self.project}", "--format", "{{.Names}}").stdout.split()

    def close(self) -> None:
        for name in self.names(all_=True):
            print(f"--- podman logs {name}\n{podman('logs', name, check=False).stderr[-3000:]}")
        ours = podman("ps", "-a", "-q", "--filter", f"name={self.project}", check=False).stdout.split()
        fmt = "{{range .Mounts}}{{.Name}} {{end}}"
        anonymous = podman("inspect", "--format", fmt, *ours, check=False).stdout.split() if ours else []
        down = self("down", "-v", "-t", "5")
        print(down.stdout[-500:], down.stderr[-500:])
        # podman-compose 1.6's down stops short here (it cannot remove healthcheck timers without systemd)
        for name in sorted(self.names(all_=True), key=lambda n: "redis" in n):  # redis last: the rest need it
            podman("rm", "-f", "-v", "-t", "0", name, check=False)
        named = podman("volume", "ls", "-q", "--filter", f"name={self.project}", check=False).stdout.split()
        for vol in named + anonymous:
            podman("volume", "rm", "-f", vol, check=False)


def test_the_single_profile_answers_and_paints(image: str, emulator: BotAPIEmulator, weights: Path, tmp_path):
    override = (
        "services:\n  bot:\n    network_mode: host\n    environment:\n"
        f"      TELEGRAM_API_URL: {emulator.base_url}\n      STYLEBOT_IMAGE_SIZE: '128'\n"
    )
    stack = ComposeProject(tmp_path, image, weights, emulator, "single", override)
    try:
        stack.up()
        names = stack.names()
        assert len(names) == 1 and "bot" in names[0], names
        user = User(emulator, 9301)
        user.say("/start")
        user.wait_text("Send me the photo", timeout=120)
        user.photo(picture((200, 150)))
        user.wait_seen("Now send", timeout=60)
        user.photo(picture((96, 96), (20, 20, 220)))
        assert user.result_image(user.wait_result(timeout=600)).size == (128, 96)
        limit = podman("inspect", "--format", "{{.HostConfig.Memory}}", names[0]).stdout.strip()
        assert limit == str(512 * 2**20), f"mem_limit not applied: {limit}"
        health = podman("healthcheck", "run", names[0], check=False)
        assert health.returncode == 0, f"{health.stdout} {health.stderr}"
    finally:
        stack.close()


def test_the_scale_profile_runs_with_two_workers(image: str, emulator: BotAPIEmulator, weights: Path, tmp_path):
    from rediskit import free_port

    override = compose_override(free_port(), free_port(), emulator)
    stack = ComposeProject(tmp_path, image, weights, emulator, "scale", override)
    try:
        stack.up("--scale", "worker=2")
        wait_until(
            lambda: emulator.calls("setWebhook"), 120, what="the webhook container to call setWebhook", api=emulator
        )
        names = stack.names()
        workers = [n for n in names if "worker" in n]
        assert len(workers) == 2, names

        def ready() -> list[str]:
            out = {n: podman("logs", n, check=False) for n in workers}
            return [n for n, d in out.items() if " ready on " in d.stdout + d.stderr]

        wait_until(lambda: len(ready()) == 2, 180, what="both RQ worker containers to be ready", api=emulator)
        users = [User(emulator, 9201), User(emulator, 9202)]
        for user in users:
            user.say("/start")
            user.wait_text("Send me the photo", timeout=120)
            user.photo(picture((200, 150)))
            user.wait_seen("Now send", timeout=60)
            user.photo(picture((96, 96), (20, 20, 220)))
        for user in users:
            result = user.wait_result(timeout=600)
            assert user.result_image(result).size == (200, 150)
        logs = {n: podman("logs", n, check=False) for n in workers}
        ran_on = [n for n, d in logs.items() if "started on" in d.stdout + d.stderr]
        print(f"scale profile: 2 jobs, workers that ran one: {ran_on}")
        assert sorted(ran_on) == sorted(workers), "the two jobs did not spread over the two workers"
        running = stack.names()
        assert sorted(running) == sorted(names), f"a container stopped: {running} of {names}"
        for name in names:
            if "redis" not in name:
                health = podman("healthcheck", "run", name, check=False)
                assert health.returncode == 0, f"{name}: {health.stdout} {health.stderr}"
    finally:
        stack.close()


def test_the_declared_dependencies_run_a_cli_job_in_the_image(image: str, weights: Path, tmp_path):
    """Issue 21's first finding: an image from requirements.txt alone (CPU torch, no torchvision) must run a
    whole job; without numpy declared, the last step failed with 'Numpy is not available'."""
    from PIL import Image

    work = tmp_path / "work"
    work.mkdir()
    work.chmod(0o777)  # the image's user (uid 10001) writes the result here
    make_content((96, 64)).save(work / "content.png")
    Image.new("RGB", (48, 48), (20, 20, 220)).save(work / "style.png")
    done = podman(
        "run", "--rm", "--network", "none", "--memory", MEMORY, "-v", f"{work}:/work",
        "-v", f"{weights}:/app/vgg19_cache.pth:ro", "--entrypoint", "python", image,
        "model.py", "/work/content.png", "/work/style.png", "-o", "/work/out.png",
        "--size", "64", "--device", "cpu", "-q",
        timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "torchvision" not in podman("run", "--rm", "--network", "none", "--entrypoint", "pip", image, "list").stdout
    with Image.open(work / "out.png") as out:
        assert out.size == (64, 43), out.size
