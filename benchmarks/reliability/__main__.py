"""``python -m benchmarks.reliability``: faults, bad input, soak and secrets, in one report.

The fault matrix is two parts: ``matrix`` (provider faults) and ``infra`` (its rows for a
worker SIGKILLed mid-call and Redis restarted without persistence, on a private redis-server;
skipped, saying why, without one).

Runs each part's engine (the same code ``tests/reliability/`` asserts on), prints its table and
writes benchmarks/results/reliability.json. ``--part`` picks parts (repeatable), ``--quick`` runs
the short variant of each (a subset of the matrix, a 15 s soak, fewer generated inputs). A part
that raises, or whose result lists ``violations``, is reported as failed and the exit status is
1, so a broken invariant cannot hide behind a printed table.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "reliability.json"

#: Part name -> module in this package; the order is the report's.
PARTS = {
    "matrix": "benchmarks.reliability.matrix",
    "infra": "benchmarks.reliability.infra",
    "bad-input": "benchmarks.reliability.fuzz",
    "soak": "benchmarks.reliability.soak",
    "secrets": "benchmarks.reliability.secrets",
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability", description=__doc__)
    parser.add_argument(
        "--part",
        action="append",
        choices=sorted(PARTS),
        help="run only this part (repeatable; default: all, in report order)",
    )
    parser.add_argument("--quick", action="store_true", help="the short variant of each part")
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave the results file alone"
    )
    return parser.parse_args(argv)


def _violations(result: Any, depth: int = 0) -> int:
    """How many broken invariants a part reports, wherever in its result it lists them."""
    if not isinstance(result, dict) or depth > 2:
        return 0
    total = 0
    for key, value in result.items():
        if key in ("violations", "violation_count"):
            total += value if isinstance(value, int) else len(value)
        else:
            total += _violations(value, depth + 1)
    return total


def main(argv: list[str] | None = None) -> int:
    """Run the chosen parts; 0 when every part ran and kept its invariants."""
    args = _parse(argv)
    chosen = [name for name in PARTS if not args.part or name in args.part]
    results: dict[str, Any] = {}
    failed: list[str] = []
    for name in chosen:
        print(f"\n## {name}\n", flush=True)
        started = time.perf_counter()
        try:
            module = importlib.import_module(PARTS[name])
            result = module.run(quick=args.quick)
            print(module.render(result), flush=True)
        except Exception:
            failed.append(name)
            traceback.print_exc()
            results[name] = {"failed": traceback.format_exc(limit=3)}
            continue
        result["elapsed_s"] = round(time.perf_counter() - started, 1)
        results[name] = result
        if _violations(result):
            failed.append(name)
        print(f"\n({name}: {result['elapsed_s']} s)", flush=True)
    if not args.no_write:
        previous: dict[str, Any] = {}
        if RESULTS.exists():
            previous = json.loads(RESULTS.read_text()).get("parts", {})
        payload = {
            "machine": {"python": platform.python_version(), "platform": platform.platform()},
            "quick": args.quick,
            "parts": {**previous, **results},
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    if failed:
        print(f"\nFAILED parts: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
