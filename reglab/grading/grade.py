"""``reglab grade SOURCE SUBMISSIONS --out DIR``: grade a class of submitted notebooks.

Per submission (see :mod:`reglab.grading.merge`, :mod:`reglab.grading.run`,
:mod:`reglab.grading.judge`): take only the answer cells, put them into a clean copy of SOURCE
whose tests record instead of compare, run that in its own process and kernel under time and
memory limits, and judge the recordings against the reference solution's in this process.

Outputs in DIR: ``grades.csv`` (one row per student), ``results.jsonl`` (one JSON object per
submission, appended as each finishes, so a killed run resumes where it stopped) and
``feedback/<student>.html``. A re-run skips submissions whose key (grader version, SOURCE,
submission and settings) is unchanged; ``force`` regrades all.

Not a sandbox: a submission runs as the grader's user. Grade untrusted work in a container
that holds neither the course files nor a network.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import secrets
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from reglab.grading import merge
from reglab.grading import workers as grade_workers
from reglab.grading.fork import flavour_for
from reglab.grading.judge import feedback_html, judge_cell
from reglab.release import write_atomically

GRADER_VERSION = "1"
GRADER_ERROR = "grader-error"
STATUSES = ("graded", "timeout", "crashed", "memory", "unreadable", GRADER_ERROR)
SIGNALS = {-11: "segmentation fault", -9: "killed", -6: "aborted", -7: "bus error"}
OUT_OF_MEMORY_ERRORS = ("ResourceExhaustedError",)  # TensorFlow's, for a refused allocation


class GradeError(Exception):
    """The grading run cannot start (bad SOURCE, reference fails, bad arguments)."""


@dataclass(frozen=True)
class Settings:
    seed: int
    cell_timeout: float = 60.0
    notebook_timeout: float = 600.0
    memory_mb: int = 4096
    max_megabytes: float = 20.0


# ---------------------------------------------------------------- running one notebook

def isolated_job(notebook, graded: list[int], settings: Settings, flavour: str) -> dict:
    """The job a worker runs (:mod:`reglab.grading.run`); ``flavour``: of the kernel template,
    :func:`reglab.grading.fork.flavour_for` of SOURCE."""
    return {"notebook": notebook, "graded": graded, "seed": settings.seed,
            "cell_timeout": settings.cell_timeout, "memory_mb": settings.memory_mb,
            "notebook_timeout": settings.notebook_timeout, "flavour": flavour}


def run_isolated(notebook, graded: list[int], settings: Settings, flavour: str) -> dict:
    """Run a merged notebook in a fresh kernel, driven by a reused worker process."""
    return grade_workers.run_job(isolated_job(notebook, graded, settings, flavour),
                                 deadline=settings.notebook_timeout + 60)


# ---------------------------------------------------------------- the reference

def reference_report(source_nb, settings: Settings) -> dict:
    """Run SOURCE's own answers the same way; every graded cell must record cleanly."""
    graded = merge.graded_cells(source_nb)
    nb = merge.merged_notebook(source_nb, merge.reference_answers(source_nb))
    report = run_isolated(nb, [i for i, _, _ in graded], settings, flavour_for(source_nb))
    for index, grade_id, _ in graded:
        cell = report.get("cells", {}).get(str(index))
        if report.get("stopped") or not cell or cell["error"] or not cell["records"] or any(
                "error" in r for r in cell["records"]):
            raise GradeError(f"the reference solution does not record cleanly in graded cell "
                             f"{grade_id!r} (stopped: {report.get('stopped')}; cell: {cell})")
    return report


def cached_reference(source_nb, source_sha: str, settings: Settings, out: Path) -> dict:
    key = sha256(json.dumps([GRADER_VERSION, source_sha, asdict(settings)]).encode())
    path = out / f".reference-{key[:20]}.json"
    if path.exists():
        return json.loads(path.read_text())
    report = reference_report(source_nb, settings)
    write_atomically(path, json.dumps(report))
    return report


