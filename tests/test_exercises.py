"""The student's and the grader's view of every exercise, executed for real."""

import pytest
from conftest import committed_notebooks

from reglab.checks import GRADING_ENV, RECORD_MIME, SEED_ENV
from reglab.execute import error_outputs, execute
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
def test_reference_solution_records_every_graded_cell_when_grading(path):
    nb, _ = execute(path, env={GRADING_ENV: "1", SEED_ENV: "12345"})
    for cell in nb.cells:
        if cell.cell_type == "code" and graded(cell):
            records = [o["data"][RECORD_MIME] for o in cell.outputs
                       if RECORD_MIME in o.get("data", {})]
            grade_id = nbgrader_meta(cell)["grade_id"]
            assert records, f"{grade_id}: records nothing under the grader"
            assert all("error" not in r for r in records), f"{grade_id}: {records}"
