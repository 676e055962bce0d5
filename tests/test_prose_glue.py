"""Every number a chapter's prose states is glued from a computed value."""

import re

import nbformat
import pytest
from conftest import ROOT

pytestmark = pytest.mark.book
GLUE_ROLE = re.compile(r"\{glue(?::[a-z]*)?\}`([A-Za-z0-9_]+)")
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_glue_the_prose_uses_is_computed(glued, chapter):
    nb = nbformat.read(chapter, as_version=4)
    used = {name for cell in nb.cells if cell.cell_type == "markdown"
            for name in GLUE_ROLE.findall(cell.source)}
    assert used, "the chapter should state its numbers through glue"
    values = glued(f"notebooks/{chapter.name}")
    assert used <= set(values), f"glued nowhere: {sorted(used - set(values))}"
