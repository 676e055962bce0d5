"""Shared fixtures: the repository root, one strict book build per session, glued values."""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
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

    The chapters execute inside this build (it is their execution check: executed two at a
    time into the build's cache by ``reglab.book_cache``, then read by the build); meanwhile pytest
    runs the tests that do not need the book (units, solutions, exercises, the grader). Tests
    marked `book` run last and wait for it through `built_book`.

    Under pytest-xdist (`make test` runs two workers) each worker collects every test; the
    first to get here starts the one build of the run (claimed with an exclusive file named
    after the run) and any worker can wait for it: the build writes its exit code to a status
    file when it ends. Only the process that owns the run (the xdist controller, or pytest
    itself without xdist) stops a build still running at the end.
    """

    process: subprocess.Popen | None = None  # in the process that started it

    @staticmethod
    def path(what: str) -> Path:
        return BUILD / f"book-build-{os.environ.get('REGLAB_TEST_RUN', 'local')}.{what}"

    @classmethod
    def start(cls) -> None:
        BUILD.mkdir(exist_ok=True)
        try:
            os.close(os.open(cls.path("claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # another worker of this run has started it
        # jupyter-cache keys on code cells only, so a change to reglab would not re-execute a
        # cached chapter: the cache is emptied first (REGLAB_KEEP_BOOK_CACHE=1 keeps it)
        if os.environ.get("REGLAB_KEEP_BOOK_CACHE") != "1":
            shutil.rmtree(BUILD / ".jupyter_cache", ignore_errors=True)
            shutil.rmtree(BUILD / "jupyter_execute", ignore_errors=True)
        # the chapters are executed into the cache two at a time first (reglab.book_cache);
        # the build then reads them from it, and executes and reports any that failed there
        warm = shlex.join([sys.executable, "-m", "reglab.book_cache", str(ROOT)])
        build = shlex.join([jupyter_book(), "build", str(ROOT), *BOOK_FLAGS, "--all"])
        status = shlex.quote(str(cls.path("status")))
        script = (f"{warm} > {shlex.quote(str(BUILD / 'book-cache.log'))} 2>&1; "
                  f"{build} > {shlex.quote(str(BUILD / 'book-build.log'))} 2>&1; "
                  f"echo $? > {status}.part && mv {status}.part {status}")
        cls.process = subprocess.Popen(["sh", "-c", script], cwd=ROOT,
                                       start_new_session=True)
        cls.path("pid").write_text(str(cls.process.pid))

    @classmethod
    def wait(cls, timeout: float = 1800) -> subprocess.CompletedProcess:
        cls.start()  # nothing happens if this run has started it already
        deadline = time.monotonic() + timeout
        status = cls.path("status")
        while not status.exists():
            if time.monotonic() > deadline or not cls.running():
                cls.stop()
                break
            time.sleep(0.5)
        returncode = int(status.read_text()) if status.exists() else -1
        log = (BUILD / "book-build.log").read_text(encoding="utf-8", errors="replace")
        return subprocess.CompletedProcess(["jupyter-book", "build"], returncode, log, "")

    @classmethod
    def running(cls) -> bool:
        """Whether the build may still write its status: claimed, and its shell alive."""
        if cls.process is not None:  # started here: poll, which also reaps it
            return cls.process.poll() is None
        pid = cls.path("pid")
        if not pid.exists():
            return cls.path("claim").exists()  # claimed by a worker still starting it
        try:
            os.kill(int(pid.read_text()), 0)
        except (ValueError, ProcessLookupError):
            return False
        return True

    @classmethod
    def stop(cls) -> None:
        if cls.path("status").exists():
            return  # it has ended (its pid may be another process's by now)
        try:
            os.killpg(int(cls.path("pid").read_text()), signal.SIGKILL)
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            pass

    @classmethod
    def forget(cls) -> None:
        for what in ("claim", "pid", "status"):
            cls.path(what).unlink(missing_ok=True)


def needs_book(item) -> bool:
    return item.get_closest_marker("book") is not None


def is_worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config):
    """The run's name, shared by its xdist workers (they inherit the environment)."""
    if not is_worker(config):
        os.environ["REGLAB_TEST_RUN"] = f"{os.getpid()}-{time.time_ns()}"


def work_unit(nodeid: str) -> str:
    """What one xdist worker runs together: a test module (its module fixtures, such as the
    graded corpus or the JupyterLab server, are built once) or a notebook's cells (one kernel,
    in order); but each exercise's tests alone (they share nothing and are the slowest) and
    every browser check of one page together (one visit)."""
    path, _, rest = nodeid.partition("::")
    if path.endswith("test_exercises.py"):
        return nodeid
    page = re.search(r"\[([^\]]+\.html)\]$", rest)
    if path.endswith("test_browser.py") and page:
        return f"{path}::{page.group(1)}"
    return path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Work units as `work_unit` says, sent in collection order (the book's tests last)."""
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False
    return WorkUnits(config, log)


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
    if not is_worker(config):
        BookBuild.stop()  # an interrupted session leaves no build running
        BookBuild.forget()


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

