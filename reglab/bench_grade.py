"""Grading throughput: a generated class of every exercise, and real nbgrader beside ours.

``python -m reglab.bench_grade [--per-kind N] [--exercises 01,04] [--no-nbgrader]`` grades,
for every exercise in ``solutions/``, a generated class of N submissions of each kind
(default 4; half that, at least 1, for the exercises that import TensorFlow):

* *right*: the solution notebook itself;
* *wrong*: the solution with two answer cells mutated generically (:func:`wrong_version`):
  its first answer function returns a wrong value of the right shape, its last quiz answer
  names another letter;
* *blank*: the released exercise (``exercises/NN-*.ipynb``), as a student gets it;
* *unreadable*: a file that is not JSON.

Each exercise's class is graded with 1 and then 2 workers, in a fresh process per exercise
(so that the peak RSS of its processes can be read from ``ru_maxrss``). Per exercise it prints
submissions per second for each worker count, CPU seconds per submission (kernels included:
the workers are stopped after each run) and the peak resident memory of the largest grading
process (a kernel, normally). The reference run is excluded from the timings (cached first,
once per exercise). Scores are checked: right = full marks, wrong between, blank = 0,
unreadable = status ``unreadable``.

For exercises 01 and 04 the same submissions are then graded by real nbgrader 0.9.6
(``nbgrader autograde``, one process, as nbgrader does), from the interpreter in
``.venv-nbgrader`` (``make nbgrader-venv``; its pins conflict with the course's): a course
folder in a temporary directory with our solution as the source notebook,
``nbgrader generate_assignment``, the submissions in ``submitted/<student>/<assignment>/``,
then ``nbgrader autograde`` timed for the whole class; its scores are read from its gradebook
and checked the same way (right = full, blank = 0). The ratio printed is our 2-worker rate
over nbgrader's.

``--stress-templates ROUNDS`` does something else: the fork-safety check of the TensorFlow
kernel template (:mod:`reglab.grading.fork`). The right and the wrong submission of exercises
04 to 08 are graded ROUNDS times through each template, on 2 workers; every report must be
exactly the same as its submission's first one (from a plain kernel, which imports TensorFlow
itself) and none may stop (a hang ends as a notebook timeout after 300 s).

Rates on a loaded machine are low and noisy: the load average is printed with the results;
CPU seconds per submission are much less affected.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from reglab.release import nbgrader_meta, student_version

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "solutions" / "01-overfitting.ipynb"
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"
NBGRADER_VENV = ROOT / ".venv-nbgrader"
NBGRADER_EXERCISES = ("01", "04")
UNREADABLE = "{broken"
SEED = 1
CELL_TIMEOUT = 60.0  # ours (reglab grade's default) and nbgrader's, for the same work
QUIZ = re.compile(r'^(\s*q\d+\s*=\s*)"([a-d])"', re.M)

# Run in the student's kernel by the wrong version: the right result, made wrong in value
# but not in type or shape, so that the checks compare (and fail) rather than crash.
WRONG_HELPER = '''

def _bench_wrong(value):
    import numpy as _np
    if isinstance(value, (bool, _np.bool_)):
        return not value
    if isinstance(value, (int, float, _np.integer, _np.floating)):
        return type(value)(value * 3 + 1)
    if isinstance(value, _np.ndarray):
        return ~value if value.dtype == bool else (value * 3 + 1).astype(value.dtype)
    if isinstance(value, (tuple, list)):
        return type(value)(_bench_wrong(v) for v in value)
    if isinstance(value, dict):
        return {k: _bench_wrong(v) for k, v in value.items()}
    return None


_bench_right_{name} = {name}


def {name}(*args, **kwargs):
    return _bench_wrong(_bench_right_{name}(*args, **kwargs))
'''


# ---------------------------------------------------------------- the generated class

def uses_tensorflow(source: Path) -> bool:
    from reglab.grading.fork import TENSORFLOW, flavour_for

    return flavour_for(nbformat.read(source, as_version=4)) == TENSORFLOW


def per_kind_for(source: Path, per_kind: int) -> int:
    """Submissions of each kind for an exercise: half for those that import TensorFlow."""
    return max(1, per_kind // 2) if uses_tensorflow(source) else per_kind


def _answer_cells(nb):
    return [c for c in nb.cells
            if c.cell_type == "code" and nbgrader_meta(c).get("solution")
            and nbgrader_meta(c).get("grade_id")]


def wrong_version(nb):
    """Two answers made wrong: the first answer function returns a wrong value of the right
    shape (its right result, perturbed), the last quiz answer names the next letter."""
    answers = _answer_cells(nb)
    for cell in answers:
        match = re.search(r"^def\s+(\w+)\s*\(", cell.source, re.M)
        if match:
            cell.source = cell.source.rstrip() + "\n" + WRONG_HELPER.replace(
                "{name}", match.group(1))
            break
    for cell in reversed(answers):
        if QUIZ.search(cell.source):
            cell.source = QUIZ.sub(lambda m: f'{m.group(1)}"{"bcda"["abcd".index(m.group(2))]}"',
                                   cell.source, count=1)
            break
    return nb


def released_exercise(source: Path) -> str:
    """The blank: exercises/NN-*.ipynb as released, or the release of SOURCE if absent."""
    released = EXERCISES / source.name
    if released.exists():
        return released.read_text(encoding="utf-8")
    return nbformat.writes(student_version(nbformat.read(source, as_version=4)))


def kind_texts(source: Path) -> dict[str, str]:
    right = source.read_text(encoding="utf-8")
    wrong = nbformat.writes(wrong_version(nbformat.reads(right, as_version=4)))
    return {"right": right, "wrong": wrong, "blank": released_exercise(source),
            "unreadable": UNREADABLE}


def generate_class(folder: Path, n: int, source: Path = SOURCE) -> Path:
    """n submissions ``studentNNN.ipynb`` in turn: right, wrong, blank and unreadable."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = list(kind_texts(source).values())
    for i in range(n):
        (folder / f"student{i:03d}.ipynb").write_text(texts[i % len(texts)], encoding="utf-8")
    return folder


