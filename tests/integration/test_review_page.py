"""The review page end to end: real services, real workers, the API in uvicorn, headless Chromium.

An analyst opens the page, enters an API key, opens an incident of the demo data (its reasons,
its anomalies, the timeline), dismisses it with a note; the review is stored in CouchDB on the
incident and on every one of its anomalies, and the entity's next training learns it (the
dismissed thing no longer alerts at medium/high severity after a rescore with the new model).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from couchwatch.stack.processes import free_port
from tests.conftest import settings_env
from tests.support.fleet import WorkerFleet, worker_fleet
from tests.support.services import ROOT, terminate
from workers.couch.client import CouchClient
from workers.couch.schema import ensure_schema
from workers.engine.demo_data import generate_demo
from workers.settings import Settings
from workers.store.keys import create_key
from workers.store.models import head_id

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = os.environ.get("COUCHWATCH_REVIEW_SCREENSHOT")  # set to refresh docs/review-page.png
RUN_API = (
    "import sys, uvicorn\n"
    "from couchwatch.api.app import create_app\n"
    "from workers.settings import Settings\n"
    "uvicorn.run(create_app(Settings()), host='127.0.0.1', port=int(sys.argv[1]),"
    " log_level='info', access_log=False)\n"
)
NOTE = "new phone, confirmed with the user on a call"


def _store(couch: CouchClient, settings: Settings, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 1000):
        assert not couch.bulk_docs(settings.events_db, events[start : start + 1000]).failed


def _runs(couch: CouchClient, settings: Settings, task: str) -> list[dict[str, Any]]:
    done = ("running", "retrying")
    return [
        d
        for d in couch.iter_all_docs(settings.db_name("runs"))
        if d.get("task") == task and d.get("outcome") not in done
    ]


def _wait_runs(
    couch: CouchClient, settings: Settings, task: str, n: int, timeout_s: float = 300
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = _runs(couch, settings, task)
        if len(runs) >= n:
            return runs
        time.sleep(0.5)
    raise AssertionError(f"fewer than {n} {task} runs finished in {timeout_s}s")


@pytest.fixture
def fleet(settings: Settings, couch: CouchClient, tmp_path: Path) -> Iterator[WorkerFleet]:
    ensure_schema(couch, settings)
    with worker_fleet(settings, settings_env(settings), tmp_path / "logs") as running:
        yield running


@pytest.fixture
def api_url(settings: Settings, fleet: WorkerFleet, tmp_path: Path) -> Iterator[str]:
    """The API app (with the page) in a real uvicorn process."""
    port = free_port()
    log_path = tmp_path / "logs" / "api.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", RUN_API, str(port)],
            env={**os.environ, **settings_env(settings)},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(f"{url}/", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"API did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        terminate(proc, grace_s=20)


def _demo_anomalies(couch: CouchClient, settings: Settings, fleet: WorkerFleet) -> None:
    """History → train → new events → plan_scoring, exactly as the demo does it."""
    days = 12
    start = (datetime.now(UTC) - timedelta(days=days + 1)).replace(hour=0, minute=0, second=0)
    scenario = generate_demo(users=6, days=days, seed=11, start=start)
    events = sorted(scenario.events, key=lambda e: e["timestamp"])
    cutoff = int(len(events) * 0.7)
    _store(couch, settings, events[:cutoff])
    app = fleet.app()
    app.send_task("couchwatch.plan_scoring", kwargs={"force": True})
    _wait_runs(couch, settings, "couchwatch.plan_scoring", 1)
    app.send_task("couchwatch.plan_training", kwargs={"force": True})
    _wait_runs(couch, settings, "couchwatch.train_entities", 1)
    _store(couch, settings, events[cutoff:])
    app.send_task("couchwatch.plan_scoring", kwargs={"force": True})
    _wait_runs(couch, settings, "couchwatch.plan_scoring", 2)
    _wait_runs(couch, settings, "couchwatch.score_entities", 1)  # the history was not scored


def _alerting(doc: dict[str, Any]) -> bool:
    return doc.get("severity") in ("medium", "high")


def test_dismiss_from_the_page_is_stored_and_learned(
    settings: Settings, couch: CouchClient, fleet: WorkerFleet, api_url: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert os.access(CHROMIUM, os.X_OK), (
        f"no {CHROMIUM}: `make test` installs it (apt-get install chromium)"
    )
    started = time.monotonic()
    _demo_anomalies(couch, settings, fleet)
    anomalies_db = settings.db_name("anomalies")
    anomalies = list(couch.iter_all_docs(anomalies_db))
    alerting = [a for a in anomalies if _alerting(a) and a["review"]["status"] == "open"]
    assert alerting, "the demo data produced no medium/high anomaly"
    # the analyst picks the top window anomaly (the page sorts the queue the same way)
    target = max(
        alerting, key=lambda a: (a["severity"] == "high", a["detector"] != "novelty", a["score"])
    )
    entity, target_id = target["entity"], target["_id"]
    incident = couch.get(settings.db_name("incidents"), target["incident_id"])
    assert incident is not None and target_id in incident["anomaly_ids"]
    incident_id = incident["_id"]
    key = create_key(couch, settings.db_name("apikeys"), ["read", "review"], name="e2e analyst")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            external: list[str] = []
            page.on(
                "request", lambda r: None if r.url.startswith(api_url) else external.append(r.url)
            )
            page.goto(f"{api_url}/")
            expect(page.get_by_text("Enter an API key to load the queue.")).to_be_visible()

            page.get_by_label("API key").fill(key)
            page.get_by_label("API key").press("Enter")
            rows = page.locator("#queue-body tr")
            expect(rows.first).to_be_visible(timeout=30_000)
            assert page.evaluate("sessionStorage.getItem('couchwatch.apiKey')") == key

            page.get_by_label("Severity").select_option(incident["severity"])  # reloads
            expect(rows.first.locator(".sev")).to_have_text(incident["severity"], timeout=30_000)
            page.get_by_label("Entity").fill(entity)
            page.get_by_label("Entity").press("Enter")
            row = page.locator(f'#queue-body tr[data-id="{incident_id}"]')
            expect(row).to_be_visible(timeout=30_000)
            expect(row.locator(".n-anomalies")).to_have_text(str(incident["n_anomalies"]))
            row.focus()  # keyboard: Enter on a focused row opens it
            page.keyboard.press("Enter")
            heading = page.locator("#detail-heading")
            expect(heading).to_contain_text(entity, timeout=30_000)
            reasons = page.locator("#detail-reasons li")
            expect(reasons).to_have_count(len(incident["reasons"]))
            expect(reasons.first).to_have_text(incident["reasons"][0]["text"])
            members = page.locator("#detail-anomalies > li")
            expect(members).to_have_count(incident["n_anomalies"])
            expect(page.locator(f'#detail-anomalies > li[data-id="{target_id}"]')).to_contain_text(
                target["reasons"][0]["text"]
            )
            expect(page.locator("#detail-profile dt").first).to_be_visible(timeout=30_000)
            chart = page.locator("#timeline-chart svg")
            expect(chart).to_be_visible(timeout=30_000)
            assert chart.locator("rect.bar").count() > 0, "no activity bars"
            assert chart.locator("line.threshold").count() == 1, "no threshold line"
            bands = chart.locator("rect.band-current").count()
            assert bands >= 1, "no flagged window of the incident"
            expect(page.locator("#detail-review")).to_have_text("open")

            page.get_by_label("Note").fill(NOTE)
            # back to the whole queue (all entities): the opened anomaly stays selected
            page.get_by_label("Entity").fill("")
            page.get_by_label("Severity").select_option("")  # any: loads again
            expect(rows.nth(1)).to_be_visible(timeout=30_000)
            assert page.get_by_label("API key").input_value() == key
            page.evaluate("window.scrollTo(0, 0)")
            shot = Path(SCREENSHOT) if SCREENSHOT else tmp_path / "review-page.png"
            page.screenshot(path=str(shot), full_page=True)

            page.get_by_role("button", name="Dismiss").click()
            expect(page.locator("#status")).to_contain_text("dismissed", timeout=30_000)
            expect(page.locator("#detail-review")).to_have_text("dismissed")
            # the open queue no longer lists it
            expect(row).to_have_count(0)
            assert not errors, errors
            assert not external, f"the page fetched something off-site: {external}"
        finally:
            browser.close()

    stored = couch.get(anomalies_db, target_id)
    assert stored is not None
    assert stored["review"]["status"] == "dismissed"
    assert stored["review"]["note"] == NOTE
    assert stored["review"]["at"]
    reviewed = couch.get(settings.db_name("incidents"), incident_id)
    assert reviewed is not None and reviewed["review"]["status"] == "dismissed"
    members_stored = couch.get_many(anomalies_db, incident["anomaly_ids"])
    assert {a["review"]["status"] for a in members_stored.values()} == {"dismissed"}
    assert {a["review"]["note"] for a in members_stored.values()} == {NOTE}

    # the next training learns it: dismissed events weigh more and raise the threshold above
    # their score, so after a rescore with the new model the dismissed thing no longer alerts
    models_db = settings.db_name("models")
    old_version = couch.get(models_db, head_id(entity))["active_version"]  # type: ignore[index]
    app = fleet.app()
    n_train = len(_runs(couch, settings, "couchwatch.train_entities"))
    app.send_task("couchwatch.plan_training", kwargs={"entities": [entity], "force": True})
    _wait_runs(couch, settings, "couchwatch.train_entities", n_train + 1)
    head = couch.get(models_db, head_id(entity))
    assert head is not None and head["active_version"] == old_version + 1
    n_rescore = len(_runs(couch, settings, "couchwatch.rescore"))
    app.send_task("couchwatch.rescore", args=[entity, None, None])
    _wait_runs(couch, settings, "couchwatch.rescore", n_rescore + 1)

    dismissed_events = set(target["event_ids"])
    after = [a for a in couch.iter_all_docs(anomalies_db) if a.get("entity") == entity]
    relearned = [
        a
        for a in after
        if a["model"]["version"] == head["active_version"]
        and dismissed_events & set(a["event_ids"])
    ]
    assert not [a for a in relearned if _alerting(a)], relearned
    again = next(a for a in after if a["_id"] == target_id)
    assert again["review"]["status"] == "dismissed"  # a rescore never resets a human review
    assert not (again["model"]["version"] == head["active_version"] and _alerting(again)), again
    print(f"review page e2e: {time.monotonic() - started:.0f}s")
