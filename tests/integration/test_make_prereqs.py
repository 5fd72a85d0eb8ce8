"""`make test` installs Chromium for the browser test the way it installs redis-server (issue 13,
item 8): as root with apt-get, or it stops with one line saying what to install.

Runs the real Makefile target with `make`; `APT_GET` points at a stand-in that records its
arguments (and "installs" by creating the binary), so nothing is installed on this machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.services import ROOT

pytestmark = pytest.mark.integration

INSTALLING = "installing chromium with apt-get (the review page's browser test)"
FAKE_APT = """#!/bin/sh
echo "$*" >> "{log}"
case "$*" in *"install -y -qq chromium"*) printf '#!/bin/sh\\n' > "{target}"; chmod +x "{target}";;
esac
exit {code}
"""


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    make = shutil.which("make")
    assert make, "make not found: apt-get install make"
    return subprocess.run(
        [make, "-s", "-C", str(ROOT), "browser", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _fake_apt(tmp: Path, target: Path, code: int = 0) -> tuple[Path, Path]:
    log, apt = tmp / "apt.log", tmp / "apt-get"
    apt.write_text(FAKE_APT.format(log=log, target=target, code=code))
    apt.chmod(0o755)
    return apt, log


def test_make_test_installs_chromium_with_apt_or_stops_with_one_line(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "run as root (as on this project's machines and CI): apt-get path"
    target = tmp_path / "chromium"
    apt, log = _fake_apt(tmp_path, target)
    # missing: installed with apt-get (update, then install), like redis-server
    done = _make(f"CHROMIUM={target}", f"APT_GET={apt}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == INSTALLING
    assert log.read_text().splitlines() == ["update -qq", "install -y -qq chromium"]
    # present: nothing to do, apt-get not called again
    assert _make(f"CHROMIUM={target}", f"APT_GET={apt}").stdout == ""
    assert len(log.read_text().splitlines()) == 2

    # apt-get fails: one line saying what to install
    (tmp_path / "failing").mkdir()
    failing, _ = _fake_apt(tmp_path / "failing", tmp_path / "never", code=100)
    done = _make(f"CHROMIUM={tmp_path / 'never'}", f"APT_GET={failing}")
    assert done.returncode != 0
    assert done.stdout.strip().splitlines()[1:] == [
        "could not install chromium: apt-get install chromium"
    ]
    # no apt-get (or not root): stops with one line, installs nothing
    done = _make(f"CHROMIUM={tmp_path / 'never'}", f"APT_GET={tmp_path / 'no-such-apt-get'}")
    assert done.returncode != 0
    assert done.stdout.strip() == (
        f"the browser test needs Chromium at {tmp_path / 'never'}: apt-get install chromium"
    )
    print(
        f"\n[make browser] missing -> apt-get update + install chromium; present -> no call; "
        f"apt failure / no apt -> one line ({done.stdout.strip()!r})"
    )


def test_make_test_and_integration_depend_on_the_browser_target() -> None:
    make = shutil.which("make")
    assert make
    plan = subprocess.run(
        [make, "-s", "-C", str(ROOT), "-p", "-n", "browser"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    rules = {
        line.split(":", 1)[0]: line.split(":", 1)[1].split()
        for line in plan.stdout.splitlines()
        if line.startswith(("test:", "integration:"))
    }
    assert "browser" in rules["test"] and "browser" in rules["integration"], rules