def generate_kinds(folder: Path, source: Path, per_kind: int) -> dict[str, str]:
    """``<kind>NN.ipynb``, per_kind of each kind; returns {student: kind}."""
    folder.mkdir(parents=True, exist_ok=True)
    students = {}
    for kind, text in kind_texts(source).items():
        for i in range(per_kind):
            student = f"{kind}{i:02d}"
            (folder / f"{student}.ipynb").write_text(text, encoding="utf-8")
            students[student] = kind
    return students


def sane(scores: dict[str, tuple[float, float] | None], kinds: dict[str, str]) -> list[str]:
    """Problems with a class's scores ({student: (total, max) or None if not graded})."""
    problems = []
    for student, kind in kinds.items():
        got = scores.get(student)
        if kind == "unreadable":
            if got not in (None, "unreadable"):
                problems.append(f"{student}: graded {got}")
            continue
        if not isinstance(got, tuple):
            problems.append(f"{student}: not graded ({got})")
            continue
        total, most = got
        if (kind == "right" and total != most) or (kind == "blank" and total != 0) or (
                kind == "wrong" and not 0 < total < most):
            problems.append(f"{student}: {total:g}/{most:g}")
    return problems


# ---------------------------------------------------------------- our grader

def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_ours(source: Path, subs: Path, kinds: dict[str, str], tmp: Path,
               worker_counts=(1, 2)) -> dict:
    """{workers: {rate, cpu}}, plus the scores' problems; the reference run is cached first
    (its own workers are stopped before the clock starts) and shared by every run."""
    from reglab.grading import workers as grade_workers
    from reglab.grading.grade import Settings, cached_reference, grade, sha256
    from reglab.grading.merge import read_source

    n = len(kinds)
    reference = tmp / "reference"
    reference.mkdir(parents=True)
    cached_reference(read_source(source), sha256(source.read_bytes()),
                     Settings(seed=SEED, cell_timeout=CELL_TIMEOUT), reference)
    grade_workers.shutdown()
    result: dict = {"runs": {}}
    for workers in worker_counts:
        out = tmp / f"out-{workers}"
        shutil.copytree(reference, out)
        start, cpu = time.perf_counter(), children_cpu()
        entries = grade(source, subs, out, workers=workers, seed=SEED,
                        cell_timeout=CELL_TIMEOUT, progress=False)
        seconds = time.perf_counter() - start
        grade_workers.shutdown()  # its workers' and kernels' CPU time is counted from here
        result["runs"][workers] = {"rate": n / seconds, "seconds": seconds,
                                   "cpu": (children_cpu() - cpu) / n}
        scores = {e["student"]: ("unreadable" if e["status"] == "unreadable"
                                 else (e["total"], e["max"])) for e in entries}
        result["problems"] = sane(scores, kinds)
    return result


