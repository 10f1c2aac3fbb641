"""Checks of the Heroku deploy files: Procfile, runtime.txt, requirements, app.json and the bin/ scripts.

The bin/ scripts are run for real, but never download anything: the network paths they take are pointed at
a closed port on 127.0.0.1, so every attempt fails at once, the way it does on a machine that is offline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from botkit import deadline

ROOT = Path(__file__).resolve().parents[2]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _offline_env(tmp_path: Path) -> dict[str, str]:
    """Environment in which any HTTP(S) request made through a proxy-aware client is refused at once."""
    proxy = f"http://127.0.0.1:{_closed_port()}"
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "stylebot_vgg19_dir")}
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "https_proxy": proxy,
            "HTTPS_PROXY": proxy,
            "http_proxy": proxy,
            "HTTP_PROXY": proxy,
            "TMPDIR": str(tmp_path / "tmp"),
        }
    )
    (tmp_path / "tmp").mkdir()
    return env


def _requirements(path: Path) -> tuple[list[str], dict[str, str]]:
    """(option lines, {normalised name: pinned version}) of a requirements file; -r lines are kept as options."""
    options, pins = [], {}
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            options.append(line)
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([0-9][^\s;]*)", line)
        assert m, f"{path.name}: {line!r} is not pinned with =="
        pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return options, pins


def _config_variables() -> set[str]:
    src = (ROOT / "stylebot" / "config.py").read_text()
    return set(re.findall(r"""["'](STYLEBOT_[A-Z0-9_]+)["']""", src))


# --- Procfile, runtime ---------------------------------------------------------------------------------


def test_procfile_runs_only_the_worker():
    lines = [ln for ln in (ROOT / "Procfile").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines == ["worker: python main.py"]


def test_runtime_names_a_supported_python():
    text = (ROOT / "runtime.txt").read_text().strip()
    m = re.fullmatch(r"python-3\.(\d+)(\.\d+)?", text)
    assert m, f"runtime.txt must be python-3.N or python-3.N.P, got {text!r}"
    minor = int(m.group(1))
    assert 11 <= minor <= 14, f"python-3.{minor}: the project is tested on 3.11+; Heroku supports 3.10..3.14"
    pv = ROOT / ".python-version"
    if pv.exists():  # Heroku reads runtime.txt first; the two must not disagree
        versions = [ln.strip() for ln in pv.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        assert len(versions) == 1 and re.fullmatch(rf"3\.{minor}(\.\d+)?", versions[0]), versions


# --- requirements -------------------------------------------------------------------------------------


def test_requirements_pin_cpu_torch_and_the_app():
    options, pins = _requirements(ROOT / "requirements.txt")
    assert f"--extra-index-url {CPU_INDEX}" in options, "the PyTorch CPU index keeps the Heroku slug < 500 MB"
    for name in ("torch", "torchvision", "pytelegrambotapi", "pillow", "pillow-heif", "requests"):
        assert name in pins, f"requirements.txt must pin {name}"
    for name in ("torch", "torchvision"):
        # A local label (2.x+cpu) would break the install wherever the CPU index cannot be reached.
        assert "+" not in pins[name], f"pin {name}=={pins[name]} without a +local label"
    for name in ("redis", "rq", "pytest", "pytest-timeout", "playwright"):
        assert name not in pins, f"{name} does not belong in the Heroku requirements"


def test_requirements_match_the_tested_torch():
    from importlib.metadata import PackageNotFoundError, version

    _, pins = _requirements(ROOT / "requirements.txt")
    for name in ("torch", "torchvision"):
        try:
            installed = version(name).split("+", 1)[0]
        except PackageNotFoundError:
            pytest.skip(f"{name} is not installed here")
        override = os.environ.get("STYLEBOT_TORCH_OVERRIDE", "")
        if name == "torch" and override:
            # The one allowed override, for the container image only: built with --build-arg TORCH=<wheel or
            # spec> (Dockerfile), which the image records in STYLEBOT_TORCH_OVERRIDE; it must be what runs.
            assert version(name) in override, f"the image runs torch {version(name)}, its TORCH arg was {override}"
            continue
        assert installed == pins[name], f"tests run on {name} {installed}, requirements.txt pins {pins[name]}"


def test_scale_and_dev_requirements():
    _, scale = _requirements(ROOT / "requirements-scale.txt")
    assert set(scale) == {"redis", "rq"}
    options, dev = _requirements(ROOT / "requirements-dev.txt")
    assert "-r requirements.txt" in options and "-r requirements-scale.txt" in options
    assert {"pytest", "pytest-timeout", "playwright"} <= set(dev)


# --- app.json -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_json() -> dict:
    return json.loads((ROOT / "app.json").read_text())


def test_app_json_declares_the_deploy(app_json):
    assert app_json["name"] and app_json["description"]
    assert re.match(r"https?://", app_json["repository"])
    assert app_json["formation"] == {"worker": {"quantity": 1, "size": "basic"}}
    assert {"url": "heroku/python"} in app_json["buildpacks"]
    token = app_json["env"]["TELEGRAM_BOT_TOKEN"]
    assert isinstance(token, dict) and token.get("required", True) is True and "value" not in token
    for name, spec in app_json["env"].items():
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name)
        assert isinstance(spec, dict) and spec.get("description"), f"{name} needs a description"
        if name != "TELEGRAM_BOT_TOKEN":  # app.json's `required` defaults to true
            assert spec.get("required") is False, f'{name} is optional: say "required": false'
        assert isinstance(spec.get("value", ""), str), f"{name}: app.json values are strings"


def test_app_json_covers_every_setting_config_reads(app_json):
    read = _config_variables() | {"TELEGRAM_BOT_TOKEN", "TELEGRAM_API_URL"}
    declared = set(app_json["env"])
    assert read - declared == set(), "config.py reads these but app.json does not declare them"
    stale = {n for n in declared if n.startswith("STYLEBOT_")} - read
    assert stale == set(), "app.json declares settings config.py does not read"


def test_app_json_defaults_are_valid_config(app_json):
    from stylebot import config

    env = {name: spec["value"] for name, spec in app_json["env"].items() if spec.get("value")}
    env["TELEGRAM_BOT_TOKEN"] = "123456:TEST-token"
    cfg = config.Config.from_env(env, dotenv=None)
    assert cfg.image_size == int(app_json["env"]["STYLEBOT_IMAGE_SIZE"]["value"])
    assert cfg.workers == int(app_json["env"]["STYLEBOT_WORKERS"]["value"])
    assert cfg.weights.name == "vgg19_cache.pth"  # what bin/post_compile writes


# --- bin/ scripts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["post_compile", "slug_size"])
def test_bin_scripts_are_executable_bash(name):
    path = ROOT / "bin" / name
    assert os.access(path, os.X_OK), f"bin/{name} must be executable (git update-index --chmod=+x)"
    assert path.read_text().startswith("#!/usr/bin/env bash\n")
    subprocess.run(["bash", "-n", str(path)], check=True, timeout=deadline(30))


def _app_copy(tmp_path: Path, with_weights_py: bool = True) -> Path:
    app = tmp_path / "app"
    (app / "bin").mkdir(parents=True)
    shutil.copy2(ROOT / "bin" / "post_compile", app / "bin" / "post_compile")
    if with_weights_py:
        shutil.copy2(ROOT / "weights.py", app / "weights.py")
        shutil.copytree(ROOT / "stylebot", app / "stylebot", ignore=shutil.ignore_patterns("__pycache__"))
    return app


def _run(cmd: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def weights_py() -> None:
    """post_compile runs weights.py: it must be there (was a "not written yet" skip that hid its loss)."""
    assert (ROOT / "weights.py").is_file(), "weights.py (the weights command line post_compile runs) is missing"


def test_post_compile_offline_fails_loudly(tmp_path, weights_py):
    app = _app_copy(tmp_path)
    env = _offline_env(tmp_path)
    r = _run([str(app / "bin" / "post_compile")], env)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "could not build vgg19_cache.pth" in r.stderr, out
    assert "download.pytorch.org/models/vgg19-dcbb9e9d.pth" in r.stderr, out
    assert not (app / "vgg19_cache.pth").exists()
    assert list((tmp_path / "tmp").iterdir()) == [], "the temporary download directory must be removed"


def test_post_compile_without_weights_module(tmp_path):
    app = _app_copy(tmp_path, with_weights_py=False)
    r = _run([str(app / "bin" / "post_compile")], _offline_env(tmp_path), timeout=deadline(30))
    assert r.returncode != 0 and "weights.py is missing" in r.stderr, r.stdout + r.stderr


def test_post_compile_keeps_a_valid_cache(tmp_path, weights_py):
    candidates = (
        os.environ.get("STYLEBOT_WEIGHTS"),
        ROOT / "vgg19_cache.pth",
        ROOT.parent / "shared" / "weights" / "vgg19_cache.pth",
    )
    existing = [Path(c) for c in candidates if c and Path(c).is_file()]
    if not existing:
        pytest.skip("no weights file (vgg19_cache.pth) to copy")
    app = _app_copy(tmp_path)
    shutil.copy(existing[0], app / "vgg19_cache.pth")
    r = _run([str(app / "bin" / "post_compile")], _offline_env(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "already present and valid" in r.stdout


def test_post_compile_refuses_a_corrupt_cache(tmp_path, weights_py):
    app = _app_copy(tmp_path)
    (app / "vgg19_cache.pth").write_bytes(b"not a weights file")
    r = _run([str(app / "bin" / "post_compile")], _offline_env(tmp_path))
    assert r.returncode != 0 and "not a valid weights file" in r.stderr, r.stdout + r.stderr
    assert (app / "vgg19_cache.pth").read_bytes() == b"not a weights file", "never silently replaced"


def test_slug_size_says_plainly_when_the_cpu_index_is_unreachable(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text(f"--extra-index-url https://127.0.0.1:{_closed_port()}/whl/cpu\ntorch==2.14.1\n")
    started = time.monotonic()
    r = _run([str(ROOT / "bin" / "slug_size"), str(req)], _offline_env(tmp_path), timeout=deadline(60))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "NOT reachable" in r.stderr and "Cannot estimate the Heroku slug here" in r.stderr
    assert time.monotonic() - started < deadline(30), "the unreachable case must answer quickly"


def test_slug_size_needs_the_index_line(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("torch==2.14.1\n")
    r = _run([str(ROOT / "bin" / "slug_size"), str(req)], _offline_env(tmp_path), timeout=deadline(30))
    assert r.returncode == 2 and "no --extra-index-url" in r.stderr, r.stdout + r.stderr


def test_installed_package_ships_the_playground_page():
    """``pip install .`` must carry the chat page: ``stylebot.playground.server`` serves it from its own
    package folder (``static/`` beside it), and setuptools ships only ``.py`` files unless told."""
    import fnmatch
    import tomllib

    from stylebot.playground import server

    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = package_data["stylebot.playground"]
    page = [p.relative_to(server.STATIC.parent).as_posix() for p in server.STATIC.iterdir()]
    assert server.STATIC == ROOT / "stylebot" / "playground" / "static" and "playground.html" in str(page)
    assert all(any(fnmatch.fnmatch(p, pattern) for pattern in patterns) for p in page), (page, patterns)
