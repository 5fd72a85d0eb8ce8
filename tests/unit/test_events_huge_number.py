"""`_huge_number` names a path only for an integer that is too large: the same reasons as the
former walk, which cleaned every key of every integer field on the way."""

from __future__ import annotations

import enum
from typing import Any

import pytest

from workers import events
from workers.events import _FLOAT_MAX, CONTROL_CHARS, _number_preview

pytestmark = pytest.mark.unit

HUGE = 10**400


def reference(value: Any, path: str = "") -> str | None:
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        if type(value) is int and abs(value) > _FLOAT_MAX:
            return f"{path or 'value'} {_number_preview(value)} is too large for a 64-bit float"
        return None
    for key, child in items:
        if isinstance(child, dict | list | int) and not isinstance(child, bool):
            name = CONTROL_CHARS.sub("?", str(key))[:40]
            found = reference(child, f"{path}.{name}" if path else name)
            if found:
                return found
    return None


class Small(enum.IntEnum):
    A = 1


class Mapping(dict[str, Any]):
    pass


CASES: list[Any] = [
    {},
    {"a": 1, "b": 2.5, "c": "x", "d": None, "e": False},
    {"a": HUGE},
    {"": HUGE},
    {"a\n": [1, HUGE]},
    {"x": {"y": [{"z": -HUGE}]}},
    {"b": True, "c": HUGE},
    {"i": Small.A, "j": 1.5},
    {"d": Mapping(k=HUGE)},
    [HUGE],
    HUGE,
    5,
    {"x" * 60: HUGE},
    {"a": [1, 2, [3, [HUGE]]], "b": HUGE},
    {1: HUGE},
    {"ok": _FLOAT_MAX, "neg": -_FLOAT_MAX, "over": _FLOAT_MAX + 1},
]


@pytest.mark.parametrize("value", CASES)
def test_reasons_are_those_of_the_former_walk(value: Any) -> None:
    assert events._huge_number(value) == reference(value)
