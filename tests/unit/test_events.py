"""`validate_event`: normalisation of good events, one clear reason per bad one, never a crash."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from workers.events import (
    DEFAULT_MAX_STRING_CHARS,
    MAX_EVENT_BYTES,
    MAX_STRING_CHARS,
    Rejection,
    canonical_timestamp,
    content_id,
    entity_problem,
    integer_entity,
    parse_timestamp,
    validate_event,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOON = "2026-03-01T12:00:00.000Z"
NOON_EPOCH = int(datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp())
CANONICAL = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def check(raw: Any, entity_field: str = "user_id") -> dict[str, Any] | Rejection:
    return validate_event(raw, entity_field=entity_field, now=NOW)


def accepted(raw: Any, entity_field: str = "user_id") -> dict[str, Any]:
    out = check(raw, entity_field)
    assert isinstance(out, dict), out
    return out


def rejected(raw: Any, entity_field: str = "user_id") -> str:
    out = check(raw, entity_field)
    assert isinstance(out, Rejection), out
    assert out.reason and "\n" not in out.reason
    return out.reason


def event(**fields: Any) -> dict[str, Any]:
    return {"user_id": "alice", "timestamp": NOON, **fields}


# --- good events ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "canonical"),
    [
        ("2026-03-01T13:00:00+01:00", NOON),
        ("2026-03-01T07:30:00-04:30", "2026-03-01T12:00:00.000Z"),
        ("2026-03-01T12:00:00Z", NOON),
        ("2026-03-01T12:00:00z", NOON),
        ("2026-03-01T12:00:00.123456+00:00", "2026-03-01T12:00:00.123Z"),
        (NOON_EPOCH, NOON),
        (NOON_EPOCH + 0.25, "2026-03-01T12:00:00.250Z"),
        (str(NOON_EPOCH), NOON),
        (0, "1970-01-01T00:00:00.000Z"),
    ],
)
def test_timestamps_become_canonical_utc_and_keep_the_original(
    timestamp: Any, canonical: str
) -> None:
    doc = accepted(event(timestamp=timestamp))
    assert doc["timestamp"] == canonical
    assert doc["timestamp_original"] == timestamp


def test_a_canonical_timestamp_keeps_no_original() -> None:
    doc = accepted(event())
    assert doc["timestamp"] == NOON
    assert "timestamp_original" not in doc


@pytest.mark.parametrize("entity", [42, 0, -7, "007", "alice@example.com"])
def test_numeric_and_text_entity_ids_are_kept_as_given(entity: Any) -> None:
    doc = accepted(event(user_id=entity))
    assert doc["user_id"] == entity
    assert type(doc["user_id"]) is type(entity)


def test_service_as_entity_field() -> None:
    doc = accepted({"service": "billing-api", "timestamp": NOON}, entity_field="service")
    assert doc["service"] == "billing-api"
    reason = rejected({"user_id": "alice", "timestamp": NOON}, entity_field="service")
    assert "'service'" in reason


def test_known_and_unknown_fields_are_kept_and_internal_fields_dropped() -> None:
    raw = event(
        type="login",
        ip_address="203.0.113.9",
        country="DE",
        status_code=200.0,
        bytes_sent=0,
        latency_ms=12.5,
        extra={"nested": [1, 2]},
        _rev="1-abc",
        _attachments={"x": {}},
        _deleted=True,
    )
    doc = accepted(raw)
    assert doc["status_code"] == 200 and type(doc["status_code"]) is int
    assert doc["extra"] == {"nested": [1, 2]}
    assert doc["bytes_sent"] == 0 and doc["latency_ms"] == 12.5
    assert not {"_rev", "_attachments", "_deleted"} & doc.keys()
    assert doc["_id"].startswith("evt-")
    assert raw["_rev"] == "1-abc"  # the input is not modified


def test_an_explicit_id_is_kept() -> None:
    assert accepted(event(_id="producer-123"))["_id"] == "producer-123"


def test_validation_accepts_its_own_output_unchanged() -> None:
    doc = accepted(event(timestamp="2026-03-01T13:00:00+01:00", bytes_sent=10))
    assert accepted(dict(doc)) == doc


# --- content ids ---------------------------------------------------------------------------


def test_content_id_is_deterministic_and_ignores_key_order() -> None:
    a = accepted({"user_id": "alice", "timestamp": NOON, "type": "login", "city": "Berlin"})
    b = accepted({"city": "Berlin", "type": "login", "timestamp": NOON, "user_id": "alice"})
    assert a["_id"] == b["_id"]
    assert a["_id"] == accepted(event(type="login", city="Berlin"))["_id"]
    assert re.fullmatch(r"evt-[0-9a-f]{40}", a["_id"])
    assert content_id({k: v for k, v in a.items() if k != "_id"}, "user_id") == a["_id"]


@pytest.mark.parametrize(
    "change",
    [
        {"user_id": "bob"},
        {"timestamp": "2026-03-01T12:00:00.001Z"},
        {"type": "logout"},
        {"city": "Berlin "},
        {"bytes_sent": 1},
    ],
)
def test_different_content_gets_a_different_id(change: dict[str, Any]) -> None:
    base = event(type="login", city="Berlin")
    assert accepted(base)["_id"] != accepted({**base, **change})["_id"]


# --- rejections ----------------------------------------------------------------------------

FUTURE = (NOW + timedelta(days=2)).isoformat()
DEEP: dict[str, Any] = {"v": 1}
for _ in range(12):
    DEEP = {"n": DEEP}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"timestamp": NOON}, "missing entity field 'user_id'"),
        (event(user_id=""), "missing entity field"),
        (event(user_id=None), "missing entity field"),
        (event(user_id=True), "must be text or an integer"),
        (event(user_id=False), "must be text or an integer"),
        (event(user_id=["alice"]), "must be text or an integer"),
        (event(user_id={"id": 1}), "must be text or an integer"),
        (event(user_id="x" * 257), "longer than 256"),
        ({"user_id": "alice"}, "missing timestamp"),
        (event(timestamp="2026-03-01T12:00:00"), "no timezone offset"),
        (event(timestamp="2026-03-01"), "no timezone offset"),
        (event(timestamp="yesterday"), "not ISO 8601"),
        (event(timestamp=""), "not ISO 8601"),
        (event(timestamp=True), "not a boolean"),
        (event(timestamp=None), "not NoneType"),
        (event(timestamp=[NOON]), "not a list"),
        (event(timestamp="1969-12-31T23:59:59Z"), "before 1970"),
        (event(timestamp=-1), "before 1970"),
        (event(timestamp=FUTURE), "in the future"),
        (event(timestamp=1e20), "out of range"),
        (event(timestamp="x" * 100), "too long"),
        (event(bytes_sent=-1), "bytes_sent -1 is negative"),
        (event(latency_ms=-0.5), "latency_ms -0.5 is negative"),
        (event(bytes_sent="12"), "bytes_sent must be a number"),
        (event(bytes_sent=True), "bytes_sent must be a number"),
        (event(bytes_sent=float("nan")), "NaN"),
        (event(latency_ms=float("inf")), "NaN or infinity"),
        (event(extra=float("-inf")), "NaN or infinity"),
        (event(status_code=999), "not an HTTP status"),
        (event(status_code=99), "not an HTTP status"),
        (event(status_code=200.5), "not an HTTP status"),
        (event(user_agent="u" * (MAX_STRING_CHARS["user_agent"] + 1)), "longer than 2048"),
        (event(country="c" * (DEFAULT_MAX_STRING_CHARS + 1)), "longer than 512"),
        (event(ip_address=167772161), "ip_address must be text"),
        (event(payload=DEEP), "nested deeper than"),
        (event(blob="b" * MAX_EVENT_BYTES), "bytes, above the"),
        ([event()], "must be a JSON object, not a list"),
        ("user_id=alice", "must be a JSON object, not text"),
        (42, "must be a JSON object"),
        (None, "must be a JSON object"),
        (event(_id="_design/evil"), "must not start with '_'"),
        (event(_id="_local/x"), "must not start with '_'"),
        (event(_id=""), "_id must be non-empty text"),
        (event(_id=12), "_id must be non-empty text"),
        (event(_id="i" * 513), "_id must be non-empty text"),
    ],
)
def test_each_bad_event_is_rejected_with_its_reason(raw: Any, reason: str) -> None:
    assert reason in rejected(raw)


def test_the_future_bound_is_one_day() -> None:
    accepted(event(timestamp=(NOW + timedelta(hours=23)).isoformat()))
    rejected(event(timestamp=(NOW + timedelta(hours=25)).isoformat()))


@pytest.mark.parametrize(
    "timestamp",
    # valid ISO text whose UTC form is outside datetime's range (year 0 or 10000)
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+23:59"],
)
def test_timestamps_out_of_range_in_utc_are_rejected_not_raised(timestamp: str) -> None:
    assert "out of range" in rejected(event(timestamp=timestamp))


def test_nesting_deep_enough_to_break_json_dumps_is_rejected_not_raised() -> None:
    # `json.loads` can hand over structures nearly as deep as `json.dumps` can encode; deeper
    # ones must still be a rejection, never a RecursionError
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    assert "nested deeper than" in rejected(event(x=deep))


def test_lone_surrogates_are_rejected_as_invalid_unicode() -> None:
    raw = json.loads('{"user_id": "a", "timestamp": 0, "city": "\\ud800"}')
    assert "Unicode" in rejected(raw)


# --- property: never raises ----------------------------------------------------------------

leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.builds(lambda ch, n: ch * n, st.characters(), st.integers(0, 3 * MAX_EVENT_BYTES))
)
json_values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=25,
)
offsets = st.timedeltas(
    min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
)
moments = st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(9999, 12, 31, 23, 59, 59),
    timezones=st.builds(timezone, offsets),
)
edge_moments = st.one_of(  # the ends of datetime's range, where an offset overflows in UTC
    st.datetimes(max_value=datetime(1, 1, 2), timezones=st.builds(timezone, offsets)),
    st.datetimes(min_value=datetime(9999, 12, 30), timezones=st.builds(timezone, offsets)),
)
timestamps = (
    json_values
    | moments.map(datetime.isoformat)
    | edge_moments.map(datetime.isoformat)
    | moments.map(lambda m: m.isoformat().replace("+00:00", "Z"))
    | st.datetimes().map(datetime.isoformat)  # naive
    | st.integers(min_value=-(10**13), max_value=10**13)
    | st.floats(min_value=-1e13, max_value=1e13)
    | st.floats(min_value=-1e13, max_value=1e13).map(str)
)
entities = json_values | st.integers() | st.text(min_size=1, max_size=300)
known = st.fixed_dictionaries(
    {},
    optional={
        "user_id": entities,
        "service": entities,
        "timestamp": timestamps,
        "bytes_sent": json_values,
        "latency_ms": json_values,
        "status_code": json_values | st.integers(0, 1000) | st.floats(0, 1000),
        "type": json_values,
        "user_agent": json_values,
        "_id": json_values | st.text(max_size=600),
        "_rev": json_values,
    },
)
events = st.builds(
    lambda extra, fields: {**extra, **fields},
    st.dictionaries(st.text(max_size=12), json_values, max_size=5),
    known,
)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raw=events | json_values, entity_field=st.sampled_from(["user_id", "service"]))
@example(raw=event(timestamp="0001-01-01T00:00:00+01:00"), entity_field="user_id")
@example(raw=event(user_id=float("nan")), entity_field="user_id")
@example(raw=event(bytes_sent="x" * (MAX_EVENT_BYTES * 3)), entity_field="user_id")
@example(raw=event(bytes_sent=10**400, status_code=10**400), entity_field="user_id")
@example(raw=event(timestamp=10**400), entity_field="user_id")
@example(raw=event(timestamp=-(10**400), x={"y": 10**5000}), entity_field="user_id")
@example(raw=event(user_id="a\r\nb"), entity_field="user_id")
def test_validate_event_never_raises(raw: Any, entity_field: str) -> None:
    out = validate_event(raw, entity_field=entity_field, now=NOW)
    if isinstance(out, Rejection):
        assert isinstance(out.reason, str) and out.reason.strip()
        assert "\n" not in out.reason and "\r" not in out.reason
        assert len(out.reason) < 400
        return
    assert isinstance(out, dict)
    assert CANONICAL.fullmatch(out["timestamp"])
    assert datetime.fromisoformat(out["timestamp"]) <= NOW + timedelta(days=1)
    assert isinstance(out["_id"], str) and out["_id"] and not out["_id"].startswith("_")
    entity = out[entity_field]
    assert isinstance(entity, str | int | float) and not isinstance(entity, bool)
    assert not (isinstance(entity, float) and not math.isfinite(entity))
    assert not [k for k in out if k.startswith("_") and k != "_id"]
    stored = json.dumps(out, allow_nan=False)  # what goes to CouchDB is valid JSON
    assert len(stored.encode()) < 2 * MAX_EVENT_BYTES


# --- issue 13: control characters in entity ids, huge integers -----------------------------

HUGE = 10**400  # what `json.loads` makes of `1` followed by 400 zeros (Python keeps it exact)


@pytest.mark.parametrize(
    ("entity", "code"),
    [
        ("mallory\r\nBcc: all@example.com", "U+000D"),
        ("a\nb", "U+000A"),
        ("a\x85b", "U+0085"),  # NEL: `str.splitlines` and the e-mail header check split on it
        ("a\u2028b", "U+2028"),
        ("a\u2029b", "U+2029"),
        ("a\x00b", "U+0000"),
        ("\x1b[31mred", "U+001B"),
        ("tab\there", "U+0009"),
        ("a\x7fb", "U+007F"),
        ("a\x9fb", "U+009F"),
    ],
)
def test_entity_ids_with_control_or_line_separator_characters_are_rejected(
    entity: str, code: str
) -> None:
    reason = rejected(event(user_id=entity))
    assert reason == f"entity field 'user_id' contains the control character {code}"
    assert entity_problem(entity, "user_id") == reason


@pytest.mark.parametrize(
    "entity", ["alice", "Zoë", "用户", "a b", " a ", "🙂", "a\u200db", 2**53 - 1, -(2**53 - 1)]
)
def test_printable_entity_ids_pass_the_one_rule(entity: Any) -> None:
    assert entity_problem(entity) is None
    accepted(event(user_id=entity))


@pytest.mark.parametrize("entity", [2**53, -(2**53), HUGE, -HUGE])
def test_numeric_entity_ids_beyond_2_53_are_rejected(entity: Any) -> None:
    assert "number" in rejected(event(user_id=entity))


@pytest.mark.parametrize("entity", [3.0, 7.5, 1e300, -0.0])
def test_float_entity_ids_are_rejected(entity: float) -> None:
    # CouchDB collates 3.0 and 3 as one view key; Python's registry and model ids keep them apart
    reason = "entity field 'user_id' must be text or an integer, not a float"
    assert rejected(event(user_id=entity)) == reason
    assert entity_problem(entity, "user_id") == reason


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("42", 42),
        ("-7", -7),
        ("007", 7),
        (str(2**53 - 1), 2**53 - 1),
        (str(2**53), None),
        ("9" * 400, None),
        ("4.2", None),
        ("", None),
        ("-", None),
        ("+4", None),
        (" 4", None),
        ("٤٢", None),  # Arabic-Indic digits: isdigit() but not an id anyone typed as a number
        ("alice", None),
    ],
)
def test_integer_entity_reads_what_a_cli_argument_or_url_names(text: str, number: Any) -> None:
    assert integer_entity(text) == number


def test_the_producer_client_and_the_tasks_apply_the_same_rule() -> None:
    from scheduler.client import BadRequest, check_entity
    from workers.tasks import check_entities

    for entity in ["alice", " a ", 42, 2**53 - 1, "", "a\nb", 1.5, True, None, 2**53, "x" * 257]:
        problem = entity_problem(entity)
        if problem is None:
            assert check_entity(entity) == entity
            assert check_entities([entity]) == [entity]
        else:
            with pytest.raises(BadRequest, match=re.escape(problem)):
                check_entity(entity)
            with pytest.raises(ValueError, match=re.escape(problem)):
                check_entities([entity])


def test_an_explicit_id_with_a_control_character_is_rejected() -> None:
    assert "_id contains the control character U+000A" in rejected(event(_id="evt-1\nx"))


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"bytes_sent": HUGE}, "bytes_sent <401-digit number> is too large for a 64-bit float"),
        ({"status_code": HUGE}, "status_code <401-digit number> is too large"),
        ({"latency_ms": -HUGE}, "latency_ms <401-digit number> is too large"),
        ({"timestamp": HUGE}, "timestamp <401-digit number> is too large"),
        ({"extra": {"n": [1, HUGE]}}, "extra.n.1 <401-digit number> is too large"),
        ({"user_id": HUGE}, "user_id <401-digit number> is too large"),
        ({"bytes_sent": 2**53}, "bytes_sent 9007199254740992 is beyond ±9007199254740991"),
        ({"bytes_sent": 10**30}, "bytes_sent <31-digit number> is beyond ±9007199254740991"),
        ({"latency_ms": 1e300}, "latency_ms 1e+300 is beyond ±9007199254740991"),
        ({"timestamp": 2**53}, "timestamp 9007199254740992 is out of range"),
        ({"timestamp": 10**30}, "timestamp <31-digit number> is out of range"),
    ],
)
def test_huge_numbers_are_rejected_with_a_reason_never_raised(
    fields: dict[str, Any], reason: str
) -> None:
    assert reason in rejected(event(**fields))


def test_integers_too_long_for_str_are_rejected_too() -> None:
    # 5,000 digits: over Python's int/str conversion limit (json.dumps of it would raise)
    assert "too large for a 64-bit float" in rejected(event(bytes_sent=10**5000))


def test_the_largest_safe_numbers_are_still_accepted() -> None:
    doc = accepted(event(bytes_sent=2**53 - 1, latency_ms=1e15, extra=10**300))
    assert doc["bytes_sent"] == 2**53 - 1 and doc["extra"] == 10**300


def test_an_unforeseen_error_in_validation_is_a_rejection(monkeypatch: pytest.MonkeyPatch) -> None:
    from workers import events as events_module

    def boom(*_: Any) -> None:
        raise OverflowError("int too large to convert to float")

    monkeypatch.setattr(events_module, "_numeric_problem", boom)
    assert rejected(event(bytes_sent=1)) == "event could not be validated (OverflowError)"


# --- one helper per rule: the canonical UTC timestamp ------------------------------------


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 3, 1, 13, 0, 0, 123999, tzinfo=timezone(timedelta(hours=1))),
        datetime(2026, 3, 1, 12, 0, 0, 123456),  # naive is UTC, never local time
        "2026-03-01T12:00:00.123456Z",
    ],
)
def test_every_formatter_writes_the_one_canonical_form(moment: Any) -> None:
    import pandas as pd

    from scheduler.client import wire_time
    from workers.engine.anomaly import iso_utc
    from workers.engine.demo_data import format_ts

    expected = "2026-03-01T12:00:00.123Z"
    as_datetime = pd.Timestamp(moment).to_pydatetime() if isinstance(moment, str) else moment
    assert canonical_timestamp(as_datetime) == expected
    assert iso_utc(moment) == expected
    assert wire_time(parse_timestamp(expected)) == expected
    assert format_ts(int(parse_timestamp(expected).timestamp() * 1000)) == expected


def test_every_parser_reads_the_canonical_form_back() -> None:
    from scheduler.client import to_utc
    from workers.scoring import window_floor

    moment = datetime(2026, 3, 1, 12, 7, 30, tzinfo=UTC)
    assert parse_timestamp(canonical_timestamp(moment)) == moment
    assert to_utc(canonical_timestamp(moment), "start") == moment
    assert window_floor(canonical_timestamp(moment), "15min") == "2026-03-01T12:00:00.000Z"
