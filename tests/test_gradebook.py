"""reglab gradebook: joining grades folders, the Canvas and Moodle files, ids, bad input.

Grades folders are written by hand in tmp_path with the grader's own ``grades_csv`` (and a
``results.jsonl`` as the grader leaves it after a finished run); nothing is graded here.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from reglab import cli
from reglab.grading.grade import grades_csv
from reglab.grading.gradebook import GradebookError, build

QUESTIONS = ("q1", "q2")
MAXES = (2.0, 3.0)


def entry(student, q1, q2, status="graded", reason=""):
    questions = [{"grade_id": g, "points": p, "max": m, "message": ""}
                 for g, p, m in zip(QUESTIONS, (q1, q2), MAXES)]
    return {"student": student, "key": "k", "max": sum(MAXES), "status": status,
            "reason": reason, "questions": questions, "total": q1 + q2, "seconds": 0.1}


def grades_dir(root, name, *entries, results=True):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "grades.csv").write_text(grades_csv(list(entries), list(QUESTIONS)),
                                       encoding="utf-8")
    if results:
        (folder / "results.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries),
                                              encoding="utf-8")
    return folder


def rows(path):
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def run(capsys, *args):
    code = cli.main(["gradebook", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def term(tmp_path):
    """Two assignments: bob missed ex02, cy's ex01 timed out (partial points kept)."""
    ex01 = grades_dir(tmp_path, "ex01", entry("ada", 2, 3), entry("bob", 1, 0.5),
                      entry("cy", 1, 0, "timeout", "the notebook ran longer than 600 s"))
    ex02 = grades_dir(tmp_path, "ex02", entry("ada", 2, 1 / 3), entry("cy", 0, 3))
    return ex01, ex02


# ---------------------------------------------------------------- the plain term file

def test_plain_joins_one_row_per_student_with_missing_and_status(tmp_path, term, capsys):
    out = tmp_path / "term.csv"
    code, stdout, err = run(capsys, *term, "--out", out)
    assert code == 0, err
    assert "3 student(s), 2 assignment(s)" in stdout
    assert rows(out) == [
        ["student", "ex01", "ex02", "total", "max", "notes"],
        ["ada", "5", "2.33333", "7.33333", "10", ""],
        ["bob", "1.5", "missing", "1.5", "10", "ex02: missing"],
        ["cy", "1", "3", "4", "10", "ex01: timeout"],
    ]
    assert "missing work in ex02" in err and "bob" in err
    assert "cy (timeout)" in err


def test_every_not_graded_status_counts_its_points(tmp_path, capsys):
    statuses = ["timeout", "crashed", "memory", "unreadable"]
    ex = grades_dir(tmp_path, "ex", *(entry(s, 1, 0.5, s, "why") for s in statuses))
    out = tmp_path / "term.csv"
    assert run(capsys, ex, "--out", out)[0] == 0
    got = {r[0]: r for r in rows(out)[1:]}
    assert {s: (got[s][1], got[s][-1]) for s in statuses} == {
        s: ("1.5", f"ex: {s}") for s in statuses}


def test_round_trip_totals_equal_each_grades_csv(tmp_path, capsys):
    folders = [
        grades_dir(tmp_path, "a", entry("p1", 2, 1 / 3), entry("p2", 0.1, 0.2),
                   entry("p3", 1.25, 2.999999)),
        grades_dir(tmp_path, "b", entry("p1", 1 / 7, 3), entry("p3", 0, 0, "crashed")),
        grades_dir(tmp_path, "c", entry("p2", 2, 2.5), entry("p3", 0.5, 0.5)),
    ]
    expected = {}  # (assignment, student) -> total as grades.csv holds it
    for folder in folders:
        for row in csv.DictReader(io.StringIO((folder / "grades.csv").read_text())):
            expected[folder.name, row["student"]] = float(row["total"])
    for fmt in ("plain", "canvas", "moodle"):
        out = tmp_path / f"{fmt}.csv"
        assert run(capsys, *folders, "--out", out, "--format", fmt)[0] == 0
        table = rows(out)
        header, body = table[0], table[1 + (fmt == "canvas"):]
        id_col = {"plain": 0, "canvas": 3, "moodle": 0}[fmt]
        got = {}
        for row in body:
            for folder in folders:
                cell = row[header.index(folder.name)]
                if cell not in ("", "missing"):
                    got[folder.name, row[id_col]] = float(cell)
        assert got == expected, fmt
        if fmt == "plain":
            for row in body:
                assert float(row[4]) == pytest.approx(
                    sum(v for (_, s), v in expected.items() if s == row[0]), abs=1e-5)
                assert row[5] == "15"


