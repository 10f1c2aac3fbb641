"""Docs name only things that exist: every ``stylebot.…`` dotted name and every repository path
written in README.md, DESIGN.md and deploy/*.md resolves in the checkout.

A doc that names a module, function or file that was renamed or removed sends a reader (or an
operator following a deploy page) to nothing; this test turns that drift into a failure.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "DESIGN.md", *sorted((ROOT / "deploy").glob("*.md"))]

#: Subpackages that the docs also name without the ``stylebot/`` prefix (``jobs/run.py``).
PACKAGES = ("engine", "jobs", "chat", "store", "scaleout", "gallery", "playground")
#: ``stylebot.a.b`` (optionally ``.c`` attributes), as written in prose or code spans.
DOTTED = re.compile(r"(?<![\w/.])stylebot(?:\.[A-Za-z_]\w*)+")
#: Paths under the repository's own folders, or its top-level files; ``{a,b}`` braces are expanded.
PATH = re.compile(
    r"(?<![\w/.-])(?:(?:stylebot|bench|tests|docs|deploy|bin|\.ci|" + "|".join(PACKAGES) + r")/[\w./{},*-]*[\w}*]"
    r"|(?:main|model|config|weights)\.py|requirements(?:-\w+)?\.txt|Procfile|runtime\.txt|app\.json"
    r"|pyproject\.toml|Dockerfile|compose\.yaml|\.python-version)"
)


def _expand(path: str) -> list[str]:
    """``a/{b,c}.py`` → ``a/b.py``, ``a/c.py`` (one brace group at a time)."""
    found = re.search(r"\{([^{}]*)\}", path)
    if not found:
        return [path]
    return [x for alt in found.group(1).split(",") for x in _expand(path[: found.start()] + alt + path[found.end() :])]


def _exists(path: str) -> bool:
    """A path from the root, or one under ``stylebot/`` written without the prefix."""
    path = path.rstrip("/")
    short = path.split("/", 1)[0] in PACKAGES
    return any(ROOT.glob(path)) or (short and any((ROOT / "stylebot").glob(path)))


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def _mentions(pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    return sorted({(doc.name, m.group(0).rstrip(".,")) for doc in DOCS for m in pattern.finditer(doc.read_text())})


@pytest.mark.parametrize(("doc", "name"), _mentions(DOTTED))
def test_every_dotted_name_in_the_docs_resolves(doc: str, name: str) -> None:
    assert _resolves(name), f"{doc} names {name}, which does not exist"


@pytest.mark.parametrize(("doc", "path"), _mentions(PATH))
def test_every_repository_path_in_the_docs_exists(doc: str, path: str) -> None:
    missing = [p for p in _expand(path) if not _exists(p)]
    assert not missing, f"{doc} names {missing}, which is not in the repository"


def test_the_checks_catch_a_missing_name() -> None:
    assert not _resolves("stylebot.engine.no_such_module")
    assert not _resolves("stylebot.images.no_such_function")
    assert _resolves("stylebot.images.load_image")
    assert _expand("stylebot/chat/{handlers,filters}.py") == ["stylebot/chat/handlers.py", "stylebot/chat/filters.py"]