# ---------------------------------------------------------------- one submission

def grade_task(task: dict) -> dict:
    """Grade one submission (a plain dict in, a plain dict out: local pool or Dask)."""
    settings = Settings(**task["settings"])
    source_nb = nbformat.reads(task["source_text"], as_version=4)
    graded = merge.graded_cells(source_nb)
    base = {"student": task["student"], "key": task["key"],
            "max": sum(p for _, _, p in graded)}
    submission, problem = parse_submission(task["data"], settings.max_megabytes)
    if problem:
        return {**base, **unreadable(graded, problem)}
    try:
        answers, notes = merge.student_answers(submission, merge.answer_ids(source_nb))
    except Exception:  # cells or metadata of the wrong types
        return {**base, **unreadable(graded, "the notebook's cells are malformed")}
    report = run_isolated(merge.merged_notebook(source_nb, answers),
                          [i for i, _, _ in graded], settings, flavour_for(source_nb))
    return {**base, **judged(report, task, graded, answers, notes, settings)}


def parse_submission(data: bytes, max_megabytes: float):
    """(notebook, None) or (None, plain reason it cannot be read)."""
    if len(data) > max_megabytes * 2**20:
        return None, (f"the file is {len(data) / 2**20:.1f} MB, more than the "
                      f"{max_megabytes:g} MB limit")
    if not data.strip():
        return None, "the file is empty"
    try:
        nb = nbformat.reads(data.decode("utf-8"), as_version=4)
    except Exception:  # nbformat raises many unrelated types for broken files
        return None, "the file is not a readable Jupyter notebook (broken or not JSON)"
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return None, "the file is not a Jupyter notebook (it has no list of cells)"
    return nb, None


def unreadable(graded, reason: str) -> dict:
    questions = [{"grade_id": g, "points": 0.0, "max": p, "message": "not graded: " + reason}
                 for _, g, p in graded]
    return {"status": "unreadable", "reason": reason, "total": 0.0, "questions": questions,
            "seconds": 0.0}


def judged(report, task, graded, answers, notes, settings: Settings) -> dict:
    ref_cells = task["reference"]["cells"]
    hidden = set(task["hidden_names"])
    questions = []
    for index, grade_id, points in graded:
        earned, message = judge_cell(ref_cells[str(index)], report["cells"].get(str(index)),
                                     points, hidden, task["visible_text"])
        questions.append({"grade_id": grade_id, "points": earned, "max": points,
                          "message": message})
    status, reason = run_status(report, settings)
    if not answers:
        notes = {"": "no answer cells were found (was the notebook's metadata removed?); "
                     "every question counts as unanswered"}
    reason = "; ".join([r for r in [reason] if r] + list(notes.values()))
    return {"status": status, "reason": reason, "questions": questions,
            "total": sum(q["points"] for q in questions),
            "seconds": round(report.get("seconds", 0.0), 2)}


def run_status(report: dict, settings: Settings) -> tuple[str, str]:
    """The submission's status and the reason a student reads; it names the cell stopped."""
    stopped = report.get("stopped")
    cells = report.get("cells", {})
    limit = f"ran longer than {settings.cell_timeout:g} s"
    memory = f"ran out of memory (limit {settings.memory_mb} MB)"
    after = "; questions after it got no points"
    if stopped == "notebook-timeout":
        return "timeout", (f"the notebook ran longer than {settings.notebook_timeout:g} s and "
                           "was stopped; questions after that point got no points")
    if stopped == "cell-timeout":
        where = cell_words(cells, report.get("stopped_cell"))
        return "timeout", f"{where} {limit} and was stopped{after}"
    if stopped == "memory":
        where = cell_words(cells, report.get("stopped_cell"))
        return "memory", f"{where} {memory} and was stopped{after}"
    if stopped:
        code = report.get("exit_code")
        how = SIGNALS.get(code, f"exit code {code}") if code is not None else "unknown cause"
        return "crashed", (f"the Python kernel stopped ({how}); questions after that point "
                           "got no points")
    if report.get("timed_out_cells"):
        where = cell_words(cells, report["timed_out_cells"][0])
        return "timeout", f"{where} {limit} and was interrupted"
    for index, cell in sorted(cells.items(), key=lambda item: int(item[0])):
        name = (cell.get("error") or {}).get("ename", "")
        if name.endswith("MemoryError") or name in OUT_OF_MEMORY_ERRORS:
            return "memory", f"{cell_words(cells, int(index))} {memory}"
    return "graded", ""