# ---------------------------------------------------------------- the LMS files

def test_canvas_header_points_possible_and_login_column(tmp_path, term, capsys):
    out = tmp_path / "canvas.csv"
    code, _, err = run(capsys, *term, "--out", out, "--format", "canvas")
    assert code == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[:3] == ["Student,ID,SIS User ID,SIS Login ID,Section,ex01,ex02",
                         "Points Possible,,,,,5,5",
                         ",,,ada,,5,2.33333"]
    assert ",,,bob,,1.5," in lines  # missing: an empty cell, no total column
    assert "missing work in ex02" in err and "Canvas removes a grade it already has" in err
    assert "bob" in err.split("missing work in ex02")[1].splitlines()[0]


def test_moodle_header_id_first_and_empty_missing(tmp_path, term, capsys):
    out = tmp_path / "moodle.csv"
    code, _, err = run(capsys, *term, "--out", out, "--format", "moodle")
    assert code == 0
    assert out.read_text(encoding="utf-8").splitlines() == [
        "Student id,ex01,ex02", "ada,5,2.33333", "bob,1.5,", "cy,1,3"]
    line = next(l for l in err.splitlines() if "missing work in ex02" in l)
    assert "bob" in line and "no grade" in line


def test_canvas_refuses_a_name_canvas_would_drop(tmp_path, term, capsys):
    out = tmp_path / "canvas.csv"
    code, _, err = run(capsys, *term, "--out", out, "--format", "canvas",
                       "--assignment-names", "Project", "Final Grade project")
    assert code == 2 and not out.exists()
    assert "'Final Grade'" in err and "ex02" in err


# ---------------------------------------------------------------- student ids

def test_ids_differing_in_case_or_spaces_merge_across_assignments_with_a_warning(
        tmp_path, capsys):
    ex01 = grades_dir(tmp_path, "ex01", entry("Ana", 2, 3), entry("bo", 1, 1))
    ex02 = grades_dir(tmp_path, "ex02", entry(" ana", 1, 1), entry("bo", 0, 1))
    out = tmp_path / "term.csv"
    code, _, err = run(capsys, ex01, ex02, "--out", out)
    assert code == 0
    assert rows(out)[1:] == [["Ana", "5", "2", "7", "10", ""], ["bo", "2", "1", "3", "10", ""]]
    merge = [l for l in err.splitlines() if "merged" in l]
    assert len(merge) == 1
    assert "'Ana' in ex01" in merge[0] and "' ana' in ex02" in merge[0]


def test_ids_differing_in_case_within_one_assignment_are_refused(tmp_path, capsys):
    ex01 = grades_dir(tmp_path, "ex01", entry("Ana", 2, 3), entry("ana", 0, 0))
    out = tmp_path / "term.csv"
    out.write_text("the previous term file\n")
    code, _, err = run(capsys, ex01, "--out", out)
    assert code == 2
    assert out.read_text() == "the previous term file\n"  # nothing lost
    assert "lines 2 and 3" in err and "'Ana' and 'ana'" in err and "ex01" in err


# ---------------------------------------------------------------- malformed input

