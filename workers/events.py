"""The event schema (../shared/DESIGN.md) as a pure validator.

`validate_event` returns either a normalized event document ready to store or a `Rejection`
with a one-line reason. Normalization: `timestamp` becomes canonical UTC ISO 8601
(`2026-03-01T12:00:00.000Z`, which sorts as text); an input in another form is kept in
`timestamp_original`. Events without `_id` get a content-hash id, so storing the same event twice
is a no-op (an id that already holds *different* content is settled by `workers/event_store.py`).

`entity_problem` is the one rule for entity ids (text without control or line-separator
characters, of bounded length, or an integer within ±2^53-1; `integer_entity` reads such an
integer from text). Numbers are bounded before anything converts them: a 400-digit integer, which
Python's `json` reads exactly and CouchDB 3 stores, is a rejection, never an OverflowError.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_EVENT_BYTES = 64 * 1024
MAX_ENTITY_CHARS = 256
MAX_ID_CHARS = 512
# the largest integer a JSON number keeps exactly everywhere (JavaScript, PouchDB, CouchDB views):
# numeric fields, epoch timestamps and numeric entity ids beyond it are refused
MAX_SAFE_NUMBER = 2**53 - 1
# control characters (Unicode category Cc: C0, DEL, C1 incl. NEL U+0085) and the line and
# paragraph separators: they break e-mail headers, log lines and terminal output
CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_STRING_CHARS = {"user_agent": 2048, "endpoint": 2048}
DEFAULT_MAX_STRING_CHARS = 512
MAX_DEPTH = 8
MAX_FUTURE = timedelta(days=1)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)

NUMERIC_FIELDS = ("bytes_sent", "latency_ms", "status_code")
STRING_FIELDS = (
    "type",
    "ip_address",
    "country",
    "region",
    "state",
    "city",
    "user_agent",
    "endpoint",
    "asn",
)


@dataclass(frozen=True)
class Rejection:
    """Why an event was not stored (one line, safe to show)."""

    reason: str


class NoTimezoneOffset(ValueError):
    """A timestamp text without an offset: its moment is unknown (`parse_timestamp`)."""


def canonical_timestamp(moment: datetime) -> str:
    """Return `moment` as canonical UTC ISO 8601 text with milliseconds and a `Z`
    (`2026-03-01T12:00:00.000Z`, sorts as text). A naive `moment` is taken as UTC; a pandas
    Timestamp is a datetime. The one formatter of stored and wire timestamps."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_timestamp(value: Any) -> datetime:
    """Parse ISO 8601 with an offset (or `Z`) or epoch seconds into an aware UTC datetime; raise
    ValueError otherwise (`NoTimezoneOffset` for ISO text without an offset). The one parser of
    stored, wire and user-given timestamps."""
    if isinstance(value, bool):
        raise ValueError("timestamp must be ISO 8601 text or epoch seconds, not a boolean")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("timestamp is not a finite number")
        if abs(value) > MAX_SAFE_NUMBER:  # a huge int would overflow float() below
            raise ValueError(f"timestamp {_number_preview(value)} is out of range")
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"timestamp {value!r} is out of range") from None
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 64:
            raise ValueError("timestamp text is too long")
        try:
            moment = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            try:
                return parse_timestamp(float(text))
            except ValueError:
                raise ValueError(f"timestamp {_preview(text)} is not ISO 8601") from None
        if moment.tzinfo is None:
            raise NoTimezoneOffset(f"timestamp {_preview(text)} has no timezone offset")
        try:  # an offset can push year 1 or 9999 out of range in UTC
            return moment.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"timestamp {_preview(text)} is out of range") from None
    raise ValueError(f"timestamp must be ISO 8601 text or epoch seconds, not {_kind(value)}")