def cell_words(cells: dict, index: int | None) -> str:
    """'cell 12 (question q3-fit)': 1-based, every cell of the notebook counted."""
    if index is None or index < 0:
        return "a cell"
    grade_id = (cells.get(str(index)) or {}).get("grade_id")
    return f"cell {index + 1}" + (f" (question {grade_id})" if grade_id else "")


# ---------------------------------------------------------------- a class

def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def find_submissions(folder: Path) -> dict[str, Path | None]:
    """{student: notebook path}: a flat folder of .ipynb files, or one folder per student."""
    if not folder.is_dir():
        raise GradeError(f"{folder} is not a folder of submissions")
    found: dict[str, Path | None] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix == ".ipynb":
            found[entry.stem] = entry
        elif entry.is_dir():
            notebooks = sorted(entry.glob("*.ipynb"))
            found[entry.name] = notebooks[0] if notebooks else None
    return found


def make_tasks(source: Path, folder: Path, settings: Settings) -> list[dict]:
    source_text = source.read_text(encoding="utf-8")
    source_sha = sha256(source_text.encode())
    tasks = []
    for student, path in find_submissions(folder).items():
        data = path.read_bytes() if path else b""
        key = sha256(json.dumps([GRADER_VERSION, source_sha, sha256(data),
                                 asdict(settings)]).encode())
        tasks.append({"student": student, "key": key, "data": data,
                      "settings": asdict(settings), "source_text": source_text})
    return tasks


def load_results(path: Path) -> dict[str, dict]:
    """{student: latest result} from results.jsonl; a torn last line is ignored."""
    results = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                results[entry["student"]] = entry
            except (ValueError, KeyError, TypeError):
                continue
    return results


