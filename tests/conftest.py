"""Shared fixtures: the repository root, one strict book build per session, glued values."""

from __future__ import annotations

import ast
import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "_build"
BOOK_FLAGS = ["-W", "-n", "--keep-going"]


def committed_notebooks(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).glob("*.ipynb"))


def full_points(notebook: Path) -> float:
    """Full marks of an exercise notebook, as the grader counts them."""
    import nbformat

    from reglab.grading.merge import graded_cells

    return sum(points for _, _, points in graded_cells(nbformat.read(notebook, as_version=4)))


def jupyter_book() -> str:
    return str(Path(sys.executable).with_name("jupyter-book"))


class BookBuild:
    """The strict book build, started in the background as soon as tests are collected.

    The chapters execute inside this build (it is their execution check); meanwhile pytest
    runs the tests that do not need the book (units, solutions, exercises, the grader) on the
    other core. Tests marked `book` run last and wait for it through `built_book`.
    """

    process: subprocess.Popen | None = None
    result: subprocess.CompletedProcess | None = None

    @classmethod
    def start(cls) -> None:
        if cls.process is not None:
            return
        # jupyter-cache keys on code cells only, so a change to reglab would not re-execute a
        # cached chapter: the cache is emptied first (REGLAB_KEEP_BOOK_CACHE=1 keeps it)
        if os.environ.get("REGLAB_KEEP_BOOK_CACHE") != "1":
            shutil.rmtree(BUILD / ".jupyter_cache", ignore_errors=True)
            shutil.rmtree(BUILD / "jupyter_execute", ignore_errors=True)
        BUILD.mkdir(exist_ok=True)
        cls.log = open(BUILD / "book-build.log", "w+")
        cls.process = subprocess.Popen(
            [jupyter_book(), "build", str(ROOT), *BOOK_FLAGS, "--all"],
            cwd=ROOT, stdout=cls.log, stderr=subprocess.STDOUT, text=True)

    @classmethod
    def wait(cls) -> subprocess.CompletedProcess:
        if cls.result is None:
            cls.start()
            try:
                returncode = cls.process.wait(timeout=1800)
            except subprocess.TimeoutExpired:
                cls.process.kill()
                returncode = cls.process.wait()
            cls.log.seek(0)
            cls.result = subprocess.CompletedProcess(cls.process.args, returncode,
                                                     cls.log.read(), "")
            cls.log.close()
        return cls.result

    @classmethod
    def stop(cls) -> None:
        if cls.process is not None and cls.process.poll() is None:
            cls.process.kill()
            cls.process.wait()


def needs_book(item) -> bool:
    return item.get_closest_marker("book") is not None


def pytest_collection_modifyitems(session, config, items):
    """Tests that need the book last; start building it now if any of them will run."""
    items.sort(key=needs_book)  # stable: the order within each group is kept
    wanted = any(needs_book(item) for item in items) and not config.option.collectonly
    # no early build when the lessons execute their chapters themselves or the browser tests
    # read an existing build; a test that still needs the book starts it through built_book
    if wanted and not (os.environ.get("REGLAB_BOOK_HTML")
                       or os.environ.get("REGLAB_LESSONS_EXECUTE") == "1"):
        BookBuild.start()


def pytest_unconfigure(config):
    BookBuild.stop()  # an interrupted session leaves no build running


@pytest.fixture(scope="session")
def built_book() -> subprocess.CompletedProcess:
    """The session's strict build of the book (every chapter executed afresh)."""
    return BookBuild.wait()


class _NonFinite(ast.NodeTransformer):
    """`inf` and `nan` in a repr (a glued float('inf')) as the constants they stand for."""

    def visit_Name(self, node):
        if node.id in ("inf", "nan"):
            return ast.copy_location(ast.Constant(float(node.id)), node)
        return node


def glued_value(text: str):
    """A glued value from its text/plain repr: a Python literal, where inf and nan may appear."""
    tree = _NonFinite().visit(ast.parse(text, mode="eval"))
    return ast.literal_eval(tree.body)


def glue_values(glue_json: Path) -> dict:
    """{name: value} of every myst-nb `glue` of a chapter, from the build's NAME.glue.json."""
    outputs = json.loads(glue_json.read_text(encoding="utf-8"))
    return {name: glued_value(out["data"]["text/plain"]) for name, out in outputs.items()}


def executed_glue(notebook: str) -> dict:
    """Execute one chapter here (not in the book build) and return what it glued."""
    from myst_nb.ext.glue import extract_glue_data_cell

    from reglab.execute import execute

    nb, _ = execute(ROOT / notebook, timeout=600)
    found = [item for cell in nb.cells if cell.cell_type == "code"
             for item in extract_glue_data_cell(cell)]
    return {name: glued_value(out["data"]["text/plain"]) for name, out in found}


@pytest.fixture(scope="session")
def glued(request):
    """glued("notebooks/01-overfitting.ipynb") -> the values that chapter glued.

    Read from the strict book build; with REGLAB_LESSONS_EXECUTE=1 each chapter asked for
    is executed on its own instead (no book build: for working on one chapter's lessons).
    """
    if os.environ.get("REGLAB_LESSONS_EXECUTE") == "1":
        return functools.cache(executed_glue)
    built_book = request.getfixturevalue("built_book")
    if built_book.returncode != 0:
        pytest.fail("the book build failed; see _build/book-build.log")

    def load(notebook: str) -> dict:
        # myst-nb moves glued values out of the executed notebook into NAME.glue.json
        glue_json = (BUILD / "jupyter_execute" / notebook).with_suffix(".glue.json")
        if not glue_json.exists():
            pytest.fail(f"{glue_json} was not written by the book build")
        return glue_values(glue_json)

    return load


@pytest.fixture(scope="module")
def g(glued, request) -> dict:
    """In a lesson test module: the values its chapter (the module's NOTEBOOK) glued."""
    return glued(request.module.NOTEBOOK)


# --- Debian's Chromium, driven by Playwright (tests/test_browser.py, tests/test_lab.py) -----

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
CHROMIUM = os.environ.get("REGLAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

INSTALL = ("install Chromium with `apt-get install chromium` and the pinned playwright with "
           "`.venv/bin/pip install -r requirements.txt` (no `playwright install` needed)")
MISSING = [what for what, there in (("Chromium", Path(CHROMIUM).is_file()),
                                    ("playwright", sync_playwright)) if not there]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def skip_without_browser() -> None:
    """At a browser test module's top: skip it when Chromium or playwright is missing,
    except under CI (CI=true), where the `browser` fixture then fails instead."""
    if MISSING and not IN_CI:
        pytest.skip(f"browser tests skipped, {' and '.join(MISSING)} missing: {INSTALL}",
                    allow_module_level=True)


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session (Playwright allows one sync driver)."""
    if MISSING:  # only reached under CI, where a missing browser is a failure
        pytest.fail(f"CI: {' and '.join(MISSING)} missing: {INSTALL}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
