"""`python -m bench`: run the benchmark step by step, writing the results JSON after each step.

Steps: compute, fleet (fleet end-to-end + store floor + task overhead + latency; a second time
as fleet_couchdb3 when COUCHDB_URL points at an Apache CouchDB 3), one per scale
store point (store_<n>), one per in-memory scale point (memory_<n>). Progress goes to stderr, one
line per step. The JSON (`bench/results/<date>.json`) carries `"complete": false` until the last
step is done; `docs/performance.md` is written at the end. A failed step is recorded, the others
still run, and the command exits non-zero.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from bench import report
from bench.runner import Runner, plan, select
from bench.servers import external_couchdb
from bench.sizes import PRESETS

ROOT = Path(__file__).resolve().parents[1]


class Terminated(BaseException):
    """SIGTERM: unwind like Ctrl-C so workers and servers are stopped and the JSON is kept."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"signal {signum}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size", choices=sorted(PRESETS), default="full")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--docs", type=Path, default=ROOT / "docs", help="where performance.md and its plots go"
    )
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--note", default="", help="a line for the report (e.g. machine shared)")
    parser.add_argument(
        "--sections",
        default="",
        help="comma-separated subset to run: compute, fleet, store, memory (every point of that "
        "kind) or one point such as store_1000, memory_10000; default: all",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="skip a scale point when elapsed time + its estimate (from the previous point of "
        "its kind) would exceed this many seconds; default 1200 for full, none for tiny; "
        "0 = no budget",
    )
    args = parser.parse_args(argv)
    args.couchdb3, args.couchdb3_note = external_couchdb()
    steps = plan(PRESETS[args.size], couchdb3=args.couchdb3 is not None)
    if args.sections:
        try:
            args.steps = select(steps, args.sections.split(","))
        except ValueError as exc:
            parser.error(str(exc))
        if not args.steps:
            parser.error("--sections selected nothing")
    else:
        args.steps = steps
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    sizes = PRESETS[args.size]
    budget = sizes.budget_s if args.budget_s is None else (args.budget_s or None)
    profile_dir = args.docs / "performance" if sizes.profile and not args.no_docs else None
    path = args.results / f"{datetime.now(UTC):%Y-%m-%d}.json"
    installed = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if installed else None
    try:
        with tempfile.TemporaryDirectory(prefix="couchwatch-bench-") as tmp:
            runner = Runner(
                sizes,
                Path(tmp),
                json_path=path,
                steps=args.steps,
                budget_s=budget,
                profile_dir=profile_dir,
                note=args.note,
                couchdb3=args.couchdb3,
                couchdb3_note=args.couchdb3_note,
            )
            results = runner.run()
    except (Terminated, KeyboardInterrupt) as exc:
        print(f"bench: stopped ({exc!r}); partial results: {path}", file=sys.stderr)
        raise SystemExit(143 if isinstance(exc, Terminated) else 130) from None
    finally:
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    print(f"results: {path}")
    if not args.no_docs:
        md = report.write(results, args.docs, json_path=path)
        print(f"report: {md}")
    print(report.summary(results))
    if results["failed"]:
        print(f"bench: failed sections: {', '.join(results['failed'])}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
