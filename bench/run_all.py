"""Run every benchmark in bench/ and write one results file plus a printed table.

Each ``bench/bench_*.py`` script writes its own JSON into ``bench/results/``; this script
runs them one after another (never in parallel, so they do not disturb each other's
timings), then gathers everything into ``bench/results/summary.json`` and prints a table.

Usage::

    python bench/run_all.py [--skip chapters ...] [--book]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"


def scripts() -> list[Path]:
    """The benchmark scripts, in name order.

    Returns
    -------
    list of pathlib.Path
    """
    return sorted(BENCH.glob("bench_*.py"))


def flatten(prefix: str, value, out: dict) -> dict:
    """Flatten nested JSON into ``a.b.c -> value`` rows (lists indexed by position or name).

    Parameters
    ----------
    prefix : str
        Key so far.
    value : object
        JSON value.
    out : dict
        Where rows are added.

    Returns
    -------
    dict
        ``out``.
    """
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            name = v.get("chapter") or v.get("name") or str(i) if isinstance(v, dict) else str(i)
            flatten(f"{prefix}[{name}]", v, out)
    else:
        out[prefix] = value
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and write ``bench/results/summary.json``.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.

    Returns
    -------
    int
        Number of benchmark scripts that failed (0 when all ran).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip", nargs="*", default=[], help="script names to skip, e.g. chapters")
    parser.add_argument("--book", action="store_true", help="also time the whole book build")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    failures = 0
    ran = {}
    for script in scripts():
        name = script.stem.removeprefix("bench_")
        if name in args.skip:
            continue
        cmd = [sys.executable, str(script)] + (["--book"] if name == "chapters" and args.book else [])
        print(f"== {script.name}", flush=True)
        start = time.perf_counter()
        code = subprocess.run(cmd, env=env, check=False).returncode
        ran[name] = {"returncode": code, "seconds": round(time.perf_counter() - start, 1)}
        failures += code not in (0, 1)  # 1: ran, but something is over budget
    summary = {"runs": ran, "results": {}}
    for path in sorted(RESULTS.glob("*.json")):
        if path.name != "summary.json":
            summary["results"][path.stem] = json.loads(path.read_text())
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2))
    # the table shows the measurements; machine facts and per-round runs stay in the file
    rows = {k: v for k, v in flatten("", summary["results"], {}).items()
            if not any(part in k for part in ("machine", "versions", "all_runs", "all_seconds"))}
    width = max((len(k) for k in rows), default=10)
    print(f"\n{'result':<{width}}  value")
    for key, value in rows.items():
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")
    print(f"\nwritten: {(RESULTS / 'summary.json').relative_to(ROOT)}")
    return failures


if __name__ == "__main__":
    sys.exit(main())
