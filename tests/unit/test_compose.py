"""docker-compose.yml cannot run here (no Docker engine), so its shape is checked by parsing it:
every command names a real module, queue, CLI command and setting of this project."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from couchwatch.cli.main import cli
from workers.celery_app import QUEUES
from workers.settings import Settings

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {name.upper() for name in Settings.model_fields}


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return compose["services"]  # type: ignore[no-any-return]


def test_expected_services(services: dict[str, Any]) -> None:
    assert set(services) == {"couchdb", "redis", "init", "worker", "beat", "flower", "api"}
    assert services["couchdb"]["image"].startswith("couchdb:3")
    assert "noeviction" in services["redis"]["command"]
    assert "deploy" not in services["beat"]  # exactly one beat, never scaled


def test_commands_name_real_modules_queues_and_cli(services: dict[str, Any]) -> None:
    for name, service in services.items():
        command = service.get("command")
        if name in ("couchdb", "redis"):
            continue
        assert command, f"{name} has no command"
        if command[0] == "celery":
            module = command[command.index("-A") + 1]
            app = importlib.import_module(module).app
            # the composed app: fleet tasks, planner tasks, and a schedule of registered tasks
            assert {"couchwatch.plan_scoring", "couchwatch.train_entities"} <= set(app.tasks)
            assert {entry["task"] for entry in app.conf.beat_schedule.values()} <= set(app.tasks)
            if "-Q" in command:
                queues = command[command.index("-Q") + 1].split(",")
                assert set(queues) <= set(QUEUES), queues
        else:
            assert command[0] == "couchwatch"
            assert command[1] in cli.commands, f"{name}: unknown command {command[1]}"


def test_environment_names_real_settings(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name == "couchdb":
            continue
        for key in service.get("environment", {}):
            assert key in SETTINGS, f"{name}: {key} is not a couchwatch setting"
        assert service.get("env_file", ".env") == ".env"


def test_env_example_lists_only_real_settings() -> None:
    keys = [
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert set(keys) <= SETTINGS
    for secret in ("COUCHDB_PASSWORD", "FLOWER_PASSWORD"):
        assert f"{secret}=\n" in (ROOT / ".env.example").read_text() + "\n"


def test_dockerfile_installs_like_the_readme() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install" in dockerfile
    for package in ("couchwatch", "scheduler", "workers"):
        assert f"COPY {package} ./{package}" in dockerfile
    assert "USER couchwatch" in dockerfile
