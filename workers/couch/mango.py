"""Mango selectors and CouchDB collation for the in-memory CouchDB twin (`memory.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workers.couch.errors import error_for_status


def fail(status: int, error: str, reason: str) -> Exception:
    """The exception the real transport raises for this HTTP status and CouchDB error."""
    cls = error_for_status(status)
    return cls(f"CouchDB {status} {error} (memory twin): {reason}", status=status, error=error)


def collate(value: Any) -> tuple[Any, ...]:
    """A sort key following CouchDB's collation: null < false < true < numbers < strings <
    arrays < objects (strings compare by code point here, not ICU)."""
    if value is None:
        return (0,)
    if value is False:
        return (1,)
    if value is True:
        return (2,)
    if isinstance(value, int | float):
        return (3, value)
    if isinstance(value, str):
        return (4, value)
    if isinstance(value, list):
        return (5, tuple(collate(v) for v in value))
    return (6, tuple((k, collate(v)) for k, v in value.items()))


MISSING = object()


def field_value(doc: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted `path` (`review.status`), or `MISSING`."""
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return value


def _match_condition(value: Any, cond: Any) -> bool:
    if not isinstance(cond, Mapping) or not any(str(k).startswith("$") for k in cond):
        return value is not MISSING and collate(value) == collate(cond)
    for op, arg in cond.items():
        if op == "$exists":
            if (value is not MISSING) != bool(arg):
                return False
            continue
        if value is MISSING:
            return False
        if not _compare(op, collate(value), arg):
            return False
    return True


def _compare(op: str, key: tuple[Any, ...], arg: Any) -> bool:
    if op == "$in":
        return any(key == collate(a) for a in arg)
    ref = collate(arg)
    if op == "$eq":
        return key == ref
    if op == "$ne":
        return key != ref
    if op == "$gt":
        return key > ref
    if op == "$gte":
        return key >= ref
    if op == "$lt":
        return key < ref
    if op == "$lte":
        return key <= ref
    raise fail(400, "invalid_operator", f"operator {op} not supported by the twin")


def matches(doc: Mapping[str, Any], selector: Mapping[str, Any]) -> bool:
    """Whether `doc` satisfies a Mango selector (field conditions and `$and`)."""
    for name, cond in selector.items():
        if name == "$and":
            if not all(matches(doc, part) for part in cond):
                return False
        elif not _match_condition(field_value(doc, name), cond):
            return False
    return True
