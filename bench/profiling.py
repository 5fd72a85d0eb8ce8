"""pyinstrument profiles for the report: where the time goes in a measured section."""

from __future__ import annotations

from collections.abc import Callable
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