def validate_event(raw: Any, *, entity_field: str, now: datetime) -> dict[str, Any] | Rejection:
    """Check one event against the schema; return the normalized document or a `Rejection`.

    `now` bounds timestamps from above (at most one day ahead); the lower bound is 1970. Never
    raises: an input the checks below did not foresee is a rejection naming the error, so one
    event can never stop `couchwatch ingest`, `POST /v1/events` or the planner.
    """
    try:
        return _validate(raw, entity_field, now)
    except Exception as exc:  # a gap in the checks must cost one event, never the batch
        return Rejection(f"event could not be validated ({type(exc).__name__})")


def entity_problem(entity: Any, entity_field: str = "entity") -> str | None:
    """Why `entity` is not a usable entity id, or None. The one rule for entity ids: ingest, the
    API, the planner, task messages and the producer client all apply it.

    Text of 1..256 characters without control or line-separator characters (CR, LF, NEL U+0085,
    U+2028, U+2029, any Unicode Cc), or an integer within ±2^53-1. Not a float: CouchDB collates
    3.0 and 3 as one key while Python (registry ids, model ids) keeps them apart.
    """
    if entity is None or entity == "":
        return f"missing entity field {entity_field!r}"
    if isinstance(entity, float):
        return f"entity field {entity_field!r} must be text or an integer, not a float"
    if isinstance(entity, bool) or not isinstance(entity, str | int):
        return f"entity field {entity_field!r} must be text or an integer"
    if isinstance(entity, str):
        if len(entity) > MAX_ENTITY_CHARS:
            return f"entity field {entity_field!r} is longer than {MAX_ENTITY_CHARS}"
        bad = CONTROL_CHARS.search(entity)
        if bad:
            where = f"entity field {entity_field!r}"
            return f"{where} contains the control character {_char(bad.group())}"
        return None
    if abs(entity) > MAX_SAFE_NUMBER:
        return f"entity field {entity_field!r} is a number beyond ±{MAX_SAFE_NUMBER}"
    return None


def integer_entity(text: str) -> int | None:
    """The integer entity id `text` spells (`"42"`, `"-7"`), or None: what a CLI argument or URL
    path names when the entity was stored as a number. Same bounds as `entity_problem`."""
    digits = text[1:] if text.startswith("-") else text
    if not (digits.isascii() and digits.isdigit()) or len(digits) > len(str(MAX_SAFE_NUMBER)):
        return None
    number = int(text)
    return None if entity_problem(number) else number


def _validate(raw: Any, entity_field: str, now: datetime) -> dict[str, Any] | Rejection:
    if not isinstance(raw, dict):
        return Rejection(f"event must be a JSON object, not {_kind(raw)}")
    # depth first: `_depth` stops early, while `json.dumps` recurses to the bottom and can
    # raise RecursionError on input that `json.loads` accepted
    if _depth(raw) > MAX_DEPTH:
        return Rejection(f"event is nested deeper than {MAX_DEPTH} levels")
    huge = _huge_number(raw)  # before json.dumps, which cannot write an int over 4300 digits
    if huge:
        return Rejection(huge)
    try:
        encoded = json.dumps(raw, allow_nan=False, ensure_ascii=False)
    except (ValueError, TypeError):
        return Rejection("event contains NaN or infinity, which JSON does not allow")
    try:
        size = len(encoded.encode())
    except UnicodeEncodeError:
        return Rejection("event contains text that is not valid Unicode (lone surrogate)")
    if size > MAX_EVENT_BYTES:
        return Rejection(f"event is {size} bytes, above the {MAX_EVENT_BYTES}-byte limit")

    problem = entity_problem(raw.get(entity_field), entity_field)
    if problem:
        return Rejection(problem)

    if "timestamp" not in raw:
        return Rejection("missing timestamp")
    try:
        moment = parse_timestamp(raw["timestamp"])
    except ValueError as exc:
        return Rejection(str(exc))
    if moment < EARLIEST:
        return Rejection(f"timestamp {canonical_timestamp(moment)} is before 1970")
    if moment > now + MAX_FUTURE:
        return Rejection(f"timestamp {canonical_timestamp(moment)} is in the future")

    for name in NUMERIC_FIELDS:
        problem = _numeric_problem(name, raw.get(name))
        if problem:
            return Rejection(problem)
    for name in STRING_FIELDS:
        value = raw.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            return Rejection(f"{name} must be text, not {_kind(value)}")
        limit = MAX_STRING_CHARS.get(name, DEFAULT_MAX_STRING_CHARS)
        if len(value) > limit:
            return Rejection(f"{name} is longer than {limit} characters")

    doc_id = raw.get("_id")
    if doc_id is not None:
        if not isinstance(doc_id, str) or not doc_id or len(doc_id) > MAX_ID_CHARS:
            return Rejection(f"_id must be non-empty text of at most {MAX_ID_CHARS} characters")
        if doc_id.startswith("_"):
            return Rejection("_id must not start with '_' (reserved by CouchDB)")
        bad = CONTROL_CHARS.search(doc_id)
        if bad:
            return Rejection(f"_id contains the control character {_char(bad.group())}")

    doc = {k: v for k, v in raw.items() if not k.startswith("_")}
    stamp = raw["timestamp"] if _is_canonical(raw["timestamp"]) else canonical_timestamp(moment)
    if raw["timestamp"] != stamp:
        doc["timestamp_original"] = raw["timestamp"]
    doc["timestamp"] = stamp
    if isinstance(doc.get("status_code"), float):
        doc["status_code"] = int(doc["status_code"])
    doc["_id"] = doc_id if doc_id is not None else content_id(doc, entity_field)
    return doc


