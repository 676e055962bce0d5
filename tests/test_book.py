"""The strict book build, and the offline HTML it produces."""

import re

import pytest
from conftest import BUILD, ROOT

pytestmark = pytest.mark.book
HTML = BUILD / "html"
CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
PAGES = ["book/intro.html", "book/how-to-use.html", "book/instructor-guide.html",
         *(f"{folder}/{name}.html" for name in CHAPTERS for folder in ("notebooks", "exercises"))]
EXTERNAL = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)=["'](?:https?:)?//""")


def test_strict_build_succeeds_without_warnings(built_book):
    log = built_book.stdout + built_book.stderr
    assert built_book.returncode == 0, log[-4000:]
    warnings = [line for line in log.splitlines() if "WARNING:" in line]  # Sphinx's format
    assert not warnings, warnings


@pytest.mark.parametrize("page", PAGES)
def test_page_is_built_and_loads_nothing_from_another_host(built_book, page):
    text = (HTML / page).read_text(encoding="utf-8")
    assert not EXTERNAL.findall(text), f"{page} loads from another host"


def test_mathjax_is_served_locally(built_book):
    text = (HTML / "notebooks/01-overfitting.html").read_text(encoding="utf-8")
    scripts = re.findall(r'<script[^>]*src="([^"]*mathjax[^"]*)"', text, flags=re.I)
    assert scripts, "no MathJax script on a page with maths"
    for src in scripts:
        assert (HTML / "notebooks" / src.split("?")[0]).resolve().exists(), src


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_has_its_figures_and_its_quiz(built_book, name):
    text = (HTML / f"notebooks/{name}.html").read_text(encoding="utf-8")
    images = re.findall(r'<img[^>]*src="([^"]+)"', text)
    assert len([i for i in images if i.endswith(".png")]) >= 3
    for src in images:
        assert (HTML / "notebooks" / src).resolve().exists(), src
    assert 'class="reglab-quiz mathjax_process"' in text  # typeset by the book's MathJax


@pytest.mark.parametrize("name", CHAPTERS)
def test_exercise_page_is_not_executed(built_book, name):
    text = (HTML / f"exercises/{name}.html").read_text(encoding="utf-8")
    assert "not implemented yet" in text
    assert 'class="cell_output' not in text, "the exercise page shows outputs of a run"


def test_solutions_are_not_published(built_book):
    assert not (HTML / "solutions").exists()
    assert "BEGIN SOLUTION" not in "".join(
        p.read_text(encoding="utf-8") for p in HTML.rglob("*.html"))
