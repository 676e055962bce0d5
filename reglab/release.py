"""``reglab release``: turn the instructor's notebooks in ``solutions/`` into ``exercises/``.

A solutions notebook carries nbgrader schema-3 metadata on its exercise cells and the
nbgrader markers inside them:

* ``### BEGIN SOLUTION`` / ``### END SOLUTION`` -- replaced in the exercise by a stub. The
  stub is ``raise NotImplementedError("not implemented yet")`` unless the region holds lines
  ``# stub: CODE``, whose CODE becomes the stub (e.g. ``# stub: q1 = None`` for a quiz).
* ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS`` -- removed from the exercise.

Every notebook is validated before anything is written; an error names the file and the
cell, and no exercise is half-written (each file is replaced atomically).
"""

from __future__ import annotations

import copy
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

SOLUTION = ("### BEGIN SOLUTION", "### END SOLUTION")
HIDDEN = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
MARKERS = SOLUTION + HIDDEN
STUB_PREFIX = "# stub:"
DEFAULT_STUB = 'raise NotImplementedError("not implemented yet")'
MARKDOWN_STUB = "YOUR ANSWER HERE"
EXPECTED_FAILURE_TAG = "raises-exception"  # nbval: the unsolved exercise fails here
SCHEMA_VERSION = 3
# The first argument of check(...) / check_choice(...): it names a recording, so it is unique.
CHECK_NAME = re.compile(r"""\bcheck(?:_choice)?\(\s*["']([^"']+)["']""")


class ReleaseError(Exception):
    """One or more problems in solution notebooks; the message lists each with file and cell."""


@dataclass(frozen=True)
class Problem:
    path: Path
    cell: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}: cell {self.cell}: {self.message}"


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def find_regions(lines: list[str], markers: tuple[str, str]) -> list[tuple[int, int]]:
    """Pairs of (begin line, end line) for one kind of marker; raises ValueError if unpaired."""
    begin, end = markers
    regions, start = [], None
    for n, line in enumerate(lines):
        text = line.strip()
        if text == begin:
            if start is not None:
                raise ValueError(f"'{begin}' on line {n + 1} before the previous one was closed")
            start = n
        elif text == end:
            if start is None:
                raise ValueError(f"'{end}' on line {n + 1} without a '{begin}' before it")
            regions.append((start, n))
            start = None
    if start is not None:
        raise ValueError(f"'{begin}' on line {start + 1} has no '{end}'")
    return regions


def loose_marker(lines: list[str]) -> str | None:
    """A comment that looks like a marker but is not exactly one (a typo nbgrader misreads)."""
    for n, line in enumerate(lines):
        text = line.strip()
        if not text.startswith("#"):
            continue
        for marker in MARKERS:
            if marker.split(" ", 1)[1] in text.upper() and text != marker:
                return f"line {n + 1} looks like a marker but is not exactly '{marker}': {text!r}"
    return None


def validate(path: Path, nb) -> list[Problem]:
    problems: list[Problem] = []
    seen_ids: dict[str, int] = {}
    seen_checks: dict[str, int] = {}
    for index, cell in enumerate(nb.cells):
        label = index + 1  # cells are counted from 1, as people count them
        lines = cell.source.splitlines()
        meta = nbgrader_meta(cell)
        for message in validate_cell(lines, meta, cell.cell_type):
            problems.append(Problem(path, label, message))
        for name in CHECK_NAME.findall(cell.source) if cell.cell_type == "code" else []:
            if name in seen_checks:
                problems.append(Problem(path, label, f"check name {name!r} is used twice "
                                                     f"(also cell {seen_checks[name]})"))
            seen_checks.setdefault(name, label)
        grade_id = meta.get("grade_id")
        if grade_id:
            if grade_id in seen_ids:
                problems.append(Problem(path, label, f"duplicate grade_id {grade_id!r} "
                                                     f"(also cell {seen_ids[grade_id]})"))
            seen_ids.setdefault(grade_id, label)
    return problems


def validate_cell(lines: list[str], meta: dict, cell_type: str) -> list[str]:
    messages = []
    loose = loose_marker(lines) if cell_type == "code" else None
    if loose:
        messages.append(loose)
    for markers in (SOLUTION, HIDDEN):
        try:
            regions = find_regions(lines, markers)
        except ValueError as err:
            messages.append(str(err))
            continue
        if regions and markers == SOLUTION and not meta.get("solution"):
            messages.append("has solution markers but metadata nbgrader.solution is not true")
        if regions and markers == HIDDEN and not meta.get("grade"):
            messages.append("has hidden-test markers but metadata nbgrader.grade is not true")
        if regions and cell_type != "code" and markers == HIDDEN:
            messages.append("hidden tests must be in a code cell")
    if meta:
        messages += validate_metadata(meta)
    return messages