def _is_canonical(value: Any) -> bool:
    """Whether a timestamp that parsed is already canonical (``YYYY-MM-DDTHH:MM:SS.mmmZ``)."""
    return (
        type(value) is str
        and len(value) == 24
        and value[10] == "T"
        and value[19] == "."
        and value[23] == "Z"
        and value[20:23].isdigit()
    )


def content_id(doc: dict[str, Any], entity_field: str) -> str:
    """Deterministic id for an event without one: `evt-` + SHA-256 of its canonical JSON."""
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "evt-" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def _numeric_problem(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{name} must be a number, not {_kind(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name} is not finite"
    if abs(value) > MAX_SAFE_NUMBER:  # checked before any float(): a 400-digit int overflows it
        return f"{name} {_number_preview(value)} is beyond ±{MAX_SAFE_NUMBER}"
    if name == "status_code":
        if value != int(value) or not 100 <= value <= 599:
            return f"status_code {value!r} is not an HTTP status (100-599)"
    elif value < 0:
        return f"{name} {value!r} is negative"
    return None


def _huge_number(value: Any, path: str = "") -> str | None:
    """The first integer anywhere in the event too large for a 64-bit float (JSON parsers turn
    it into infinity or null, `float()` raises OverflowError), as a reason; else None."""
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        if type(value) is int and abs(value) > _FLOAT_MAX:
            return f"{path or 'value'} {_number_preview(value)} is too large for a 64-bit float"
        return None
    for key, child in items:
        if type(child) is int:
            if abs(child) <= _FLOAT_MAX:  # the common case: no path to name
                continue
        elif not isinstance(child, dict | list):  # booleans, floats, text, int subclasses
            continue
        name = CONTROL_CHARS.sub("?", str(key))[:40]
        found = _huge_number(child, f"{path}.{name}" if path else name)
        if found:
            return found
    return None


_FLOAT_MAX = int(1.7976931348623157e308)


def _number_preview(value: int | float) -> str:
    """A huge integer named by its size, not its digits (`str()` of one has a digit limit)."""
    if isinstance(value, int) and abs(value) > 10**20:
        return f"<{int(abs(value).bit_length() * 0.30103) + 1}-digit number>"
    return repr(value)


def _char(ch: str) -> str:
    """`U+000D` for a character that must not be printed as itself."""
    return f"U+{ord(ch):04X}"


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        children: Any = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return level
    nested = [v for v in children if isinstance(v, dict | list)]
    # scalars sit one level down; a nested container always reaches deeper than that
    return max((_depth(v, level + 1) for v in nested), default=level + 1)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _preview(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
