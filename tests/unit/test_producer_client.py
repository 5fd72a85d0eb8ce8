"""The light producer client: no heavy imports, every bad request refused before enqueueing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from couchwatch.cli.main import cli
from couchwatch.stack import local
from scheduler import client
from scheduler.client import BadRequest, check_entity, parse_time, rescore_args
from workers.settings import Settings, get_settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HEAVY = ("pandas", "numpy", "sklearn", "scipy", "matplotlib")


def test_client_imports_and_builds_its_app_with_heavy_modules_blocked() -> None:
    script = textwrap.dedent(f"""
        import sys
        for name in {HEAVY!r}:
            sys.modules[name] = None  # any import of them now raises ImportError
        from scheduler import client
        from couchwatch.cli import producer_cmd
        args = client.rescore_args("alice", "2026-01-01T00:00:00+01:00", 1767225600)
        assert args == ["alice", "2025-12-31T23:00:00.000Z", "2026-01-01T00:00:00.000Z"], args
        try:
            client.rescore_args("", None, None)
        except client.BadRequest as exc:
            print("refused:", exc)
        app = client.producer_app()
        assert app.conf.task_serializer == "json"
        assert app.amqp.router.route({{}}, "couchwatch.rescore")["queue"].name == "score"
        loaded = sorted(n for n in sys.modules if n.split(".")[0] in {HEAVY!r}
                        and sys.modules[n] is not None)
        assert not loaded, loaded
        assert "workers.tasks" not in sys.modules and "scheduler.tasks" not in sys.modules
        print("ok")
    """)
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": "redis://127.0.0.1:1/0"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["refused: missing entity field 'entity'", "ok"]


@pytest.mark.parametrize(
    ("entity", "start", "end", "message"),
    [
        # the entity-id rule of ingest (workers.events.entity_problem), word for word
        (None, None, None, "missing entity field 'entity'"),
        (True, None, None, "entity field 'entity' must be text or an integer"),
        (1.5, None, None, "entity field 'entity' must be text or an integer, not a float"),
        (["a"], None, None, "entity field 'entity' must be text or an integer"),
        ("", None, None, "missing entity field 'entity'"),
        ("x" * 257, None, None, "entity field 'entity' is longer than 256"),
        ("al\nice", None, None, "contains the control character U+000A"),
        (2**60, None, None, "entity field 'entity' is a number beyond ±9007199254740991"),
        ("a", "2026-01-01T00:00:00", None, "start needs a timezone offset"),
        ("a", None, datetime(2026, 1, 1), "end needs a timezone offset"),
        ("a", "yesterday", None, "start 'yesterday' is not ISO 8601 or epoch seconds"),
        ("a", "1e300", None, "start '1e300' is not ISO 8601 or epoch seconds"),
        ("a", [1], None, "start must be ISO 8601 text, epoch seconds or a datetime"),
        ("a", False, None, "start must be a time, not a boolean"),
        ("a", "1999-12-31T23:59:59Z", None, "start 1999-12-31T23:59:59.000Z is outside"),
        ("a", None, "2026-03-03T00:00:00Z", "end 2026-03-03T00:00:00.000Z is outside"),
        ("a", "2026-02-02T00:00:00Z", "2026-02-01T00:00:00Z", "must be before end"),
        ("a", "2026-02-01T00:00:00Z", "2026-02-01T00:00:00Z", "must be before end"),
        ("a", "2024-01-01T00:00:00Z", "2025-06-01T00:00:00Z", "range is 517 days; at most 366"),
        ("a", "2024-01-01T00:00:00Z", None, "range is 790 days; at most 366"),
    ],
)
def test_bad_requests_are_refused_with_one_line(
    entity: Any, start: Any, end: Any, message: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        rescore_args(entity, start, end, now=NOW)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text


def test_good_requests_become_canonical_utc_arguments() -> None:
    paris = timezone(timedelta(hours=1))
    assert rescore_args("alice", now=NOW) == ["alice", None, None]
    assert rescore_args(
        42, datetime(2026, 2, 1, 1, tzinfo=paris), "2026-02-02T00:00:00.5Z", now=NOW
    ) == [42, "2026-02-01T00:00:00.000Z", "2026-02-02T00:00:00.500Z"]
    assert rescore_args("svc/api", "1769904000", now=NOW)[1] == "2026-02-01T00:00:00.000Z"
    assert check_entity("x" * 256) == "x" * 256
    # what ingest stores can be rescored: surrounding spaces are part of the id
    assert check_entity(" alice") == " alice"
    assert check_entity(-(2**53 - 1)) == -(2**53 - 1)
    assert parse_time(None, "start") is None


def test_unusable_job_ids_are_refused() -> None:
    for job_id in ("", "x" * 256, None):
        with pytest.raises(BadRequest, match="job id must be"):
            client.job_status(job_id)  # type: ignore[arg-type]


@pytest.fixture
def isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """Settings from the environment only (no `.env` of the developer), no Flower credentials."""
    monkeypatch.chdir(tmp_path)
    for name in ("FLOWER_USER", "FLOWER_PASSWORD", "FLOWER_ADDRESS", "FLOWER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    client.producer_app.cache_clear()
    yield
    get_settings.cache_clear()
    client.producer_app.cache_clear()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["rescore", ""], "missing entity field 'entity'"),
        (["rescore", "alice", "--since", "2026-01-01"], "start needs a timezone offset"),
        (
            [
                "rescore",
                "alice",
                "--since",
                "2026-01-02T00:00:00Z",
                "--until",
                "2026-01-01T00:00:00Z",
            ],
            "must be before end",
        ),
        (["rescore", "abc", "--numeric"], "--numeric: 'abc' is not an integer"),
        (["rescore", "alice"], "broker unavailable, nothing enqueued"),
    ],
)
def test_rescore_cli_errors_are_one_line(
    isolated_settings: None, argv: list[str], message: str
) -> None:
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("couchwatch: error: "), result.stderr
    assert message in lines[0]


def test_flower_refuses_to_start_without_credentials(isolated_settings: None) -> None:
    result = CliRunner().invoke(cli, ["flower"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "couchwatch: error: FLOWER_USER and FLOWER_PASSWORD are not set; "
        "pass --local-only to run without them"
    ]


def test_flower_command_line_is_bounded_and_local_by_default() -> None:
    settings = Settings(_env_file=None, flower_user="ops", flower_password="s3cret")  # type: ignore[call-arg]
    argv = local.flower_argv(settings, port=5999)
    assert "--address=127.0.0.1" in argv and "--port=5999" in argv
    limit = next(a for a in argv if a.startswith("--max_tasks="))
    assert 0 < int(limit.partition("=")[2]) <= 100_000
    assert "--persistent=False" in argv
    assert not any("s3cret" in a for a in argv)  # the password travels in the environment
    assert local.flower_env(settings, {})["FLOWER_BASIC_AUTH"] == "ops:s3cret"


def test_flower_password_is_shown_only_when_up_generated_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("COUCHDB_PASSWORD", "FLOWER_PASSWORD", "FLOWER_USER"):
        monkeypatch.delenv(name, raising=False)
    assert local.ensure_env_file(tmp_path)
    settings = Settings(_env_file=tmp_path / ".env")  # type: ignore[call-arg]
    assert settings.flower_password is not None
    generated = settings.flower_password.get_secret_value()
    assert local.generated_flower_password(tmp_path, settings) == generated
    from couchwatch.cli.stack_cmd import _flower_line

    line = _flower_line(settings, tmp_path)  # stdout is not a terminal here: never shown
    assert generated not in line and "FLOWER_PASSWORD in .env" in line

    monkeypatch.setenv("FLOWER_PASSWORD", "chosen-by-operator")  # the environment wins
    assert local.generated_flower_password(tmp_path, Settings(_env_file=tmp_path / ".env")) is None  # type: ignore[call-arg]
    monkeypatch.delenv("FLOWER_PASSWORD")
    (tmp_path / ".env").write_text(f"FLOWER_USER=ops\nFLOWER_PASSWORD={generated}\n")
    assert local.generated_flower_password(tmp_path, settings) is None  # hand-written file
