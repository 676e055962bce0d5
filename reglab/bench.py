"""``make bench``: time every chapter and exercise solution against its budget, then grading.

Prints a table and exits 1 if any notebook is over its budget or fails. Budgets on 2 CPU
cores: a chapter 60 s, an exercise solution 30 s (kernel start-up included). Then grades a
generated class of 100 submissions of exercise 01 with 1 and 2 workers and prints
submissions per second (``python -m reglab.bench notebooks`` skips the grading part).
"""

from __future__ import annotations

import sys
from pathlib import Path

from reglab.execute import execute

BUDGETS = {"notebooks": 60.0, "solutions": 30.0}


def rows(root: Path):
    for folder, budget in BUDGETS.items():
        for path in sorted((root / folder).glob("*.ipynb")):
            try:
                _, seconds = execute(path)
                status = "ok" if seconds <= budget else "OVER BUDGET"
            except Exception as err:  # a failing notebook is a row, not the end of the bench
                seconds, status = float("nan"), f"FAILED ({type(err).__name__})"
            yield f"{folder}/{path.name}", seconds, budget, status


def main(part: str = "all", root: str = ".") -> int:
    print(f"{'notebook':<45} {'seconds':>8} {'budget':>7}  status", flush=True)
    bad = 0
    for name, seconds, budget, status in rows(Path(root)):
        print(f"{name:<45} {seconds:>8.1f} {budget:>7.0f}  {status}", flush=True)
        bad += status != "ok"
    if part == "all":
        from reglab.bench_grade import bench_grading

        bench_grading(100, (1, 2))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
