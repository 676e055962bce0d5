"""Grading throughput: a generated class of exercise 01 graded with 1 and 2 workers.

``python -m reglab.bench_grade [N]`` (default 100 submissions: right, wrong, blank and broken
in turn) prints submissions per second for each worker count.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from reglab.grading import workers as grade_workers
from reglab.grading.grade import Settings, cached_reference, grade, sha256
from reglab.grading.merge import read_source
from reglab.release import nbgrader_meta, student_version

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "solutions" / "01-overfitting.ipynb"
WRONG = {"task3-mse": "def mse(y_true, y_pred):\n    return 0.0\n", "q2-validation-vs-test":
         'q2 = "c"'}


def wrong_version(nb):
    for cell in nb.cells:
        code = WRONG.get(nbgrader_meta(cell).get("grade_id"))
        if code:
            cell.source = code
    return nb


def generate_class(folder: Path, n: int) -> Path:
    """n submissions in turn: right, wrong, blank (the released exercise) and unreadable."""
    folder.mkdir(parents=True, exist_ok=True)
    right = SOURCE.read_text(encoding="utf-8")
    kinds = [right, nbformat.writes(wrong_version(nbformat.reads(right, as_version=4))),
             nbformat.writes(student_version(nbformat.reads(right, as_version=4))), "{broken"]
    for i in range(n):
        (folder / f"student{i:03d}.ipynb").write_text(kinds[i % len(kinds)], encoding="utf-8")
    return folder


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_grading(n: int = 100, worker_counts: tuple[int, ...] = (1, 2)) -> dict[int, float]:
    """{workers: submissions per second}; the reference run is excluded (cached first).

    Also printed: CPU seconds per submission, kernels included (the workers are stopped
    after each run, so their time and their kernels' is counted), which a loaded machine
    distorts much less than the rate.
    """
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        subs = generate_class(Path(tmp) / "subs", n)
        for workers in worker_counts:
            out = Path(tmp) / f"out-{workers}"
            out.mkdir()
            cached_reference(read_source(SOURCE), sha256(SOURCE.read_bytes()), Settings(seed=1),
                             out)
            grade_workers.shutdown()
            start, cpu = time.perf_counter(), children_cpu()
            grade(SOURCE, subs, out, workers=workers, seed=1, progress=False)
            rates[workers] = n / (time.perf_counter() - start)
            grade_workers.shutdown()
            cpu = (children_cpu() - cpu) / n
            print(f"grading {n} submissions with {workers} worker(s): "
                  f"{rates[workers]:.2f} submissions/s, {cpu:.2f} CPU s per submission",
                  flush=True)
    return rates


if __name__ == "__main__":
    bench_grading(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
