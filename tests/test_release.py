"""reglab release: round trip, validation errors, atomic writes, and exercises/ in sync."""

import re
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, committed_notebooks

from reglab import cli
from reglab.checks import QUIZ_OPTIONS, answer_key
from reglab.release import ReleaseError, build, release, stale, student_version


def meta(**fields):
    return {"nbgrader": {"schema_version": 3, **fields}}


def answer_cell(source, grade_id="task1"):
    return nbformat.v4.new_code_cell(source, metadata=meta(
        grade=False, solution=True, locked=False, grade_id=grade_id))


def test_cell(source, grade_id="task1-test", points=2):
    return nbformat.v4.new_code_cell(source, metadata=meta(
        grade=True, solution=False, locked=True, grade_id=grade_id, points=points))


test_cell.__test__ = False


def notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Exercise"), *cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


SOLVED = """def double(x):
    \"\"\"Return 2x.\"\"\"
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION"""

TESTS = """check("double", double(2), 4)
### BEGIN HIDDEN TESTS
check("double-hidden", double(21), 42)
### END HIDDEN TESTS"""

QUIZ = """### BEGIN SOLUTION
q1 = "b"
# stub: q1 = None  # your answer
### END SOLUTION"""


def write(tmp_path, name, nb):
    path = tmp_path / "solutions" / name
    path.parent.mkdir(exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_student_version_strips_solutions_and_hidden_tests():
    nb = notebook(answer_cell(SOLVED), test_cell(TESTS), answer_cell(QUIZ, "q1"))
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="hi")]
    nb.cells[1].execution_count = 3
    student = student_version(nb)
    code, tests, quiz = (c.source for c in student.cells[1:])
    assert code == ('def double(x):\n    """Return 2x."""\n    # YOUR CODE HERE\n'
                    '    raise NotImplementedError("not implemented yet")')
    assert tests == 'check("double", double(2), 4)'
    assert quiz == "q1 = None  # your answer"
    assert student.cells[1].outputs == [] and student.cells[1].execution_count is None
    assert student.cells[2].metadata["tags"] == ["raises-exception"]
    assert "tags" not in student.cells[1].metadata
    assert student.cells[2].metadata["nbgrader"]["points"] == 2
    assert nb.cells[1].source == SOLVED, "the source notebook is not modified"


def test_markdown_solution_becomes_a_placeholder():
    cell = nbformat.v4.new_markdown_cell(
        "Explain.\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION",
        metadata=meta(grade=False, solution=True, locked=False, grade_id="essay"))
    assert student_version(notebook(cell)).cells[1].source == "YOUR ANSWER HERE"


