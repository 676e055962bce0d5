"""Notebook housekeeping: committed notebooks carry no outputs and no execution counts."""

from __future__ import annotations

from pathlib import Path

import nbformat

from reglab.release import render, write_atomically


def has_outputs(nb) -> bool:
    return any(c.cell_type == "code" and (c.outputs or c.execution_count is not None)
               for c in nb.cells)


def strip_outputs(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def clean_notebook(path: Path) -> bool:
    """Strip outputs in place; return True when the file changed."""
    before = path.read_text(encoding="utf-8")
    after = render(strip_outputs(nbformat.reads(before, as_version=4)))
    if after != before:
        write_atomically(path, after)
    return after != before
