"""The README (its code map above all) and docs/architecture.md name only paths that exist, and the
architecture names every package: `workers/`, `scheduler/`, `couchwatch/` and each of their
direct subpackages.

A path is a backticked name that contains `/` or ends in `.py` (a `::name` suffix is dropped).
The docs also name paths relative to a package they just named (`store/registry.py`, or
`registry.py` in the code map's `store/` list): a relative name must exist under the package its
first segment names (`store/` is workers/store/, `cli/` is couchwatch/cli/), or, in a code map
bullet, under the bullet's package or a directory named earlier in the same bullet.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TOP = ("workers", "scheduler", "couchwatch")
ROOTS = (*TOP, "tests", "bench", "docs")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
TICKED = re.compile(r"`([^`\n]+)`")


def _subpackages() -> dict[str, str]:
    """Direct subpackage name -> its path (`store` -> `workers/store`)."""
    found: dict[str, str] = {}
    for top in TOP:
        for child in sorted((ROOT / top).iterdir()):
            if (child / "__init__.py").is_file():
                found[child.name] = f"{top}/{child.name}"
    return found


def _pathlike(name: str) -> str | None:
    """The path a backticked name names, or None when it is not a path."""
    name = name.split("::", 1)[0].strip()
    if " " in name or name.startswith(("/", "_", ".", "$")) or "*" in name:
        return None
    if "/" in name or name.endswith(".py"):
        return name
    return None


def _exists(path: str, bases: list[str]) -> bool:
    first = path.split("/", 1)[0]
    candidates = [path] if first in ROOTS else []
    sub = _subpackages().get(first)
    if sub is not None:
        candidates.append(f"{sub.rsplit('/', 1)[0]}/{path}")
    candidates += [f"{base}/{path}" for base in bases]
    return any((ROOT / c.rstrip("/")).exists() for c in candidates)


def _code_map() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("Code map")
    end = text.index("\n\n", start)
    return text[start:end]


def _architecture() -> str:
    return (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def _known(path: str, bases: list[str]) -> bool:
    """A name the check covers: under one of the roots, or relative to a package or base."""
    first = path.split("/", 1)[0]
    return first in ROOTS or first in _subpackages() or bool(bases) or path.endswith(".py")


def test_every_path_the_code_map_names_exists() -> None:
    missing = []
    for bullet in re.split(r"\n- ", _code_map()):
        bases: list[str] = []
        for raw in TICKED.findall(bullet):
            path = _pathlike(raw)
            if path is None:
                continue
            if not _exists(path, bases):
                missing.append(raw)
            elif path.endswith("/"):  # a directory: later names may be relative to it
                first = path.split("/", 1)[0]
                if first in ROOTS:
                    bases.append(path.rstrip("/"))
                else:
                    bases += [
                        f"{b}/{path.rstrip('/')}"
                        for b in [*bases, *_subpackages().values()]
                        if (ROOT / b / path).is_dir()
                    ]
    assert missing == [], f"README code map names paths that are not in the tree: {missing}"


def test_every_rooted_path_the_readme_names_exists() -> None:
    """Outside the code map the README names paths from the top (`workers/events.py`)."""
    text = FENCE.sub("", (ROOT / "README.md").read_text(encoding="utf-8"))
    paths = [p for p in map(_pathlike, TICKED.findall(text)) if p and p.split("/")[0] in ROOTS]
    missing = [p for p in paths if not (ROOT / p.rstrip("/")).exists()]
    assert paths and missing == [], f"README names paths that are not in the tree: {missing}"


def test_every_path_docs_architecture_names_exists() -> None:
    text = FENCE.sub("", _architecture())
    missing = []
    checked = 0
    for raw in TICKED.findall(text):
        path = _pathlike(raw)
        if path is None or not _known(path, []):
            continue
        checked += 1
        if not _exists(path, [top for top in TOP]):
            missing.append(raw)
    assert checked > 20, "the architecture names fewer paths than it used to: is the regex wrong?"
    assert missing == [], f"docs/architecture.md names paths that are not in the tree: {missing}"


def test_docs_architecture_names_every_package() -> None:
    text = _architecture()
    packages = [*TOP, *_subpackages().values()]
    unnamed = [p for p in packages if not re.search(rf"(?<![\w/]){re.escape(p)}(/|\b)", text)]
    assert unnamed == [], f"docs/architecture.md never names these packages: {unnamed}"
