"""``reglab gradebook GRADES_DIR... --out term.csv``: one term's gradebook from the output
folders of ``reglab grade``.

Each GRADES_DIR is one assignment: the folder ``reglab grade --out`` wrote, holding
``grades.csv`` (read for the points) and ``results.jsonl`` (read to check that ``grades.csv``
is the finished state of the run). The term file has one row per student and one column per
assignment.

**Assignment names.** By default the folder's name (``grades/ex01/`` -> ``ex01``): the
grader records neither SOURCE's path nor its name in ``grades.csv`` or ``results.jsonl``, so
the folder is the only name there is. ``--assignment-names`` gives one name per folder, in
order. Names must be non-empty and unique, ignoring case and surrounding spaces (Moodle trims
headers and an LMS column is matched by its name), and must not be one of the format's own
column names.

**Points.** A cell holds the assignment's ``total`` from ``grades.csv``. A submission the
grader could not run to the end (status ``timeout``, ``crashed``, ``memory``) or could not read
(``unreadable``) keeps the points ``grade.py`` gave it: questions judged before the stop count,
an unreadable file scores 0. The plain format names such statuses in its ``notes`` column; in
the LMS formats they are listed on stderr. A row with status ``grader-error`` has no grade at
all (the grader failed, not the student): the gradebook refuses it; run ``reglab grade`` again,
which retries exactly those.

**Missing work.** A student absent from an assignment's ``grades.csv`` keeps their row. In the
plain format the cell says ``missing``; it counts 0 in ``total`` while ``max`` counts every
assignment. In the LMS formats the cell is empty (there is no grade to give) and every missing
cell is listed on stderr, because neither LMS reads an empty cell as 0, and neither reliably
reads it as "leave as is": Canvas skips it only where it has no grade either, and where it has
one, the empty cell removes it (its import review highlights the removal; see
``no_change_to_value?`` in ``lib/gradebook_importer.rb``); Moodle imports an empty cell as "no
grade" (``grade/import/csv/classes/load_data.php``), which clears a grade already entered in
the mapped item. So check those students in the LMS before confirming the import, and enter a
0 or an excuse there if that is what you decide.

**Student ids.** The id is what ``reglab grade`` took from the submission's file or folder
name (``ada.ipynb``, ``ada/``). Ids are compared after Unicode NFC normalisation, with
surrounding whitespace removed and case folded, so ``"Ana"`` and ``" ana"`` are one student:

- *across* assignments they are merged into one row, written with the spelling of the first
  folder on the command line (stripped), and every merge is listed on stderr (which
  spellings, in which folders). The case of a file name is chosen by the student when saving
  or by the download tool, not by the course; the LMS logins these ids stand for are
  case-insensitive (Canvas logins; Moodle forces usernames to lower case), so two students
  whose ids differ only in case cannot both exist there. Splitting them would give one
  student two half-empty rows and a "missing" they did not earn.
- *within* one assignment the gradebook refuses (exit 2): two rows for one student mean two
  grades, and choosing either would silently drop the other. Rename or remove one submission
  and grade again.

**Malformed input** is never joined in part. Every folder is read and checked first (a
missing or undecodable ``grades.csv``, garbled CSV, a header without ``student ... total, max,
status, reason``, a row of the wrong length, an empty id, non-numeric or non-finite points, a
``max`` that differs between rows, a total outside ``0..max``, an unknown status, duplicate
rows, a ``results.jsonl`` that disagrees with ``grades.csv``, duplicate assignment names), each
problem becomes one line naming the folder and the line, and if there is any, nothing is
written and the command exits 2. The term file is written atomically, so an existing one is
either replaced whole or left as it was.

Formats (``--format``):

``plain`` (default)::

    student,ex01,ex02,total,max,notes
    ada,10,7.5,17.5,20,
    bob,4,missing,4,20,ex02: missing
    cy,2.5,8,10.5,20,ex01: timeout

``canvas``: Canvas's gradebook import, as its importer reads it (``lib/gradebook_importer.rb``
in instructure/canvas-lms: the header must start with a column containing ``Student`` and one
containing ``ID``; ``SIS User ID`` then ``SIS Login ID`` are recognised in columns 3 and 4; the
last student column must be ``Section``; a row whose first cell contains ``Points Possible``
sets the assignments' points; every further column is an assignment, matched by title, or by
id when the title ends in `` (<digits>)``; an empty grade cell is a change only where
Canvas has a grade, which it then removes)::

    Student,ID,SIS User ID,SIS Login ID,Section,ex01,ex02
    Points Possible,,,,,10,10
    ,,,ada,,10,7.5
    ,,,bob,,4,

Only ``SIS Login ID`` and the points are filled. Canvas finds a row's student by ``ID`` (its
internal numeric user id), then ``SIS User ID`` (the institution's student number), then ``SIS
Login ID`` (the login), then the name in ``Student``. Our id is a file name, which courses
normally ask students to make their login, so it goes in ``SIS Login ID``; we know neither a
Canvas id, nor a student number, nor a name, nor a section, and leave those empty rather than
guess. If your file names are student numbers, move the column's values to ``SIS User ID``
before importing. Canvas matches the login exactly and lists rows it cannot match as unknown
students, whom it does not import. The term total is not written: Canvas computes its own,
and an extra column would become a new assignment. Assignment names containing a column name
Canvas treats as read-only (``Final Grade``, ``Current Score``, ...) are refused, since Canvas
would silently drop that column.

``moodle``: Moodle's "Import grades from CSV" (``grade/import/csv``): a header row, then one
row per student; the column identifying the user and the grade item each column goes to are
chosen in Moodle's import form ("Map from" / "Map to": username, email address, ID number or
user id; "Grade item mappings"), so the header names are free::

    Student id,ex01,ex02
    ada,10,7.5
    bob,4,

The id column comes first because Moodle preselects the first column under "Map from". No
total and no maximum: Moodle computes the course total and a grade item's maximum is set in
Moodle. Moodle aborts the whole import if one row's user is not found, and by default rejects
grades above 100.
"""

