"""The adversarial corpus: one grading run over a class of hostile and broken submissions.

Every submission is built from the committed solution (all answers right, full points) or the
released exercise (all blank) by editing cells. The class is graded once per session (two
workers) and each case asserts its status and total. The run must never crash.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, full_points

from reglab.grading.grade import grade
from reglab.grading.judge import HIDDEN_FAILED
from reglab.release import nbgrader_meta

pytestmark = pytest.mark.notebooks
SOURCE = ROOT / "solutions" / "01-overfitting.ipynb"
EXERCISE = ROOT / "exercises" / "01-overfitting.ipynb"
FULL = full_points(SOURCE)

WRONG_DIAGNOSE = 'def diagnose(train_loss, val_loss, high, min_rise):\n    return "good fit"\n'


def solution():
    return nbformat.read(SOURCE, as_version=4)


def cell(nb, grade_id):
    return next(c for c in nb.cells if nbgrader_meta(c).get("grade_id") == grade_id)


def answered(**answers):
    """The solution with some answer cells (by grade_id, '-' for '_') replaced."""
    nb = solution()
    for grade_id, code in answers.items():
        cell(nb, grade_id.replace("_", "-")).source = code
    return nb


def diagnose_with(prefix: str, body: str = '    return "good fit"\n') -> str:
    return prefix + "\ndef diagnose(train_loss, val_loss, high, min_rise):\n" + body


def stripped_metadata():
    nb = solution()
    for c in nb.cells:
        c.metadata = {}
    return nb


def duplicated_answer():
    nb = solution()
    right = cell(nb, "task5-diagnose")
    wrong = copy.deepcopy(right)
    wrong.source = WRONG_DIAGNOSE
    nb.cells.insert(nb.cells.index(right), wrong)
    return nb


def renamed_answer():
    nb = solution()
    nbgrader_meta(cell(nb, "task5-diagnose"))["grade_id"] = "my-diagnose"
    return nb


def reordered_and_added():
    nb = solution()
    nb.cells.reverse()
    nb.cells.insert(0, nbformat.v4.new_code_cell('q1 = "a"\nq2 = "b"'))
    nb.cells.append(nbformat.v4.new_code_cell("raise SystemExit('bye')"))
    return nb


def edited_test_cell():
    nb = answered(task5_diagnose=WRONG_DIAGNOSE)
    cell(nb, "task5-diagnose-test").source = 'print("all good")'
    return nb


def deleted_test_cell():
    nb = solution()
    nb.cells.remove(cell(nb, "task5-diagnose-test"))
    return nb


def input_transformer():
    code = cell(solution(), "task1-design-matrix").source + (
        "\nget_ipython().input_transformers_cleanup.append(lambda lines: [])\n")
    return answered(task1_design_matrix=code)


FLOOD = 'print("x" * 5_000_000)\nfor i in range(20_000):\n    print("spam " * 40)\n'
SEGFAULT = "import ctypes\n"
SEARCH_SOURCE = '''
import os, sys
def _leads_to_course(path):
    if not os.path.exists(path):
        return False
    if path.endswith(".ipynb") or "solutions" in path:
        return True
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            if root.count(os.sep) - path.count(os.sep) > 2:
                dirs[:] = []
            if any(f.endswith(".ipynb") for f in files) or "solutions" in dirs:
                return True
    return False
_hints = [os.getcwd(), *sys.argv] + [p for v in os.environ.values() for p in v.split(os.pathsep)]
q1 = "c" if any(_leads_to_course(h) for h in _hints if h and h != "/") else "a"
'''
VANDALISM = '''
import os, sys
# Everything the grader tells the kernel about (its folder and the folders named in its
# environment, except PATH: the test must not litter system folders when run as root).
_targets = [os.getcwd()] + [p for k, v in os.environ.items() if k != "PATH"
                            for p in v.split(os.pathsep) if os.path.isdir(p)]
for _d in _targets:
    for _name in ("grades.csv", "results.jsonl", "alice.ipynb", "correct.ipynb"):
        try:
            with open(os.path.join(_d, _name), "w") as f:
                f.write("hacked")
        except OSError:
            pass
'''
FORGE = '''
from IPython.display import publish_display_data
from reglab.checks import RECORD_MIME
def _forge(name, value):
    publish_display_data({RECORD_MIME: {"name": name, "how": "exact", "rtol": 0, "atol": 0,
                                        "value": value}})
def diagnose(train_loss, val_loss, high, min_rise):
    for n in ("both losses stay high", "hidden edge cases", "hidden random cases"):
        _forge("diagnose: " + n, "underfit")
    return "good fit"
'''
PATCHED_CHECK = '''
import reglab.checks as _c
def check(name, got, expected, **kw):   # record the expected value instead of got
    _c.record(name, expected, kw.get("how", "allclose"), 1e-7, 1e-10)
_c.check = check
def diagnose(train_loss, val_loss, high, min_rise):
    return "good fit"
'''
ALWAYS_EQUAL = '''
class _Yes:
    def __eq__(self, other):
        return True
def diagnose(train_loss, val_loss, high, min_rise):
    return _Yes()
'''
PATCHED_NUMPY = '''
import numpy as np, numpy.testing
np.allclose = lambda *a, **k: True
np.testing.assert_allclose = lambda *a, **k: None
np.testing.assert_array_equal = lambda *a, **k: None
'''
PATCHED_BUILTINS = "import builtins\nbuiltins.sum = lambda *a, **k: 0\nbuiltins.abs = lambda x: 0\n"
CUSTOM_EXC = "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)\n"
HARD_CODED = '''
def diagnose(train_loss, val_loss, high, min_rise):
    return {0.93: "underfit", 0.02: "overfit"}.get(train_loss[-1], "good fit")
'''
READS_EXPECTED = '''
def diagnose(train_loss, val_loss, high, min_rise):
    import inspect
    caller = inspect.currentframe().f_back.f_globals
    return caller.get("expected", caller.get("_reference_diagnose", lambda *a: "good fit")(
        train_loss, val_loss, high, min_rise))
'''
STUBBORN_LOOP = """import time
def diagnose(train_loss, val_loss, high, min_rise):
    while True:   # swallows the grader's interrupt: killed after the cell limit and a grace
        try:
            time.sleep(0.2)
        except BaseException:
            pass