def validate_metadata(meta: dict) -> list[str]:
    messages = []
    if meta.get("schema_version") != SCHEMA_VERSION:
        messages.append(f"nbgrader schema_version must be {SCHEMA_VERSION}, "
                        f"found {meta.get('schema_version')!r}")
    grade_id = meta.get("grade_id")
    if (meta.get("grade") or meta.get("solution") or meta.get("locked")) and not grade_id:
        messages.append("nbgrader cell without a grade_id")
    elif grade_id is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", str(grade_id)):
        messages.append(f"grade_id {grade_id!r} may use only letters, digits, '-' and '_'")
    if meta.get("grade"):
        points = meta.get("points")
        if not isinstance(points, (int, float)) or isinstance(points, bool) or points <= 0:
            messages.append(f"graded cell {grade_id!r} needs positive points, found {points!r}")
    return messages


def replace_solutions(lines: list[str], cell_type: str) -> list[str]:
    if cell_type != "code":
        return [MARKDOWN_STUB] if find_regions(lines, SOLUTION) else lines
    out, region = [], None
    for line in lines:
        text = line.strip()
        if text == SOLUTION[0]:
            region = []
            indent = line[: len(line) - len(line.lstrip())]
        elif text == SOLUTION[1]:
            out += stub_lines(region, indent)
            region = None
        elif region is not None:
            region.append(line)
        else:
            out.append(line)
    return out


def stub_lines(region: list[str], indent: str) -> list[str]:
    stubs = [line.strip()[len(STUB_PREFIX):].strip() for line in region
             if line.strip().startswith(STUB_PREFIX)]
    if stubs:
        return [indent + s for s in stubs]
    return [indent + "# YOUR CODE HERE", indent + DEFAULT_STUB]


def remove_hidden(lines: list[str]) -> list[str]:
    out, hidden = [], False
    for line in lines:
        text = line.strip()
        if text == HIDDEN[0]:
            hidden = True
        elif text == HIDDEN[1]:
            hidden = False
        elif not hidden:
            out.append(line)
    while out and not out[-1].strip():
        out.pop()
    return out


def student_version(nb):
    """The exercise notebook for one (validated) solutions notebook."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        lines = cell.source.splitlines()
        lines = replace_solutions(lines, cell.cell_type)
        if cell.cell_type == "code":
            lines = remove_hidden(lines)
            cell.outputs = []
            cell.execution_count = None
            if nbgrader_meta(cell).get("grade"):
                tags = cell.metadata.setdefault("tags", [])
                if EXPECTED_FAILURE_TAG not in tags:
                    tags.append(EXPECTED_FAILURE_TAG)
        cell.source = "\n".join(lines)
    return nb


def read_notebook(path: Path):
    try:
        return nbformat.read(path, as_version=4)
    except Exception as err:  # nbformat raises several unrelated types for bad files
        reason = f"{type(err).__name__}: {err}"
        raise ReleaseError(f"{path}: not a readable notebook ({reason})") from None


def render(nb) -> str:
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build(sources: list[Path], out_dir: Path) -> dict[Path, str]:
    """Validate every source and return {exercise path: text}; raise ReleaseError on problems."""
    if not sources:
        raise ReleaseError("no solution notebooks given")
    problems, results = [], {}
    for path in sources:
        nb = read_notebook(path)
        found = validate(path, nb)
        problems += found
        if not found:
            results[out_dir / path.name] = render(student_version(nb))
    if problems:
        raise ReleaseError("\n".join(str(p) for p in problems))
    return results


def release(sources: list[Path], out_dir: Path) -> list[Path]:
    """Write the exercise notebooks; nothing is written if any source has a problem."""
    results = build(sources, out_dir)
    for path, text in results.items():
        write_atomically(path, text)
    return list(results)


def stale(sources: list[Path], out_dir: Path) -> list[Path]:
    """Exercise notebooks that are missing or differ from what release would write."""
    results = build(sources, out_dir)
    return [p for p, text in results.items()
            if not p.exists() or p.read_text(encoding="utf-8") != text]
