"""Write each chapter's "Estimated run time" from the recorded chapter benchmark.

The run time a chapter states at its top is never typed by hand: it is the time
``bench/bench_chapters.py`` recorded in ``bench/results/chapters.json``, rounded up to whole
minutes, in one fixed sentence that points to the Benchmarks page (which shows the same
file). ``make bench`` runs this script after the benchmarks; ``tests/test_notebooks.py``
fails when a chapter's sentence and the record disagree.

Usage::

    python bench/runtimes.py            # rewrite the sentences that are out of date
    python bench/runtimes.py --check    # only report them (exit status 1 if any)
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "bench" / "results" / "chapters.json"
NOTEBOOKS = ROOT / "notebooks"

#: The sentence a chapter's first cell opens its run-time paragraph with.
SENTENCE = re.compile(
    r"\*\*Estimated run time\.\*\* About (\d+) minutes? on a 2-core CPU \(measured by "
    r"`make bench`; see the \[Benchmarks page\]\(\.\./book/benchmarks\.md\)\)\."
)


def recorded_seconds(record: Path = RECORD) -> dict[str, float]:
    """Seconds each chapter took in the recorded benchmark, by notebook stem."""
    data = json.loads(record.read_text(encoding="utf-8"))
    return {row["chapter"]: float(row["seconds"]) for row in data["chapters"]}


def minutes(seconds: float) -> int:
    """Whole minutes, rounded up (at least 1)."""
    return max(1, math.ceil(seconds / 60))


def sentence(seconds: float) -> str:
    """The run-time sentence for a chapter that took ``seconds``."""
    n = minutes(seconds)
    return (
        f"**Estimated run time.** About {n} minute{'s' if n > 1 else ''} on a 2-core CPU "
        "(measured by `make bench`; see the [Benchmarks page](../book/benchmarks.md))."
    )


def stated_minutes(notebook: Path) -> int | None:
    """Minutes stated in the notebook's first cell, or None without the sentence."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    match = SENTENCE.search("".join(nb["cells"][0]["source"]))
    return int(match.group(1)) if match else None


def update(notebook: Path, seconds: float, write: bool = True) -> bool:
    """Bring the notebook's sentence up to date; return whether it was out of date."""
    raw = notebook.read_text(encoding="utf-8")
    nb = json.loads(raw)
    first = nb["cells"][0]
    text = "".join(first["source"])
    if not SENTENCE.search(text):
        raise ValueError(f"{notebook.name}: no run-time sentence matching {SENTENCE.pattern}")
    new = SENTENCE.sub(lambda _: sentence(seconds), text, count=1)
    if new == text:
        return False
    if write:
        lines = new.split("\n")
        first["source"] = [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
        notebook.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with ``--check`` only list) the out-of-date run-time sentences."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report only, change nothing")
    args = parser.parse_args(argv)
    seconds = recorded_seconds()
    stale = []
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        if notebook.stem not in seconds:
            print(f"{notebook.name}: not in {RECORD.relative_to(ROOT)}; run bench/bench_chapters.py")
            stale.append(notebook.name)
            continue
        if update(notebook, seconds[notebook.stem], write=not args.check):
            stale.append(notebook.name)
            print(f"{notebook.name}: {'out of date' if args.check else 'updated'} "
                  f"(about {minutes(seconds[notebook.stem])} min)")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