from __future__ import annotations

import csv
import io
import math
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from reglab.grading.grade import GRADER_ERROR, STATUSES, load_results
from reglab.release import write_atomically

FORMATS = ("plain", "canvas", "moodle")
GRADES = "grades.csv"
RESULTS = "results.jsonl"
TAIL = ["total", "max", "status", "reason"]  # the last columns grades_csv writes
MISSING = "missing"

CANVAS_HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
CANVAS_POINTS_POSSIBLE = "Points Possible"
# Canvas drops any column whose header contains one of these (read-only, computed by Canvas).
CANVAS_READ_ONLY = ("Current Score", "Current Points", "Current Grade", "Final Score",
                    "Final Points", "Final Grade", "Override Score", "Override Grade",
                    "Override Status")
MOODLE_ID = "Student id"
PLAIN_HEAD, PLAIN_TAIL = ["student"], ["total", "max", "notes"]


class GradebookError(Exception):
    """Unusable input; ``problems`` holds one line per problem, each naming where it is."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Entry:
    student: str  # as written in grades.csv
    total: float
    status: str
    line: int


@dataclass
class Assignment:
    folder: Path
    name: str
    max: float = 0.0
    entries: dict[str, Entry] = field(default_factory=dict)  # normalised id -> entry


@dataclass
class Gradebook:
    assignments: list[Assignment]
    students: list[tuple[str, str]]  # (normalised id, written id), in output order
    warnings: list[str]

    def cell(self, key: str, index: int) -> Entry | None:
        return self.assignments[index].entries.get(key)

    def missing(self) -> dict[str, list[str]]:
        """{assignment name: written ids of students with no row in it}."""
        found = {}
        for a in self.assignments:
            names = [shown for key, shown in self.students if key not in a.entries]
            if names:
                found[a.name] = names
        return found

    def not_graded(self) -> dict[str, list[str]]:
        """{assignment name: "id (status)" for rows counted with a status other than graded}."""
        found = {}
        for i, a in enumerate(self.assignments):
            names = [f"{shown} ({e.status})" for key, shown in self.students
                     if (e := self.cell(key, i)) and e.status != "graded"]
            if names:
                found[a.name] = names
        return found


def normalise(student: str) -> str:
    """The key two ids are compared by: NFC, surrounding whitespace removed, case folded."""
    return unicodedata.normalize("NFC", student).strip().casefold()


def points(x: float) -> str:
    """A number as an LMS reads it: no exponent, at most 6 decimals, no trailing zeros."""
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


# ---------------------------------------------------------------- reading one folder

def read_folder(folder: Path, name: str) -> tuple[Assignment, list[str]]:
    """The assignment in one ``reglab grade`` output folder, and the problems found in it."""
    assignment = Assignment(folder=folder, name=name)
    if not folder.is_dir():
        return assignment, [f"{folder}: not a folder"]
    path = folder / GRADES
    if not path.is_file():
        return assignment, [f"{path}: not found (is {folder} an output folder of "
                            "`reglab grade`?)"]
    try:
        data = path.read_bytes()
    except OSError as err:
        return assignment, [f"{path}: cannot be read ({err.strerror or err})"]
    data = data.removeprefix(b"\xef\xbb\xbf")  # the byte-order mark a spreadsheet may add
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        return assignment, [f"{path}: line {line}: not UTF-8 text; the file is garbled or "
                            "not a grades.csv"]
    problems = parse_grades(path, text, assignment)
    if not problems:
        problems = check_results(folder, assignment)
    return assignment, problems


def parse_grades(path: Path, text: str, assignment: Assignment) -> list[str]:
    """Fill ``assignment`` from the text of grades.csv; return the problems (one per line)."""
    if "\0" in text:
        line = text[:text.index("\0")].count("\n") + 1
        return [f"{path}: line {line}: a NUL byte; the file is garbled (binary, not CSV)"]
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows = []
    try:
        start = 1
        for row in reader:
            rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as err:
        return [f"{path}: line {reader.line_num}: garbled CSV ({err})"]
    if not rows:
        return [f"{path}: empty (no header line)"]
    _, header = rows[0]
    if len(header) < 1 + len(TAIL) or header[0] != "student" or header[-len(TAIL):] != TAIL:
        return [f"{path}: line 1: the header must be student, <question ids...>, "
                f"{', '.join(TAIL)} (as `reglab grade` writes it); found "
                f"{', '.join(header) or 'an empty line'}"]
    numeric = header[1:-len(TAIL)] + ["total", "max"]
    problems, seen, first_max = [], {}, None
    for line, row in rows[1:]:
        if not row:  # a blank line
            continue
        if len(row) != len(header):
            problems.append(f"{path}: line {line}: {len(row)} fields, but the header has "
                            f"{len(header)}")
            continue
        values = dict(zip(header, row))  # question ids are unique in a SOURCE notebook
        student = values["student"]
        if not student.strip():
            problems.append(f"{path}: line {line}: the student id is empty")
            continue
        numbers, bad = read_numbers(values, numeric)
        if bad:
            problems.append(f"{path}: line {line}: {bad} is {values[bad]!r}, not a number of "
                            "points")
            continue
        status, total, top = values["status"], numbers["total"], numbers["max"]
        if status == GRADER_ERROR:
            problems.append(f"{path}: line {line}: {student!r} has no grade (status "
                            f"{GRADER_ERROR}: the grader failed); run `reglab grade` again, "
                            "it retries these")
            continue
        if status not in STATUSES:
            problems.append(f"{path}: line {line}: unknown status {status!r} (expected one of "
                            f"{', '.join(s for s in STATUSES if s != GRADER_ERROR)})")
            continue
        if first_max is None:
            first_max = (top, line)
        elif top != first_max[0]:
            problems.append(f"{path}: line {line}: max is {points(top)}, but "
                            f"{points(first_max[0])} on line {first_max[1]}; one assignment "
                            "has one maximum")
            continue
        if not 0 <= total <= top:
            problems.append(f"{path}: line {line}: total {points(total)} is outside 0.."
                            f"{points(top)}")
            continue
        key = normalise(student)
        if key in seen:
            other = seen[key]
            who = (f"two rows for {student!r}" if other.student == student else
                   f"{other.student!r} and {student!r} differ only in case or surrounding "
                   "spaces, so they are one student")
            problems.append(f"{path}: lines {other.line} and {line}: {who} with two grades; "
                            "rename or remove one submission and grade again")
            continue
        seen[key] = Entry(student, total, status, line)
    if not problems and not seen:
        problems.append(f"{path}: no student rows (was the submissions folder empty?)")
    if not problems:
        assignment.max = first_max[0]
        assignment.entries = seen
    return problems


def read_numbers(values: dict[str, str], columns: list[str]) -> tuple[dict[str, float], str]:
    """({column: number}, "") or ({}, the first column that is not a finite number)."""
    numbers = {}
    for column in columns:
        try:
            numbers[column] = float(values[column])
        except ValueError:
            return {}, column
        if not math.isfinite(numbers[column]):
            return {}, column
    return numbers, ""


def check_results(folder: Path, assignment: Assignment) -> list[str]:
    """grades.csv must be what the last finished run wrote: results.jsonl agrees with it.

    While ``reglab grade`` runs, or after it was interrupted, results.jsonl holds entries that
    grades.csv (written at the end) does not: joining then would drop or misstate grades.
    """
    path = folder / RESULTS
    if not path.is_file():
        return []  # an older output folder; grades.csv stands alone (noted by the caller)
    try:
        results = load_results(path)
    except (OSError, UnicodeDecodeError) as err:
        return [f"{path}: cannot be read ({err})"]
    by_key = {normalise(s): e for s, e in results.items() if isinstance(e, dict)}
    absent, differ = [], []
    for key, entry in assignment.entries.items():
        result = by_key.get(key)
        if result is None:
            absent.append(f"{entry.student!r} (line {entry.line})")
            continue
        try:
            same = (f"{result['total']:g}" == f"{entry.total:g}"
                    and result["status"] == entry.status)
        except (KeyError, TypeError, ValueError):
            same = False
        if not same:
            differ.append(f"{entry.student!r} (line {entry.line}: {points(entry.total)} "
                          f"{entry.status}; {RESULTS}: {result.get('total')} "
                          f"{result.get('status')})")
    extra = [repr(s) for s in results if normalise(s) not in assignment.entries]
    hint = ("was `reglab grade` interrupted, is it still running, or was grades.csv edited? "
            "Run `reglab grade` again (it resumes)")
    problems = []
    for what, who in ((f"in {GRADES} but not in {RESULTS}", absent),
                      (f"with a different grade in {GRADES} and {RESULTS}", differ),
                      (f"in {RESULTS} but not in {GRADES}", extra)):
        if who:
            problems.append(f"{folder}: {len(who)} student(s) {what}: {short_list(who)}; {hint}")
    return problems


def short_list(items: list[str], limit: int = 10) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


# ---------------------------------------------------------------- the term

def default_name(folder: Path) -> str:
    return Path(folder).resolve().name or str(folder)


def reserved_columns(fmt: str) -> list[str]:
    return {"plain": PLAIN_HEAD + PLAIN_TAIL, "canvas": CANVAS_HEADER,
            "moodle": [MOODLE_ID]}[fmt]


def check_names(names: list[str], folders: list[Path], fmt: str) -> list[str]:
    problems, seen = [], {}
    reserved = {c.casefold(): c for c in reserved_columns(fmt)}
    for name, folder in zip(names, folders):
        key = name.strip().casefold()
        if not key:
            problems.append(f"{folder}: the assignment name is empty")
        elif key in seen:
            twice = (" (the same folder given twice)"
                     if Path(folder).resolve() == Path(seen[key]).resolve() else "")
            problems.append(f"{folder}: the assignment name {name!r} is already the name of "
                            f"{seen[key]}{twice}; names must differ, ignoring case (give "
                            "--assignment-names)")
        elif key in reserved:
            problems.append(f"{folder}: the assignment name {name!r} is a column of the "
                            f"{fmt} format itself ({reserved[key]!r}); give --assignment-names")
        elif fmt == "canvas" and (hit := next((c for c in CANVAS_READ_ONLY if c in name),
                                              None)):
            problems.append(f"{folder}: Canvas ignores any column whose name contains "
                            f"{hit!r}, so the assignment {name!r} would not be imported; "
                            "give --assignment-names")
        seen.setdefault(key, folder)
    return problems


def build(folders: list[Path], names: list[str] | None = None, fmt: str = "plain") -> Gradebook:
    """Read and check every folder, then join them; raise GradebookError listing every
    problem found in any of them (nothing is joined in part)."""
    folders = [Path(f) for f in folders]
    if not folders:
        raise GradebookError(["no grades folders given"])
    if fmt not in FORMATS:
        raise GradebookError([f"unknown format {fmt!r} (one of {', '.join(FORMATS)})"])
    if names is not None and len(names) != len(folders):
        raise GradebookError([f"--assignment-names gives {len(names)} name(s) for "
                              f"{len(folders)} grades folder(s); give one per folder, in order"])
    names = list(names) if names is not None else [default_name(f) for f in folders]
    problems = check_names(names, folders, fmt)
    assignments, warnings = [], []
    for folder, name in zip(folders, names):
        assignment, found = read_folder(folder, name.strip())
        problems += found
        assignments.append(assignment)
        if not found and not (folder / RESULTS).is_file():
            warnings.append(f"{folder}: no {RESULTS}; {GRADES} is used without checking that "
                            "its grading run finished")
    if problems:
        raise GradebookError(problems)
    spellings: dict[str, list[tuple[str, str]]] = {}  # key -> [(spelling, assignment name)]
    for a in assignments:
        for key, entry in a.entries.items():
            spellings.setdefault(key, []).append((entry.student, a.name))
    students = sorted(((key, found[0][0].strip()) for key, found in spellings.items()),
                      key=lambda s: (s[0], s[1]))
    for key, shown in students:
        found = spellings[key]
        if any(s != shown for s, _ in found):
            where = ", ".join(f"{s!r} in {name}" for s, name in found)
            warnings.append(f"ids merged as {shown!r} (they differ only in case or surrounding "
                            f"spaces): {where}")
    return Gradebook(assignments, students, warnings)


# ---------------------------------------------------------------- writing

def render(book: Gradebook, fmt: str = "plain") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = [a.name for a in book.assignments]
    top = [points(a.max) for a in book.assignments]
    if fmt == "plain":
        writer.writerow([*PLAIN_HEAD, *names, *PLAIN_TAIL])
        term_max = points(sum(a.max for a in book.assignments))
        for key, shown in book.students:
            cells, notes, total = [], [], 0.0
            for i, a in enumerate(book.assignments):
                entry = book.cell(key, i)
                if entry is None:
                    cells.append(MISSING)
                    notes.append(f"{a.name}: {MISSING}")
                    continue
                cells.append(points(entry.total))
                total += entry.total
                if entry.status != "graded":
                    notes.append(f"{a.name}: {entry.status}")
            writer.writerow([shown, *cells, points(total), term_max, "; ".join(notes)])
    elif fmt == "canvas":
        writer.writerow([*CANVAS_HEADER, *names])
        writer.writerow([CANVAS_POINTS_POSSIBLE, "", "", "", "", *top])
        for key, shown in book.students:
            writer.writerow(["", "", "", shown, "", *lms_cells(book, key)])
    elif fmt == "moodle":
        writer.writerow([MOODLE_ID, *names])
        for key, shown in book.students:
            writer.writerow([shown, *lms_cells(book, key)])
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return buffer.getvalue()


def lms_cells(book: Gradebook, key: str) -> list[str]:
    return ["" if (e := book.cell(key, i)) is None else points(e.total)
            for i in range(len(book.assignments))]


def report_lines(book: Gradebook, fmt: str) -> list[str]:
    """What the instructor must know besides the file: merges, missing work, not-graded runs."""
    lines = list(book.warnings)
    empty = {"plain": f"marked {MISSING!r}, counted 0 in total",
             "canvas": "cells left empty: Canvas removes a grade it already has there, and "
                       "highlights that on its review page",
             "moodle": "cells left empty: Moodle imports them as 'no grade', clearing a grade "
                       "already in the mapped item"}[fmt]
    for name, who in book.missing().items():
        lines.append(f"missing work in {name} ({empty}): {', '.join(who)}")
    for name, who in book.not_graded().items():
        lines.append(f"not graded normally in {name} (their points count as the grader "
                     f"gave them): {', '.join(who)}")
    return lines


def write_gradebook(folders: list[Path], out: Path, fmt: str = "plain",
                    names: list[str] | None = None) -> tuple[Gradebook, list[str]]:
    """Build, render and write the term file atomically; return it and the warning lines."""
    out = Path(out)
    inputs = {(Path(f) / n).resolve() for f in folders for n in (GRADES, RESULTS)}
    if out.resolve() in inputs:
        raise GradebookError([f"--out {out} is one of the input files; choose another path"])
    book = build(folders, names, fmt)
    text = render(book, fmt)
    try:
        write_atomically(out, text)
    except OSError as err:
        raise GradebookError([f"{out}: cannot be written ({err.strerror or err})"]) from None
    return book, report_lines(book, fmt)