@pytest.mark.parametrize("cells, message", [
    ([answer_cell("### BEGIN SOLUTION\nx = 1")], "cell 2: '### BEGIN SOLUTION' on line 1 has no"),
    ([answer_cell("x = 1\n### END SOLUTION")], "cell 2: '### END SOLUTION' on line 2 without"),
    ([test_cell("### BEGIN HIDDEN TESTS\ncheck()")], "has no '### END HIDDEN TESTS'"),
    ([answer_cell("x = 1", "a"), answer_cell("y = 2", "a")],
     "cell 3: duplicate grade_id 'a' (also cell 2)"),
    ([test_cell("check()", points=None)], "needs positive points, found None"),
    ([test_cell("check()", points=0)], "needs positive points, found 0"),
    ([nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")],
     "has solution markers but metadata nbgrader.solution is not true"),
    ([answer_cell("### BEGIN HIDDEN TESTS\nx\n### END HIDDEN TESTS")],
     "hidden-test markers but metadata nbgrader.grade is not true"),
    ([answer_cell("## BEGIN SOLUTION\nx = 1\n### END SOLUTION")],
     "looks like a marker but is not exactly"),
    ([test_cell('check("a", 1, 1)', "t1"), test_cell('check_choice("a", q, key="k")', "t2")],
     "cell 3: check name 'a' is used twice (also cell 2)"),
    ([nbformat.v4.new_code_cell("x", metadata=meta(grade=True, points=1))],
     "nbgrader cell without a grade_id"),
    ([nbformat.v4.new_code_cell("x", metadata={"nbgrader": {
        "grade": False, "solution": True, "grade_id": "a", "schema_version": 1}})],
     "schema_version must be 3"),
])
def test_validation_names_the_file_and_cell(tmp_path, cells, message):
    path = write(tmp_path, "01-x.ipynb", notebook(*cells))
    with pytest.raises(ReleaseError) as err:
        build([path], tmp_path / "exercises")
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_markdown_may_explain_the_markers(tmp_path):
    text = nbformat.v4.new_markdown_cell("The release removes `### BEGIN SOLUTION` regions.")
    path = write(tmp_path, "01-x.ipynb", notebook(text))
    assert build([path], tmp_path / "exercises")


def test_nothing_is_written_when_any_notebook_is_bad(tmp_path):
    good = write(tmp_path, "01-good.ipynb", notebook(answer_cell(SOLVED), test_cell(TESTS)))
    bad = write(tmp_path, "02-bad.ipynb", notebook(answer_cell("### BEGIN SOLUTION")))
    out = tmp_path / "exercises"
    assert cli.main(["release", str(good), str(bad), "--out", str(out)]) == 2
    assert not out.exists()


def test_unreadable_notebook_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.ipynb"
    path.write_text("{ not json")
    with pytest.raises(ReleaseError, match="broken.ipynb: not a readable notebook"):
        build([path], tmp_path)


def test_release_writes_atomically_and_check_detects_drift(tmp_path):
    src = write(tmp_path, "01-x.ipynb", notebook(answer_cell(SOLVED), test_cell(TESTS)))
    out = tmp_path / "exercises"
    assert release([src], out) == [out / "01-x.ipynb"]
    assert sorted(p.name for p in out.iterdir()) == ["01-x.ipynb"], "no temporary files left"
    assert stale([src], out) == []
    assert cli.main(["release", "--source", str(src.parent), "--out", str(out), "--check"]) == 0
    nb = nbformat.read(src, as_version=4)
    nb.cells[1].source = nb.cells[1].source.replace("2 * x", "x + x")
    nbformat.write(nb, src)
    assert stale([src], out) == []  # a change inside a solution region does not reach students
    nb.cells[0].source = "# Exercise, reworded"
    nbformat.write(nb, src)
    assert stale([src], out) == [out / "01-x.ipynb"]
    assert cli.main(["release", "--source", str(src.parent), "--out", str(out), "--check"]) == 1


def test_released_notebook_is_valid_nbformat(tmp_path):
    src = write(tmp_path, "01-x.ipynb", notebook(answer_cell(SOLVED), test_cell(TESTS)))
    (path,) = release([src], tmp_path / "exercises")
    nbformat.validate(nbformat.read(path, as_version=4))


def test_cli_key_prints_the_answer_key(capsys):
    assert cli.main(["key", "q1", "B"]) == 0
    assert capsys.readouterr().out.strip() == "4e7a192264575faf"
    assert cli.main(["key", "q1", "z"]) == 2


def test_exercises_are_in_sync_with_solutions():
    solutions = committed_notebooks("solutions")
    assert solutions, "no solution notebooks found"
    exercises = sorted(p.name for p in (ROOT / "exercises").glob("*.ipynb"))
    assert exercises == [p.name for p in solutions], "every solution has exactly one exercise"
    assert stale(solutions, ROOT / "exercises") == [], "run `make release` and commit exercises/"


def test_every_committed_notebook_has_no_outputs():
    for path in committed_notebooks("notebooks", "solutions", "exercises"):
        nb = nbformat.read(path, as_version=4)
        dirty = [i + 1 for i, c in enumerate(nb.cells) if c.cell_type == "code"
                 and (c.outputs or c.execution_count is not None)]
        assert not dirty, f"{path.relative_to(ROOT)}: outputs in cells {dirty} (run `reglab clean`)"


def test_every_notebook_starts_with_reglab_setup():
    for path in committed_notebooks("notebooks", "solutions", "exercises"):
        nb = nbformat.read(path, as_version=4)
        first_code = next(c for c in nb.cells if c.cell_type == "code")
        assert "reglab.setup(" in first_code.source, f"{path.name}: first code cell must set up"


def test_clean_removes_outputs(tmp_path):
    nb = notebook(nbformat.v4.new_code_cell("1 + 1"))
    nb.cells[1].outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "2"})]
    nb.cells[1].execution_count = 1
    path = Path(tmp_path / "n.ipynb")
    nbformat.write(nb, path)
    assert cli.main(["clean", str(path)]) == 0
    cleaned = nbformat.read(path, as_version=4)
    assert cleaned.cells[1].outputs == [] and cleaned.cells[1].execution_count is None


@pytest.mark.parametrize("path", committed_notebooks("solutions"), ids=lambda p: p.stem)
def test_no_quiz_key_reaches_the_student(path):
    """A graded quiz item's key is only in the hidden tests: neither the released exercise nor
    the package holds the key of any option, so a student cannot test answers against it."""
    solution = path.read_text(encoding="utf-8")
    exercise = (ROOT / "exercises" / path.name).read_text(encoding="utf-8")
    names = set(re.findall(r'check_choice\(\s*\\?"([^"\\]+)', solution))
    keys = {answer_key(name, option) for name in names for option in QUIZ_OPTIONS}
    package = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "reglab").glob("*.py"))
    assert not [k for k in keys if k in exercise], "a quiz key is in the released exercise"
    assert not [k for k in keys if k in package], "a quiz key is in the reglab package"
    assert "check_choice(" not in exercise
    for name in names:  # each item still says, visibly, whether it is answered
        assert re.search(rf'answered\(\s*\\?"{re.escape(name)}\\?"', exercise), name
