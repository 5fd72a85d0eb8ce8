"""Dependencies between couchwatch's packages run one way (docs/architecture.md, "Layers"):

    couchwatch/  (entry points: CLI, HTTP API, local stack, evaluation, the composed Celery app)
        │ imports
        ▼
    scheduler/   (what to enqueue: beat schedule, planners, planner tasks, the producer client)
        │ imports
        ▼
    workers/     (the fleet: store, ingest, training, scoring, notify, the fleet's tasks)
        │ imports
        ▼
    workers/engine/  (pure detection: pandas/numpy/sklearn, no CouchDB, no Celery, no settings)

Every import counts, including those inside functions (a lazy import is still a dependency) and
`importlib.import_module("...")` with a literal name.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("couchwatch", "scheduler", "workers")
# What each top-level package may not import (the layers above it).
FORBIDDEN = {
    "workers": ("scheduler", "couchwatch"),
    "scheduler": ("couchwatch",),
    "couchwatch": (),
}
ENGINE = "workers.engine"
# Modules of `workers` outside the engine that the engine may import: pure helpers only (standard
# library, nothing else of `workers`), named here with the reason.
ENGINE_MAY_IMPORT = frozenset(
    {
        # the one rule for timestamps (canonical_timestamp, parse_timestamp) and entity ids
        "workers.events",
    }
)


def module_name(path: Path, root: Path) -> str:
    """Dotted module name of `path` (a .py file under `root`); packages drop `__init__`."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute dotted name) of every module `path` imports, anywhere in the file."""
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            yield node.lineno, name
            # `from workers import tasks` imports the module workers.tasks
            for alias in node.names:
                yield node.lineno, f"{name}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def layer_violations(root: Path) -> list[str]:
    """Every import in `root`'s packages that goes against the layers, as `file:line: reason`
    (one per line and reason, naming the shortest module imported)."""
    found: dict[tuple[str, str], str] = {}
    for top in PACKAGES:
        for path in sorted((root / top).rglob("*.py")) if (root / top).is_dir() else []:
            where = path.relative_to(root)
            module = module_name(path, root)
            for line, name in imported_modules(path, root):
                for upper in FORBIDDEN[top]:
                    if _within(name, upper):
                        found.setdefault((f"{where}:{line}", f"{top} imports"), name)
                if (
                    _within(module, ENGINE)
                    and _within(name, "workers")
                    and not _within(name, ENGINE)
                    and name != "workers"
                    and not any(_within(name, helper) for helper in ENGINE_MAY_IMPORT)
                ):
                    found.setdefault((f"{where}:{line}", "the engine imports"), name)
    return sorted(f"{where}: {what} {name}" for (where, what), name in found.items())


def test_packages_import_only_the_layers_below() -> None:
    assert layer_violations(ROOT) == []


def test_the_helpers_the_engine_may_import_stay_pure() -> None:
    for helper in sorted(ENGINE_MAY_IMPORT):
        path = ROOT / (helper.replace(".", "/") + ".py")
        for line, name in imported_modules(path, ROOT):
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or top == "__future__", f"{path}:{line}: {name}"


def test_every_package_is_checked() -> None:
    for top in PACKAGES:
        assert any((ROOT / top).rglob("*.py")), top
    tops = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert tops - {"bench", "tests"} == set(PACKAGES), "a new top-level package needs a layer"


def test_the_checker_sees_lazy_relative_and_dynamic_imports(tmp_path: Path) -> None:
    (tmp_path / "workers" / "engine").mkdir(parents=True)
    for pkg in ("workers", "workers/engine", "scheduler", "couchwatch"):
        (tmp_path / pkg).mkdir(exist_ok=True)
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "workers" / "tasks.py").write_text(
        "def f():\n    from scheduler.beat import slot_key\n"
    )
    (tmp_path / "workers" / "engine" / "model.py").write_text(
        "from ..couch import client\nfrom . import features\n"
    )
    (tmp_path / "scheduler" / "client.py").write_text(
        "import importlib\nimportlib.import_module('couchwatch.cli')\nfrom workers import events\n"
    )
    assert layer_violations(tmp_path) == [
        "scheduler/client.py:2: scheduler imports couchwatch.cli",
        "workers/engine/model.py:1: the engine imports workers.couch",
        "workers/tasks.py:2: workers imports scheduler.beat",
    ]


STORE = "workers.store"
# What the store layer stands on: the CouchDB client, the pure rules, the settings, and the
# engine's types (findings, feedback, incidents); `workers.detection` only for the population
# document's format. Never the fleet (training, scoring, planning, notify, tasks) above it.
STORE_MAY_IMPORT = (
    "workers.couch",
    "workers.detection",
    "workers.engine",
    "workers.events",
    "workers.ids",
    "workers.settings",
    STORE,
)


def test_the_store_stands_only_on_the_client_the_rules_and_the_engine() -> None:
    bad = []
    for path in sorted((ROOT / "workers" / "store").rglob("*.py")):
        for line, name in imported_modules(path, ROOT):
            if (
                _within(name, "workers")
                and name != "workers"
                and not any(_within(name, ok) for ok in STORE_MAY_IMPORT)
            ):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert bad == []