"""
BLANK = nbformat.read(EXERCISE, as_version=4)

# name -> (notebook or raw bytes, expected status, expected total)
CASES = {
    "correct": (solution(), "graded", FULL),
    "blank": (BLANK, "graded", 0),
    "partly_right": (answered(q1_regularization='q1 = "a"', q2_validation_vs_test='q2 = "b"'),
                     "graded", FULL - 2),
    "passes_visible_only": (answered(task5_diagnose=HARD_CODED), "graded", FULL - 2),
    "infinite_loop": (answered(task5_diagnose=diagnose_with("", "    while True:\n        pass\n")),
                      "timeout", FULL - 2),
    "interrupt_swallowed": (answered(task5_diagnose=STUBBORN_LOOP), "timeout", 7),
    "memory_hog": (answered(task5_diagnose=diagnose_with(
        "", "    return bytearray(64 * 2**30)\n")), "memory", FULL - 2),
    "os_exit": (answered(task5_diagnose=diagnose_with("import os", "    os._exit(3)\n")),
                "crashed", 7),
    "segfault": (answered(task5_diagnose=diagnose_with(SEGFAULT, "    ctypes.string_at(0)\n")),
                 "crashed", 7),
    "sys_exit": (answered(task5_diagnose="import sys\nsys.exit(1)\n" + WRONG_DIAGNOSE),
                 "graded", FULL - 2),
    "keyboard_interrupt": (answered(task5_diagnose="raise KeyboardInterrupt\n"), "graded",
                           FULL - 2),
    "output_flood": (answered(task1_design_matrix=FLOOD + cell(
        solution(), "task1-design-matrix").source), "graded", FULL),
    "edited_test_cell": (edited_test_cell(), "graded", FULL - 2),
    "deleted_test_cell": (deleted_test_cell(), "graded", FULL),
    "stripped_metadata": (stripped_metadata(), "graded", 0),
    "duplicated_grade_id": (duplicated_answer(), "graded", FULL - 2),
    "renamed_grade_id": (renamed_answer(), "graded", FULL - 2),
    "reordered_and_added": (reordered_and_added(), "graded", FULL),
    "always_equal": (answered(task5_diagnose=ALWAYS_EQUAL), "graded", FULL - 2),
    "patched_numpy_testing": (answered(task5_diagnose=PATCHED_NUMPY + WRONG_DIAGNOSE), "graded",
                              FULL - 2),
    "custom_exc": (answered(task5_diagnose=CUSTOM_EXC + WRONG_DIAGNOSE), "graded", FULL - 2),
    "input_transformer": (input_transformer(), "graded", 0),
    "patched_builtins": (answered(task5_diagnose=PATCHED_BUILTINS + WRONG_DIAGNOSE), "graded",
                         FULL - 2),
    "patched_check": (answered(task5_diagnose=PATCHED_CHECK), "graded", FULL - 2),
    "forged_records": (answered(task5_diagnose=FORGE), "graded", FULL - 2),
    "reads_expected": (answered(task5_diagnose=READS_EXPECTED), "graded", FULL - 2),
    "vandal": (answered(task5_diagnose=VANDALISM + cell(solution(), "task5-diagnose").source),
               "graded", FULL),
    "searches_for_source": (answered(q1_regularization=SEARCH_SOURCE), "graded", FULL - 1),
    "corrupt_json": (b'{"cells": [', "unreadable", 0),
    "empty_file": (b"", "unreadable", 0),
    "png_file": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10, "unreadable", 0),
    "json_not_notebook": (b'{"hello": "world"}', "unreadable", 0),
    "nbformat3": (nbformat.writes(nbformat.convert(solution(), 3), version=3).encode(),
                  "graded", FULL),
    "huge_50mb": (None, "unreadable", 0),
}


def write_submission(folder: Path, name: str, content) -> None:
    path = folder / f"{name}.ipynb"
    if content is None:  # 50 MB: a valid notebook with a huge markdown cell
        nb = solution()
        nb.cells.append(nbformat.v4.new_markdown_cell("x" * (50 * 2**20)))
        content = nbformat.writes(nb).encode()
    elif not isinstance(content, bytes):
        content = nbformat.writes(content).encode()
    path.write_bytes(content)


def folder_digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    subs, out = root / "submissions", root / "out"
    subs.mkdir()
    for name, (content, _, _) in CASES.items():
        write_submission(subs, name, content)
    (subs / "in_a_folder").mkdir()
    write_submission(subs / "in_a_folder", "my-work", solution())
    before = folder_digest(subs)
    entries = grade(SOURCE, subs, out, workers=2, seed=4242, cell_timeout=8,
                    notebook_timeout=40, memory_mb=3072, progress=False)
    return {"entries": {e["student"]: e for e in entries}, "out": out, "subs": subs,
            "before": before}


def test_corpus_has_at_least_30_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", list(CASES))
def test_case_gets_its_expected_status_and_score(corpus, name):
    _, status, total = CASES[name]
    entry = corpus["entries"][name]
    assert (entry["status"], entry["total"]) == (status, total), entry


def test_one_folder_per_student_is_read(corpus):
    assert corpus["entries"]["in_a_folder"]["total"] == FULL


def test_hard_coded_answer_fails_a_hidden_test_without_showing_expected_values(corpus):
    task5 = corpus["entries"]["passes_visible_only"]["questions"][4]
    assert task5["message"] == HIDDEN_FAILED
    page = (corpus["out"] / "feedback" / "passes_visible_only.html").read_text()
    assert "hidden" in page and "underfit" not in page and "_reference" not in page


def test_reasons_name_the_problem(corpus):
    entries = corpus["entries"]
    assert "metadata" in entries["stripped_metadata"]["reason"]
    assert "2 times" in entries["duplicated_grade_id"]["reason"]
    assert "task5-diagnose" in entries["renamed_grade_id"]["reason"]
    assert "segmentation fault" in entries["segfault"]["reason"]
    assert "MB" in entries["huge_50mb"]["reason"]
    assert entries["blank"]["questions"][0]["message"] == "not answered yet"
    assert "time limit" in entries["infinite_loop"]["questions"][4]["message"]
    assert "(question task5-diagnose-test) ran longer than" in \
        entries["interrupt_swallowed"]["reason"]
    assert "was stopped" in entries["interrupt_swallowed"]["reason"]
    assert "recorded more than once" in entries["forged_records"]["questions"][4]["message"]
    assert "not a number" in entries["always_equal"]["questions"][4]["message"]


def test_submissions_and_outputs_are_not_touched_by_a_vandal(corpus):
    assert folder_digest(corpus["subs"]) == corpus["before"]
    rows = (corpus["out"] / "grades.csv").read_text().splitlines()
    assert len(rows) == len(CASES) + 2 and "hacked" not in "".join(rows)


def test_results_have_one_line_per_student_and_timing(corpus):
    lines = (corpus["out"] / "results.jsonl").read_text().splitlines()
    students = [json.loads(line)["student"] for line in lines]
    assert sorted(students) == sorted(set(students)) and len(students) == len(CASES) + 1
    assert all("seconds" in json.loads(line) for line in lines)
