"""The student's JupyterLab, in Chromium: exercise 02 worked through as a student works it.

A real `jupyter lab` on loopback (a port the system picks, a token, its own config and runtime
folders)
serves a copy of the released exercise. Playwright drives Debian's Chromium through it:
run the blank notebook (the checks say what is missing, without a traceback), type a wrong
answer (the hint names the slip), then the right one, answer a quiz item (saved, graded on
submission), and move an explorer's slider. No request may leave loopback. Screenshots go
to _build/screenshots/lab/. The server is shut down whatever happens.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest
from conftest import BUILD, ROOT, skip_without_browser

pytestmark = [pytest.mark.browser]
skip_without_browser()

NOTEBOOK = "02-l2-weight-decay.ipynb"
SHOTS = BUILD / "screenshots" / "lab"
TIMEOUT_MS = 120_000  # a busy 2-core VM: kernel start, imports, a whole notebook
WRONG = '''def l2_penalty(kernels, lam):
    return float(lam / 2 * sum(np.sum(np.asarray(k) ** 2) for k in kernels))
'''
RIGHT = '''def l2_penalty(kernels, lam):
    return float(lam * sum(np.sum(np.asarray(k, dtype=float) ** 2) for k in kernels))
'''


def server_port(runtime: Path, proc: subprocess.Popen, log: Path) -> int:
    """The port the server really listens on, from the file it writes once it is up.

    Nothing is sent to a port the server has not announced: a port picked in advance can be
    taken meanwhile by a kernel of the book build running beside the tests, and an HTTP
    probe on a kernel's socket garbles that kernel's messages.
    """
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    info = runtime / f"jpserver-{proc.pid}.json"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"jupyter lab exited early:\n{log.read_text()[-3000:]}")
        if info.exists():
            try:
                return int(json.loads(info.read_text())["port"])
            except (ValueError, KeyError):  # written but not yet complete
                pass
        time.sleep(0.5)
    raise AssertionError(f"jupyter lab did not start:\n{log.read_text()[-3000:]}")


def wait_for_server(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"jupyter lab exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"jupyter lab did not answer at {url}:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    """The server and its kernels (one process group): TERM, then KILL after 15 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, browser):
    """(base URL, token) of a JupyterLab serving a copy of the exercise on 127.0.0.1."""
    home = tmp_path_factory.mktemp("lab")
    work = home / "work"
    work.mkdir()
    shutil.copy(ROOT / "exercises" / NOTEBOOK, work / NOTEBOOK)
    token = secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "HOME": str(home)}
    # every cell in the page (JupyterLab 4 otherwise leaves cells out of view out of the DOM)
    settings = home / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    news = home / "settings" / "@jupyterlab" / "apputils-extension"  # no "news?" toast
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    log = home / "lab.log"
    command = [str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser",
               "--ip=127.0.0.1", "--port=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={work}", f"--LabApp.workspaces_dir={home / 'ws'}",
               f"--LabApp.user_settings_dir={home / 'settings'}",
               "--expose-app-in-browser", "--allow-root", "--LabApp.news_url=None",
               "--LabApp.extension_manager=readonly",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=work, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{server_port(home / 'runtime', proc, log)}"
        wait_for_server(f"{base}/api/status?token={token}", proc, log)
        yield base, token
    finally:
        stop(proc)


class Lab:
    """The notebook open in JupyterLab, and what left (or tried to leave) loopback."""

    def __init__(self, page):
        self.page = page
        self.offsite: list[str] = []
        self.errors: list[str] = []

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=SHOTS / f"{name}.png")

    def wait_idle(self) -> None:
        """Until the kernel has nothing queued or running."""
        self.page.wait_for_function("""() => {
          const panel = window.jupyterapp.shell.currentWidget;
          const kernel = panel && panel.sessionContext.session
                         && panel.sessionContext.session.kernel;
          const busy = Array.from(document.querySelectorAll(".jp-InputPrompt"))
                             .some(p => p.textContent.includes("[*]"));
          return kernel && kernel.status === "idle" && !busy;
        }""", timeout=TIMEOUT_MS)
        self.page.wait_for_timeout(300)

    def cell(self, pattern: str):
        """The code cell whose source matches the regular expression."""
        index = self.page.evaluate("""pattern => {
          const cells = window.jupyterapp.shell.currentWidget.content.widgets;
          return cells.findIndex(c => c.model.type === "code"
                                      && new RegExp(pattern, "m").test(c.model.sharedModel.source));
        }""", pattern)
        assert index >= 0, f"no code cell matches {pattern!r}"
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def type_into(self, cell, text: str) -> None:
        """Click into the cell's editor, select everything and type over it."""
        cell.locator(".cm-content").click()
        self.page.keyboard.press("Control+a")
        self.page.keyboard.insert_text(text)  # as pasted: no auto-indent or auto-brackets

    def run(self, cell, then: int = 1) -> None:
        """Shift+Enter on the cell, then on the `then - 1` cells after it."""
        cell.locator(".cm-content").click()
        for _ in range(then):
            self.page.keyboard.press("Shift+Enter")
        self.wait_idle()

    @staticmethod
    def output(cell) -> str:
        return cell.locator(".jp-OutputArea").inner_text()