def append_result(path: Path, entry: dict) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def safe_name(student: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", student)[:100] or "_"


def grades_csv(entries: list[dict], grade_ids: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", *grade_ids, "total", "max", "status", "reason"])
    for e in entries:
        points = {q["grade_id"]: q["points"] for q in e["questions"]}
        writer.writerow([e["student"], *(f"{points.get(g, 0):g}" for g in grade_ids),
                         f"{e['total']:g}", f"{e['max']:g}", e["status"], e["reason"]])
    return buffer.getvalue()


def write_reports(out: Path, entries: list[dict], grade_ids: list[str]) -> None:
    write_atomically(out / "grades.csv", grades_csv(entries, grade_ids))
    for entry in entries:
        write_feedback(out, entry)


def write_feedback(out: Path, entry: dict) -> None:
    write_atomically(out / "feedback" / f"{safe_name(entry['student'])}.html",
                     feedback_html(entry, entry["questions"]))


def choose_seed(out: Path, seed: int | None) -> int:
    """The seed for hidden inputs: given, or picked once per output folder and kept."""
    path = out / ".seed"
    if seed is None:
        if path.exists():
            return int(path.read_text())
        seed = secrets.randbelow(2**31 - 1) + 1
    write_atomically(path, f"{seed}\n")
    return seed


def run_tasks(tasks: list[dict], workers: int, dask_address: str | None):
    """Yield results as they finish, from a local pool or a Dask cluster; a task that fails
    in the grader itself (not in the student's kernel) yields a ``grader-error`` entry."""
    if not tasks:
        return
    if dask_address:
        from distributed import Client, as_completed as dask_completed

        with Client(dask_address) as client:
            futures = client.map(grade_task, tasks, pure=False)
            owner = {f.key: t for f, t in zip(futures, tasks)}
            for future in dask_completed(futures):
                entry = _result_or_error(future, owner[future.key])
                future.release()  # else a lost worker's results, already written, are re-run
                yield entry
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:  # each task drives its own kernel
        owner = {pool.submit(grade_task, t): t for t in tasks}
        for future in as_completed(owner):
            yield _result_or_error(future, owner[future])


def _retry(task: dict):
    """A finished future for one more attempt at a task that failed inside the grader."""
    from concurrent.futures import Future

    future = Future()
    try:
        future.set_result(grade_task(task))
    except Exception as err:
        future.set_exception(err)
    return future


def _result_or_error(future, task: dict) -> dict:
    try:
        return future.result()
    except Exception as err:  # a grader bug or a lost Dask worker: retried on the next run
        detail = f"{type(err).__name__}: {err}"[:200]
        return {"student": task["student"], "key": task["key"], "status": GRADER_ERROR,
                "reason": f"the grader itself failed ({detail}); run it again",
                "questions": [], "total": 0.0, "max": 0.0, "seconds": 0.0}


def grade(source: Path, submissions: Path, out: Path, *, workers: int | None = None,
          seed: int | None = None, cell_timeout: float = 60.0, notebook_timeout: float = 600.0,
          memory_mb: int = 4096, max_megabytes: float = 20.0, force: bool = False,
          dask_address: str | None = None, progress: bool = True) -> list[dict]:
    """Grade every submission; return the entries in grades.csv order."""
    source, submissions, out = Path(source).resolve(), Path(submissions), Path(out)
    try:
        source_nb = merge.read_source(source)
    except Exception as err:
        raise GradeError(f"{source}: not a readable notebook ({err})") from None
    graded = merge.graded_cells(source_nb)
    if not graded:
        raise GradeError(f"{source} has no graded cells")
    out.mkdir(parents=True, exist_ok=True)
    settings = Settings(choose_seed(out, seed), cell_timeout, notebook_timeout, memory_mb,
                        max_megabytes)
    tasks = make_tasks(source, submissions, settings)
    results_path = out / "results.jsonl"
    done = {} if force else load_results(results_path)
    todo = [t for t in tasks if force or needs_grading(done.get(t["student"]), t["key"])]
    if todo:
        reference = cached_reference(source_nb, sha256(tasks[0]["source_text"].encode()),
                                     settings, out)
        shared = {"reference": reference, "hidden_names": hidden_names(source_nb, reference),
                  "visible_text": merge.visible_text(source_nb)}
        todo = [{**t, **shared} for t in todo]
    grade_ids = [g for _, g, _ in graded]
    for entry in _with_progress(run_tasks(todo, workers or os.cpu_count() or 1, dask_address),
                                len(todo), progress):
        done[entry["student"]] = entry
        append_result(results_path, entry)
        write_feedback(out, entry)
    for task in [t for t in todo if done[t["student"]]["status"] == GRADER_ERROR]:
        entry = _result_or_error(_retry(task), task)  # once more, on its own, in this process
        done[entry["student"]] = entry
        append_result(results_path, entry)
        write_feedback(out, entry)
    entries = [done[t["student"]] for t in tasks]
    write_reports(out, entries, grade_ids)
    write_atomically(results_path, "".join(json.dumps(e) + "\n" for e in entries))
    return entries


def needs_grading(entry: dict | None, key: str) -> bool:
    return not entry or entry.get("key") != key or entry.get("status") == GRADER_ERROR


def hidden_names(source_nb, reference: dict) -> list[str]:
    visible = merge.visible_check_names(source_nb)
    return sorted({r["name"] for c in reference["cells"].values() for r in c["records"]
                   if r["name"] not in visible})


def _with_progress(results, total: int, show: bool):
    if not show or not total:
        yield from results
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="submission", file=sys.stderr) as bar:
        for entry in results:
            bar.set_postfix_str(f"{entry['student']}: {entry['status']}", refresh=False)
            bar.update()
            yield entry