def corrupt(folder, how):
    path, results = folder / "grades.csv", folder / "results.jsonl"
    text, before = path.read_text(), results.read_text()
    if how == "no grades.csv":
        path.unlink()
    elif how == "not utf-8":
        path.write_bytes(b"student,q1\n\xff\xfe\x00garbage")
    elif how == "garbled csv":
        path.write_text(text + 'dan,1,1,2,5,graded,"unterminated\n')
    elif how == "wrong header":
        path.write_text(text.replace("student,", "name,", 1))
    elif how == "duplicate row":
        path.write_text(text + text.splitlines()[1] + "\n")
    elif how == "non-numeric points":
        path.write_text(text.replace("ada,2,3,5,", "ada,2,three,5,", 1))
    elif how == "grader-error":
        path.write_text(text + "dan,0,0,0,0,grader-error,the grader itself failed\n")
    elif how == "interrupted run":
        results.write_text(before + json.dumps(entry("dan", 1, 1)) + "\n")
    changed = not path.exists() or path.read_bytes() != text.encode()
    assert changed or results.read_text() != before, how  # the corruption took effect


MALFORMED = {  # how -> what the message must say
    "no grades.csv": "grades.csv: not found",
    "not utf-8": "line 2: not UTF-8",
    "garbled csv": "line 5: garbled CSV",
    "wrong header": "line 1: the header must be student",
    "duplicate row": "lines 2 and 5: two rows for 'ada'",
    "non-numeric points": "line 2: q2 is 'three'",
    "grader-error": "line 5: 'dan' has no grade (status grader-error",
    "interrupted run": "in results.jsonl but not in grades.csv: 'dan'",
}


@pytest.mark.parametrize("how", MALFORMED)
def test_malformed_folder_is_named_with_its_line_and_nothing_is_written(
        tmp_path, term, capsys, how):
    corrupt(term[0], how)
    out = tmp_path / "term.csv"
    code, stdout, err = run(capsys, *term, "--out", out)
    assert code == 2 and stdout == ""
    assert not out.exists()
    assert "Traceback" not in err
    problem = next(l for l in err.splitlines() if str(term[0]) in l)
    assert MALFORMED[how] in problem


def test_every_bad_folder_is_reported_at_once(tmp_path, term, capsys):
    corrupt(term[0], "wrong header")
    corrupt(term[1], "duplicate row")
    code, _, err = run(capsys, *term, tmp_path / "nowhere", "--out", tmp_path / "t.csv")
    assert code == 2
    assert "3 problem(s)" in err
    assert "ex01/grades.csv: line 1" in err and "ex02/grades.csv: lines 2 and 4" in err
    assert "nowhere: not a folder" in err


def test_missing_results_jsonl_is_a_warning_not_an_error(tmp_path, capsys):
    ex = grades_dir(tmp_path, "ex", entry("ada", 1, 1), results=False)
    code, _, err = run(capsys, ex, "--out", tmp_path / "t.csv")
    assert code == 0 and "no results.jsonl" in err


# ---------------------------------------------------------------- assignment names

def test_two_folders_with_one_name_are_refused_and_names_can_be_given(tmp_path, capsys):
    a = grades_dir(tmp_path / "fall", "ex01", entry("ada", 1, 1))
    b = grades_dir(tmp_path / "spring", "EX01", entry("ada", 2, 2))
    out = tmp_path / "term.csv"
    code, _, err = run(capsys, a, b, "--out", out)
    assert code == 2 and not out.exists()
    assert "'EX01' is already the name of" in err and str(a) in err
    code, _, err = run(capsys, a, b, "--out", out, "--assignment-names", "Fall", "Spring")
    assert code == 0, err
    assert rows(out) == [["student", "Fall", "Spring", "total", "max", "notes"],
                         ["ada", "2", "4", "6", "10", ""]]


def test_assignment_names_must_match_the_folders(tmp_path, term, capsys):
    code, _, err = run(capsys, *term, "--out", tmp_path / "t.csv", "--assignment-names", "x")
    assert code == 2 and "1 name(s) for 2 grades folder(s)" in err


def test_out_may_not_overwrite_an_input(tmp_path, term, capsys):
    before = (term[0] / "grades.csv").read_text()
    code, _, err = run(capsys, *term, "--out", term[0] / "grades.csv")
    assert code == 2 and "is one of the input files" in err
    assert (term[0] / "grades.csv").read_text() == before


def test_build_raises_with_every_problem(tmp_path, term):
    corrupt(term[0], "duplicate row")
    with pytest.raises(GradebookError) as caught:
        build([*term, term[1]])
    assert len(caught.value.problems) == 2  # the duplicate row and the repeated folder