# ---------------------------------------------------------------- the kernel templates

STRESS_EXERCISES = ("04", "05", "06", "07", "08")
STRESS_KINDS = ("right", "wrong")
STRESS_TIMEOUT = 300.0  # a notebook's limit: a kernel that hangs is stopped after this


def submission_job(source: Path, text: str) -> tuple[dict, list[int]]:
    """The notebook the grader runs for a submission (SOURCE with its answers), and the
    indices of its graded cells."""
    from reglab.grading import merge

    source_nb = merge.read_source(source)
    answers, _ = merge.student_answers(nbformat.reads(text, as_version=4),
                                       merge.answer_ids(source_nb))
    graded = [i for i, _, _ in merge.graded_cells(source_nb)]
    return merge.merged_notebook(source_nb, answers), graded


def stress_templates(sources: list[Path], rounds: int, workers: int = 2) -> list[str]:
    """Grade the right and the wrong submission of each exercise through both kernel
    templates (:data:`reglab.grading.fork.PRELOADS`), ``rounds`` times over, on ``workers``
    workers; print what ran and return the problems: a report that stopped (a hang ends as
    a notebook timeout) or whose cells are not exactly those of its submission's first
    report (a plain kernel's)."""
    from concurrent.futures import ThreadPoolExecutor

    from reglab.grading import workers as grade_workers
    from reglab.grading.fork import PRELOADS
    from reglab.grading.grade import Settings, run_isolated

    settings = Settings(seed=SEED, cell_timeout=CELL_TIMEOUT, notebook_timeout=STRESS_TIMEOUT)
    jobs = {f"{source.name[:2]} {kind}": submission_job(source, kind_texts(source)[kind])
            for source in sources for kind in STRESS_KINDS}
    runs = [(name, flavour) for _ in range(rounds) for name in jobs for flavour in PRELOADS]
    start, load = time.perf_counter(), os.getloadavg()[0]
    with ThreadPoolExecutor(workers) as pool:
        reports = list(pool.map(lambda run: run_isolated(*jobs[run[0]], settings, run[1]),
                                runs))
    grade_workers.shutdown()
    problems, first = [], {}
    for (name, flavour), report in zip(runs, reports):
        if report.get("stopped"):
            problems.append(f"{name} ({flavour}): stopped ({report['stopped']})")
        if report["cells"] != first.setdefault(name, report)["cells"]:
            problems.append(f"{name} ({flavour}): cells differ from its first report")
    print(f"{len(runs)} kernels ({len(jobs)} submissions x {len(PRELOADS)} templates x "
          f"{rounds} rounds) in {time.perf_counter() - start:.0f} s on {workers} workers; "
          f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    for flavour in PRELOADS:
        mine = [r for (_, f), r in zip(runs, reports) if f == flavour]
        print(f"  {flavour:<10} {sum(r.get('seconds', 0) for r in mine) / len(mine):5.1f} s "
              f"per kernel, peak {max(r.get('peak_memory_mb') or 0 for r in mine)} MB")
    print(f"  {_problems(problems)}")
    return problems


# ---------------------------------------------------------------- real nbgrader

# nbgrader's defaults (a 30 s cell limit, 4 s for a cell's last outputs) cut the slowest
# cells short on a busy machine: raised, so that nbgrader runs every cell to its end, as ours
NBGRADER_CONFIG = """c = get_config()
c.CourseDirectory.course_id = "reglab-bench"
c.Execute.timeout = 600
c.Execute.iopub_timeout = 60
"""

NBGRADER_SCORES = """import json, sys
from nbgrader.api import Gradebook
with Gradebook("sqlite:///gradebook.db") as gb:
    scores = {}
    for sub in gb.assignment_submissions(sys.argv[1]):
        scores[sub.student_id] = [sub.score, sub.max_score]
print(json.dumps(scores))
"""


def nbgrader_python() -> Path | None:
    python = NBGRADER_VENV / "bin" / "python"
    return python if python.exists() else None


def nbgrader_env() -> dict[str, str]:
    """nbgrader's own venv first on PATH, its python3 kernelspec first on JUPYTER_PATH."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "JUPYTER_PATH", "REGLAB_GRADING")}
    env["PATH"] = f"{NBGRADER_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(NBGRADER_VENV)
    env["JUPYTER_PATH"] = str(NBGRADER_VENV / "share" / "jupyter")
    return env


def _nbgrader(args: list[str], course: Path, log: Path) -> int:
    with open(log, "a") as handle:
        return subprocess.run([str(NBGRADER_VENV / "bin" / "nbgrader"), *args], cwd=course,
                              env=nbgrader_env(), stdout=handle, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL).returncode


def bench_nbgrader(source: Path, subs: Path, kinds: dict[str, str], tmp: Path) -> dict:
    """nbgrader autograde of the same submissions: its rate, CPU per submission, scores."""
    python = nbgrader_python()
    if python is None:
        return {"error": f"no {NBGRADER_VENV.name} (make nbgrader-venv)"}
    assignment = "ex" + source.name[:2]
    course = tmp / "course"
    (course / "source" / assignment).mkdir(parents=True)
    shutil.copy(source, course / "source" / assignment / source.name)
    (course / "nbgrader_config.py").write_text(NBGRADER_CONFIG)
    log = tmp / "nbgrader.log"
    if _nbgrader(["generate_assignment", assignment, "--force"], course, log):
        return {"error": f"generate_assignment failed: {log.read_text()[-300:]}"}
    for student in kinds:
        folder = course / "submitted" / student / assignment
        folder.mkdir(parents=True)
        shutil.copy(subs / f"{student}.ipynb", folder / source.name)
    start, cpu = time.perf_counter(), children_cpu()
    code = _nbgrader(["autograde", assignment], course, log)
    seconds = time.perf_counter() - start
    cpu = (children_cpu() - cpu) / len(kinds)
    answer = subprocess.run([str(python), "-c", NBGRADER_SCORES, assignment], cwd=course,
                            env=nbgrader_env(), capture_output=True, text=True)
    try:
        raw = json.loads(answer.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"no gradebook scores: {answer.stderr[-300:]}"}
    graded = {s for s in kinds if (course / "autograded" / s / assignment).is_dir()}
    scores = {s: (float(t), float(m)) for s, (t, m) in raw.items() if s in graded}
    problems = sane(scores, kinds)
    timeouts = log.read_text(errors="replace").count("Timeout waiting for execute reply")
    if timeouts:
        problems.append(f"{timeouts} cell(s) timed out")
    return {"rate": len(kinds) / seconds, "seconds": seconds, "cpu": cpu,
            "problems": problems, "exit_code": code,
            "cells": cell_seconds(course / "autograded", source.name)}


def cell_seconds(folder: Path, name: str) -> dict:
    """Mean seconds per graded notebook in its cells (nbclient's timing metadata), and in
    its slowest cell (with that cell's first line)."""
    from datetime import datetime

    def stamp(text: str) -> float:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    totals, slowest = [], {}
    for path in sorted(folder.glob(f"*/*/{name}")):
        nb = nbformat.read(path, as_version=4)
        total = 0.0
        for index, cell in enumerate(nb.cells):
            timing = cell.get("metadata", {}).get("execution", {})
            if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
                took = stamp(timing["shell.execute_reply"]) - stamp(timing["iopub.execute_input"])
                total += took
                line = cell.source.strip().splitlines()[0][:40] if cell.source.strip() else ""
                slowest.setdefault(f"cell {index + 1}: {line}", []).append(took)
        totals.append(total)
    if not totals:
        return {}
    line, times = max(slowest.items(), key=lambda item: sum(item[1]))
    return {"in_cells": sum(totals) / len(totals), "slowest": sum(times) / len(totals),
            "slowest_cell": line}


# ---------------------------------------------------------------- one exercise, all of them

def bench_exercise(source: Path, per_kind: int, nbgrader: bool) -> dict:
    """Everything for one exercise (run it in a fresh process for a meaningful peak RSS)."""
    per_kind = per_kind_for(source, per_kind)
    with tempfile.TemporaryDirectory(prefix="reglab-bench-") as tmp:
        tmp = Path(tmp)
        subs = tmp / "subs"
        kinds = generate_kinds(subs, source, per_kind)
        result = {"exercise": source.name, "submissions": len(kinds), "per_kind": per_kind,
                  "ours": bench_ours(source, subs, kinds, tmp / "ours")}
        # ru_maxrss of the children: the largest grading process that has ended (a worker,
        # its kernel template or a kernel; kernels are the template's children), in KB
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if nbgrader:
            (tmp / "nbgrader").mkdir()
            result["nbgrader"] = bench_nbgrader(source, subs, kinds, tmp / "nbgrader")
    return result


def solutions(only: list[str] | None = None) -> list[Path]:
    found = sorted(SOLUTIONS.glob("[0-9][0-9]-*.ipynb"))
    return [p for p in found if not only or p.name[:2] in only]


def run_exercise(source: Path, per_kind: int, nbgrader: bool) -> dict:
    """bench_exercise in a fresh process; its result, or {"error": ...}."""
    command = [sys.executable, "-m", "reglab.bench_grade", "--one", str(source),
               "--per-kind", str(per_kind)] + ([] if nbgrader else ["--no-nbgrader"])
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                          stdin=subprocess.DEVNULL)
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (ValueError, IndexError):
        return {"exercise": source.name, "error": (done.stderr or done.stdout)[-400:]}


def _problems(problems: list[str]) -> str:
    if not problems:
        return "ok"
    return f"BAD ({len(problems)}: {'; '.join(problems[:2])})"


def bench_all(per_kind: int = 4, only: list[str] | None = None,
              nbgrader: bool = True) -> list[dict]:
    """Print one row per exercise, then nbgrader's rows beside ours; return the results."""
    exercises = solutions(only)
    load = os.getloadavg()
    print(f"\ngrading a generated class per exercise: right/wrong/blank/unreadable, "
          f"{per_kind} of each ({max(1, per_kind // 2)} for TensorFlow exercises); "
          f"{os.cpu_count()} CPUs, load average {load[0]:.1f} at the start", flush=True)
    print(f"{'exercise':<34} {'subs':>4} {'1 worker/s':>10} {'2 workers/s':>11} "
          f"{'CPU s/sub':>9} {'peak RSS MB':>11}  scores", flush=True)
    results, started = [], time.perf_counter()
    for source in exercises:
        result = run_exercise(source, per_kind, nbgrader and source.name[:2]
                              in NBGRADER_EXERCISES)
        results.append(result)
        if "error" in result:
            print(f"{source.name:<34} FAILED: {result['error']}", flush=True)
            continue
        runs = result["ours"]["runs"]
        one, two = runs.get("1", {}), runs.get("2", {})
        print(f"{source.name:<34} {result['submissions']:>4} {one.get('rate', 0):>10.2f} "
              f"{two.get('rate', 0):>11.2f} {two.get('cpu', one.get('cpu', 0)):>9.2f} "
              f"{result['peak_rss_mb']:>11.0f}  {_problems(result['ours']['problems'])}",
              flush=True)
    compared = [r for r in results if "nbgrader" in r]
    if compared:
        print("\nnbgrader 0.9.6 (nbgrader autograde, one process) on the same submissions;\n"
              "ratio: ours with 2 workers / nbgrader, submissions/s; CPU ratio: nbgrader's CPU s"
              " per submission / ours\n(ours keeps 2 cores busy, nbgrader 1: on an idle 2-core "
              "machine the rate ratio is about 2 x the CPU ratio)", flush=True)
        print(f"{'exercise':<34} {'subs':>4} {'nbgrader/s':>10} {'CPU s/sub':>9} "
              f"{'ours/s':>7} {'CPU s/sub':>9} {'ratio':>6} {'CPU ratio':>9}  nbgrader's scores",
              flush=True)
        for result in compared:
            theirs, ours = result["nbgrader"], result["ours"]["runs"].get("2", {})
            if "error" in theirs:
                print(f"{result['exercise']:<34} nbgrader FAILED: {theirs['error']}", flush=True)
                continue
            print(f"{result['exercise']:<34} {result['submissions']:>4} {theirs['rate']:>10.2f} "
                  f"{theirs['cpu']:>9.2f} {ours.get('rate', 0):>7.2f} {ours.get('cpu', 0):>9.2f} "
                  f"{ours.get('rate', 0) / theirs['rate']:>5.1f}x "
                  f"{theirs['cpu'] / ours['cpu'] if ours.get('cpu') else 0:>8.1f}x  "
                  f"{_problems(theirs['problems'])}", flush=True)
            cells = theirs.get("cells")
            if cells:
                print(f"{'':<34} nbgrader per notebook: {cells['in_cells']:.1f} s in cells, "
                      f"{cells['slowest']:.1f} s in its slowest ({cells['slowest_cell']})",
                      flush=True)
    load = os.getloadavg()
    print(f"grading bench: {time.perf_counter() - started:.0f} s; load average {load[0]:.1f} "
          f"at the end", flush=True)
    return results


def failed(results: list[dict]) -> list[dict]:
    """The exercises whose bench failed or whose scores (ours or nbgrader's) are not sane."""
    return [r for r in results if "error" in r or r["ours"]["problems"]
            or "error" in r.get("nbgrader", {}) or r.get("nbgrader", {}).get("problems")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reglab.bench_grade")
    parser.add_argument("--per-kind", type=int, default=4,
                        help="submissions of each kind (halved for TensorFlow exercises)")
    parser.add_argument("--exercises", default="",
                        help="comma-separated numbers, e.g. 01,04 (default: all)")
    parser.add_argument("--no-nbgrader", action="store_true",
                        help="skip real nbgrader (01 and 04)")
    parser.add_argument("--stress-templates", type=int, metavar="ROUNDS",
                        help="instead: grade the right and wrong submissions of exercises "
                             f"{STRESS_EXERCISES[0]}-{STRESS_EXERCISES[-1]} (or --exercises) "
                             "ROUNDS times through each kernel template; compare the reports")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # one exercise, JSON on stdout
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(bench_exercise(Path(args.one), args.per_kind, not args.no_nbgrader)))
        return 0
    only = [e.strip().zfill(2) for e in args.exercises.split(",") if e.strip()] or None
    if args.stress_templates:
        sources = solutions(only or list(STRESS_EXERCISES))
        return 1 if stress_templates(sources, args.stress_templates) else 0
    return 1 if failed(bench_all(args.per_kind, only, not args.no_nbgrader)) else 0


if __name__ == "__main__":
    sys.exit(main())
