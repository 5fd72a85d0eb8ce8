"""`/docs` on a real `couchwatch api` process (issue 13, item 6).

FastAPI's `/docs` and `/redoc` pulled Swagger UI and ReDoc from a CDN, unpinned, into the origin
whose review page keeps an API key in `sessionStorage`. Now: both 404 by default, the schema
stays at `/openapi.json`, the review page's CSP holds; `COUCHWATCH_API_DOCS=true` without local
Swagger UI files is refused in one line, and with them (`swagger-ui-bundle`, here a stand-in
package with the same layout) `/docs` is served from this origin only, under the same CSP.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from couchwatch.api.pages import SECURITY_HEADERS
from couchwatch.stack.processes import free_port, port_open
from tests.conftest import settings_env
from tests.support.services import ROOT, terminate
from tests.support.waiting import eventually
from workers.settings import Settings

pytestmark = pytest.mark.integration

CSP = SECURITY_HEADERS["Content-Security-Policy"]
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.IGNORECASE)


@contextmanager
def api_process(env: dict[str, str], tmp: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp / f"api-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "couchwatch.cli.main", "api", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        eventually(lambda: port_open("127.0.0.1", port), "the API to listen", timeout_s=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        terminate(proc)
        log.close()


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {**os.environ, **settings_env(settings), **extra}


def _bundle(where: Path, version_dir: str, settings: Settings) -> dict[str, str]:
    """The API's environment with a stand-in `swagger_ui_bundle` whose files are in
    `vendor/<version_dir>`, and docs enabled."""
    vendor = where / "swagger_ui_bundle" / "vendor" / version_dir
    vendor.mkdir(parents=True)
    (where / "swagger_ui_bundle" / "__init__.py").write_text(f"swagger_ui_path = {str(vendor)!r}\n")
    (vendor / "swagger-ui-bundle.js").write_text("window.SwaggerUIBundle = 1;\n")
    (vendor / "swagger-ui.css").write_text("body { margin: 0 }\n")
    (vendor / "secret.txt").write_text("not served\n")
    path = os.pathsep.join([str(where), os.environ.get("PYTHONPATH", str(ROOT))])
    return _env(settings, COUCHWATCH_API_DOCS="true", PYTHONPATH=path)


def test_docs_are_off_by_default_and_the_page_csp_holds(settings: Settings, tmp_path: Path) -> None:
    with api_process(_env(settings), tmp_path) as api:
        paths = ("/docs", "/redoc", "/docs/oauth2-redirect", "/docs/assets/swagger-ui-bundle.js")
        status = {path: requests.get(api + path, timeout=10).status_code for path in paths}
        assert status == dict.fromkeys(paths, 404), status
        schema = requests.get(api + "/openapi.json", timeout=10)
        assert schema.status_code == 200 and schema.json()["info"]["title"] == "couchwatch API"
        page = requests.get(api + "/", timeout=10)
        assert page.headers["Content-Security-Policy"] == CSP
        assert "'unsafe-inline'" not in CSP and "script-src 'self';" in CSP
        assert not EXTERNAL.search(page.text), "the review page loads something from elsewhere"
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
            reply = requests.get(api + asset, timeout=10)
            assert reply.status_code == 200 and reply.headers["Content-Security-Policy"] == CSP
    print(
        f"\n[api docs] default: {len(paths)} docs paths 404, /openapi.json 200, review page "
        f"CSP {CSP!r}"
    )


def test_enabling_docs_needs_local_swagger_ui_and_then_serves_only_local_files(
    settings: Settings, tmp_path: Path
) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "couchwatch.cli.main", "api", "--port", str(free_port())],
        env=_env(settings, COUCHWATCH_API_DOCS="true"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert refused.stderr.strip().count("\n") == 0 and "swagger-ui-bundle" in refused.stderr

    # stand-ins for the `swagger-ui-bundle` package: same module, attribute and layout; its
    # release 1.1.0 ships Swagger UI 4.15.5, which cannot read OpenAPI 3.1 (refused)
    old_env = _bundle(tmp_path / "old", "swagger-ui-4.15.5", settings)
    too_old = subprocess.run(
        [sys.executable, "-m", "couchwatch.cli.main", "api", "--port", str(free_port())],
        env=old_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert too_old.returncode == 1 and "OpenAPI 3.1" in too_old.stderr, too_old.stderr
    assert too_old.stderr.strip().count("\n") == 0
    env = _bundle(tmp_path / "new", "swagger-ui-5.17.14", settings)
    with api_process(env, tmp_path) as api:
        docs = requests.get(api + "/docs", timeout=10)
        assert docs.status_code == 200 and docs.headers["Content-Security-Policy"] == CSP
        assert "<script>" not in docs.text and not EXTERNAL.search(docs.text), docs.text
        loaded = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
        assert loaded and all(u.startswith(("/docs/assets/", "/static/")) for u in loaded)
        for url in loaded:
            reply = requests.get(api + url, timeout=10)
            assert reply.status_code == 200, url
            assert reply.headers["Content-Security-Policy"] == CSP
        bundle_js = requests.get(api + "/docs/assets/swagger-ui-bundle.js", timeout=10).text
        assert "SwaggerUIBundle = 1" in bundle_js
        for other in ("secret.txt", "..%2F__init__.py", "%2e%2e%2fsecret.txt"):
            assert requests.get(f"{api}/docs/assets/{other}", timeout=10).status_code == 404
        assert requests.get(api + "/redoc", timeout=10).status_code == 404
    print(
        f"\n[api docs] COUCHWATCH_API_DOCS=true: refused without swagger-ui-bundle "
        f"({refused.stderr.strip()!r}) and with Swagger UI 4; with 5 /docs loads {len(loaded)} "
        f"same-origin files under the CSP, nothing else served"
    )
