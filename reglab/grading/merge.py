"""Build the notebook the grader runs: a clean copy of SOURCE with only the student's answers.

Two rules keep reference values out of the student's kernel:

* Only the student's *answer cells* (``solution: true``, matched by ``grade_id``) are taken
  from a submission; every other cell comes from SOURCE.
* In SOURCE's graded cells the ``expected`` argument of every ``check(...)`` call is replaced
  by ``None``, and statements whose results are then unused (``expected = np.vander(...)``,
  a reference helper ``def``) are removed. Under the grader ``check`` only records ``got``, so
  nothing is lost, and code the student controls can never read an expected value.
"""

from __future__ import annotations

import ast
import copy
import re

import nbformat

from reglab.release import CHECK_NAME, nbgrader_meta, replace_solutions, student_version


class _DropExpected(ast.NodeTransformer):
    """Replace the third positional / ``expected=`` argument of ``check(...)`` by None."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name != "check":
            return node
        if len(node.args) >= 3:
            node.args[2] = ast.Constant(None)
        for keyword in node.keywords:
            if keyword.arg == "expected":
                keyword.value = ast.Constant(None)
        return node


def _loaded_names(tree: ast.AST) -> set[str]:
    loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
              and isinstance(n.ctx, (ast.Load, ast.Del))}
    # `total += v` reads `total`: without this, `total = 0.0` would be dropped as a dead
    # store, and an accumulator in a check cell would fail with NameError under the grader
    return loaded | {n.target.id for n in ast.walk(tree)
                     if isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name)}


def _bound_names(stmt: ast.stmt) -> set[str] | None:
    """Names a plain assignment or definition binds; None for any other statement."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    targets = (stmt.targets if isinstance(stmt, ast.Assign)
               else [stmt.target] if isinstance(stmt, ast.AnnAssign) else None)
    if targets is None:
        return None
    names = set()
    for target in targets:
        for node in ast.walk(target):
            if not isinstance(node, (ast.Name, ast.Tuple, ast.List, ast.Starred,
                                     ast.expr_context)):
                return None  # attribute or subscript targets have side effects: keep
            if isinstance(node, ast.Name):
                names.add(node.id)
    return names


def _remove_dead_stores(tree: ast.Module, used_elsewhere: set[str]) -> bool:
    """Remove one round of assignments whose names nothing loads; True if any was removed."""
    used = _loaded_names(tree) | used_elsewhere
    removed = False
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            if not isinstance(body, list) or not body or not isinstance(body[0], ast.stmt):
                continue
            kept = [s for s in body if not ((b := _bound_names(s)) and not b & used)]
            if len(kept) != len(body):
                removed = True
                body[:] = kept or [ast.Pass()]
    return removed


def strip_expected(source: str, used_elsewhere: set[str] = frozenset()) -> str:
    """The graded cell's code with every expected value and its computation removed."""
    tree = _DropExpected().visit(ast.parse(source))
    while _remove_dead_stores(tree, set(used_elsewhere)):
        pass
    return ast.unparse(ast.fix_missing_locations(tree))


def is_answer(cell) -> bool:
    meta = nbgrader_meta(cell)
    return cell.cell_type == "code" and bool(meta.get("solution")) and bool(meta.get("grade_id"))


def is_graded(cell) -> bool:
    meta = nbgrader_meta(cell)
    return cell.cell_type == "code" and bool(meta.get("grade")) and bool(meta.get("grade_id"))


def graded_cells(source_nb) -> list[tuple[int, str, float]]:
    """(index, grade_id, points) of every graded code cell of SOURCE."""
    return [(i, nbgrader_meta(c)["grade_id"], float(nbgrader_meta(c).get("points", 0)))
            for i, c in enumerate(source_nb.cells) if is_graded(c)]


def answer_ids(source_nb) -> list[str]:
    return [nbgrader_meta(c)["grade_id"] for c in source_nb.cells if is_answer(c)]


def student_answers(submission_nb, wanted: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """({grade_id: source}, {grade_id: note}) for the answer cells found in a submission.

    A grade_id that is missing is left out (the question is graded as unanswered); one that
    appears several times is taken from its first code cell, and the note says so.
    """
    found: dict[str, list[str]] = {}
    for cell in submission_nb.cells:
        grade_id = nbgrader_meta(cell).get("grade_id") if isinstance(cell, dict) else None
        if grade_id in wanted and cell.get("cell_type") == "code":
            found.setdefault(grade_id, []).append(str(cell.get("source", "")))
    notes = {}
    for grade_id in wanted:
        if grade_id not in found:
            notes[grade_id] = (f"no answer cell with id {grade_id!r} was found in your notebook "
                               "(deleted, or its metadata removed), so it counts as unanswered")
        elif len(found[grade_id]) > 1:
            notes[grade_id] = (f"the answer cell {grade_id!r} appears {len(found[grade_id])} "
                               "times; the first one was graded")
    return {g: sources[0] for g, sources in found.items()}, notes


def _stub(cell) -> str:
    return "\n".join(replace_solutions(cell.source.splitlines(), "code"))


def merged_notebook(source_nb, answers: dict[str, str]):
    """SOURCE with its answer cells replaced by ``answers`` (stubs where missing) and its
    graded cells stripped of expected values; outputs cleared."""
    nb = copy.deepcopy(source_nb)
    loads = _loads_without_expected(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        if is_answer(cell):
            cell.source = answers.get(nbgrader_meta(cell)["grade_id"], _stub(cell))
        elif is_graded(cell):
            elsewhere = set().union(*(v for k, v in loads.items() if k != index))
            cell.source = strip_expected(cell.source, elsewhere)
    return nb


def _loads_without_expected(nb) -> dict[int, set[str]]:
    """{cell index: names it loads} for SOURCE's fixed code cells, expected values dropped."""
    loads = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or is_answer(cell):
            continue
        try:
            loads[index] = _loaded_names(_DropExpected().visit(ast.parse(cell.source)))
        except SyntaxError:  # IPython magics: keep every word it mentions
            loads[index] = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", cell.source))
    return loads


def reference_answers(source_nb) -> dict[str, str]:
    return {nbgrader_meta(c)["grade_id"]: c.source for c in source_nb.cells if is_answer(c)}


def visible_check_names(source_nb) -> set[str]:
    """Check names a student can read in the released exercise (all others are hidden)."""
    exercise = student_version(source_nb)
    return {name for c in exercise.cells if c.cell_type == "code"
            for name in CHECK_NAME.findall(c.source)}


def visible_text(source_nb) -> str:
    return "\n".join(c.source for c in student_version(source_nb).cells)


def read_source(path) -> "nbformat.NotebookNode":
    return nbformat.read(path, as_version=4)
