"""Webhook signatures: sign/verify round trip, tampering, wrong secret, replays."""

from __future__ import annotations

import doctest

import pytest

from workers.notify import signature
from workers.notify.signature import parse_header, sign, verify_signature

pytestmark = pytest.mark.unit
BODY = b'{"id":"notification:1","text":"hi"}'
T0 = 1_700_000_000


def test_round_trip_and_header_shape() -> None:
    header = sign("s3cret", BODY, timestamp=T0)
    assert header.startswith(f"t={T0},v1=") and len(header.split("v1=")[1]) == 64
    assert verify_signature("s3cret", header, BODY, now=T0 + 5, tolerance_s=300)


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [
        ("other", BODY, T0),  # wrong secret
        ("s3cret", BODY + b" ", T0),  # body changed
        ("s3cret", BODY, T0 + 301),  # replayed after the tolerance
        ("s3cret", BODY, T0 - 301),  # timestamp from the future
    ],
)
def test_rejects(secret: str, body: bytes, now: float) -> None:
    header = sign("s3cret", BODY, timestamp=T0)
    assert not verify_signature(secret, header, body, now=now, tolerance_s=300)


def test_replay_with_forged_timestamp_fails() -> None:
    digest = sign("s3cret", BODY, timestamp=T0).split("v1=")[1]
    assert not verify_signature("s3cret", f"t={T0 + 1000},v1={digest}", BODY, now=T0 + 1000)


@pytest.mark.parametrize("header", [None, "", "garbage", "t=x,v1=ab", f"t={T0}", "v1=abc"])
def test_malformed_headers(header: str | None) -> None:
    assert not verify_signature("s3cret", header, BODY, now=T0)


def test_rotation_accepts_any_v1() -> None:
    good = sign("new", BODY, timestamp=T0).split("v1=")[1]
    assert verify_signature("new", f"t={T0},v1={'0' * 64},v1={good}", BODY, now=T0)
    assert parse_header(f"t={T0},v1=a,v1=b") == (T0, ["a", "b"])


def test_doctests() -> None:
    assert doctest.testmod(signature).failed == 0