@pytest.fixture(scope="module")
def notebook(lab, browser):
    base, token = lab
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    session = Lab(page)
    if True:  # keeps the steps below in one block with the context's cleanup

        def route(route):
            if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost") or \
                    urlsplit(route.request.url).scheme in ("data", "blob"):
                route.continue_()
            else:
                session.offsite.append(route.request.url)
                route.abort("blockedbyclient")

        context.route("**/*", route)
        page.on("websocket", lambda ws: urlsplit(ws.url).hostname != "127.0.0.1"
                and session.offsite.append(ws.url))
        page.on("pageerror", lambda exc: session.errors.append(str(exc)))
        try:
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell"
                                   ".currentWidget && window.jupyterapp.shell.currentWidget"
                                   ".sessionContext && window.jupyterapp.shell.currentWidget"
                                   ".sessionContext.session")
            session.wait_idle()
            session.shot("0-opened")
            yield session
        finally:
            context.close()


def test_the_blank_notebook_says_what_is_missing_without_a_traceback(notebook):
    notebook.page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    first_check = notebook.cell(r"^check\(\"l2_penalty of")
    first_check.locator(".jp-OutputArea-output").first.wait_for()
    notebook.wait_idle()
    first_check.scroll_into_view_if_needed()
    notebook.shot("1-run-blank")
    text = notebook.output(first_check)
    assert "not implemented yet" in text and text.lstrip().startswith("\u2717"), text
    outputs = "\n".join(notebook.page.locator(".jp-Notebook .jp-OutputArea").all_inner_texts())
    # one plain line per unanswered check: no traceback, no "NotImplementedError: ..." header
    assert "Traceback" not in outputs and "NotImplementedError:" not in outputs, outputs
    assert outputs.count("not implemented yet") >= 5, outputs


def test_a_wrong_answer_gets_a_hint_that_names_the_slip(notebook):
    answer = notebook.cell(r"^def l2_penalty")
    notebook.type_into(answer, WRONG)
    notebook.run(answer, then=2)  # the answer cell, then its check cell
    check = notebook.cell(r"^check\(\"l2_penalty of")
    check.scroll_into_view_if_needed()
    notebook.shot("2-wrong-answer")
    text = notebook.output(check)
    assert "got 2.75, expected 5.5" in text and "you used lam / 2" in text, text


def test_the_right_answer_passes(notebook):
    answer = notebook.cell(r"^def l2_penalty")
    notebook.type_into(answer, RIGHT)
    notebook.run(answer, then=2)
    check = notebook.cell(r"^check\(\"l2_penalty of")
    check.scroll_into_view_if_needed()
    notebook.shot("3-right-answer")
    text = notebook.output(check)
    assert "\u2713 l2_penalty of [[1, 2], [3, 4]] and [5] with lam = 0.1: correct" in text, text
    assert "\u2717" not in text


def test_a_quiz_item_is_answered_and_saved_without_a_verdict(notebook):
    answer, check = notebook.cell(r"^q1 = None"), notebook.cell(r"^answered\(\"q1\"")
    notebook.type_into(answer, 'q1 = "e"')
    notebook.run(answer, then=2)
    assert "q1: 'e' is not one of the options" in notebook.output(check)
    notebook.type_into(answer, 'q1 = "B"')
    notebook.run(answer, then=2)
    check.scroll_into_view_if_needed()
    notebook.shot("4-quiz")
    text = notebook.output(check)
    # graded on submission: the self-check cannot be used to try every option
    assert "q1 = 'b' saved" in text and "right" not in text and "\u2713" not in text, text


def solution_of(function: str) -> str:
    """The instructor's answer cell that defines `function`, markers removed."""
    nb = nbformat.read(ROOT / "solutions" / NOTEBOOK, as_version=4)
    source = next(c.source for c in nb.cells if c.source.startswith(f"def {function}("))
    return "\n".join(line for line in source.splitlines() if "### " not in line) + "\n"


def test_an_explorer_slider_changes_the_figure(notebook):
    # the exercise's explorer draws the student's ridge_fit (task 4): answer it first
    answer = notebook.cell(r"^def ridge_fit")
    notebook.type_into(answer, solution_of("ridge_fit"))
    notebook.run(answer)
    cell = notebook.cell(r"^(?!#).*\bexplore\(")
    notebook.run(cell)
    live = cell.locator(".reglab-explorer-live")
    live.wait_for()
    image = live.locator("img").first
    image.wait_for()
    before = image.get_attribute("src")
    handle = live.locator(".widget-slider .noUi-handle, .widget-slider input").first
    handle.focus()
    notebook.page.keyboard.press("End")
    notebook.page.wait_for_function("([img, old]) => img.src !== old",
                                    arg=[image.element_handle(), before], timeout=10_000)
    live.scroll_into_view_if_needed()
    notebook.shot("5-explorer")
    assert image.get_attribute("src") != before


def test_nothing_left_loopback_and_no_page_error(notebook):
    assert not notebook.offsite, f"requests off loopback: {json.dumps(notebook.offsite)}"
    assert not notebook.errors, notebook.errors
