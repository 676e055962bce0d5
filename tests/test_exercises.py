"""The student's and the grader's view of every exercise, executed for real."""

import shutil

import pytest
from conftest import ROOT, committed_notebooks

from reglab.execute import error_outputs, execute
from reglab.grading.grade import grade
from reglab.release import nbgrader_meta

pytestmark = pytest.mark.notebooks
UNANSWERED = ("not implemented yet", "not answered yet")


def graded(cell) -> bool:
    return bool(nbgrader_meta(cell).get("grade"))


@pytest.mark.parametrize("path", committed_notebooks("exercises"), ids=lambda p: p.name)
def test_unsolved_exercise_fails_only_at_graded_cells_saying_why(path):
    nb, _ = execute(path, allow_errors=True)
    graded_cells = [c for c in nb.cells if c.cell_type == "code" and graded(c)]
    assert graded_cells, "an exercise without graded cells"
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        errors = error_outputs(cell)
        if graded(cell):
            grade_id = nbgrader_meta(cell)["grade_id"]
            assert errors, f"{grade_id}: passes with no answer (free points)"
            message = errors[0]["evalue"]
            assert any(s in message for s in UNANSWERED), f"{grade_id}: unclear error {message!r}"
        else:
            assert not errors, f"an ungraded cell fails: {cell.source[:80]!r}"


@pytest.mark.parametrize("path", committed_notebooks("solutions"), ids=lambda p: p.name)
def test_grader_gives_the_solution_full_marks_and_the_blank_exercise_none(path, tmp_path):
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    shutil.copy(path, submissions / "reference.ipynb")
    shutil.copy(ROOT / "exercises" / path.name, submissions / "blank.ipynb")
    entries = {e["student"]: e for e in grade(path, submissions, tmp_path / "out", workers=2,
                                               seed=12345, progress=False)}
    solved, blank = entries["reference"], entries["blank"]
    assert solved["status"] == blank["status"] == "graded", (solved["reason"], blank["reason"])
    assert solved["total"] == solved["max"] > 0, solved["questions"]
    assert blank["total"] == 0, blank["questions"]
