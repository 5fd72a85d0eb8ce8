"""pyinstrument profiles for the report: where the time goes in a measured section."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def profiled(out_dir: Path, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """Run `fn` under pyinstrument; write `<name>.txt` and return its path (relative to cwd)."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.002)
    profiler.start()
    try:
        fn(*args, **kwargs)
    finally:
        profiler.stop()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"profile-{name}.txt"
    text = profiler.output_text(unicode=False, color=False, show_all=False, short_mode=False)
    path.write_text(text, encoding="utf-8")
    return str(path)


def top_lines(path: str | Path, n: int = 40) -> str:
    """The first `n` lines of a profile text (the heaviest call paths)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return "\n".join(lines[:n])


_NODE = re.compile(r"^(?P<lead>[ |]*)[|`]- (?P<seconds>\d+\.\d+) (?P<name>\S+)")


@dataclass(frozen=True)
class Part:
    """One call of a profile's measured function: its seconds and its own largest calls."""

    name: str
    seconds: float
    inside: tuple[tuple[str, float], ...] = ()


def largest_parts(path: str | Path, n: int = 3) -> tuple[float, list[Part]]:
    """The measured function's seconds and its ``n`` largest calls (each with its ``n``
    largest), read from a pyinstrument text profile (the tree under ``profiled``)."""
    total = 0.0
    parts: list[Part] = []
    inside: list[tuple[str, float]] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        m = _NODE.match(line)
        if m is None:
            continue
        depth = len(m["lead"]) // 3 + 1
        name, seconds = m["name"], float(m["seconds"])
        if depth == 1:
            total = seconds
        elif depth == 2:
            if parts:
                parts[-1] = Part(parts[-1].name, parts[-1].seconds, tuple(inside[:n]))
            parts.append(Part(name, seconds))
            inside = []
        elif depth == 3 and parts:
            inside.append((name, seconds))
    if parts:
        parts[-1] = Part(parts[-1].name, parts[-1].seconds, tuple(inside[:n]))
    return total, sorted(parts, key=lambda p: -p.seconds)[:n]


def in_the_way(path: str | Path, what: str = "Its profile") -> str:
    """A plain sentence: what a profiled run spent its time on (its largest calls)."""
    total, parts = largest_parts(path)
    if not parts:
        return f"The profile ({Path(path).name}) holds no calls to read."

    def part(p: Part) -> str:
        within = ", ".join(f"{name} {s:.2f} s" for name, s in p.inside)
        return f"{p.name} {p.seconds:.2f} s ({p.seconds / max(total, 1e-9):.0%})" + (
            f" [{within}]" if within else ""
        )

    return (
        f"{what} (`{Path(path).name}`, {total:.2f} s) spends it in "
        + "; ".join(part(p) for p in parts)
        + "."
    )
