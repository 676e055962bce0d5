"""The built book in a real browser: Debian's Chromium, headless, driven by Playwright.

The HTML is served on loopback and every request to any other host is blocked, so a page
that needs the network fails here as it would for a reader offline. For every page in
_toc.yml (plus the search, index and landing pages): no console error and no failed
request, the maths typeset by MathJax, every image loaded, the quizzes answer a click, and
every explorer's controls switch its frame (in at most 100 ms) with no request off the page.
A screenshot of each chapter goes to _build/screenshots/: its first screen, as a reader
arriving sees it, or the whole page with REGLAB_FULL_SCREENSHOTS=1 (a chapter is 30,000 to
40,000 pixels tall, and drawing it took about 5 s of a 10 s visit).

Needs Chromium (`apt-get install chromium`) and the `playwright` pip package (in
requirements.txt; its own browser download is not used). Without them the module is
skipped, except under CI (CI=true), where that is a failure.
REGLAB_BOOK_HTML=path/to/html tests an existing build instead of building the book.
"""

from __future__ import annotations

import functools
import http.server
import os
import posixpath
import re
import shutil
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from conftest import BUILD, ROOT, skip_without_browser

pytestmark = [pytest.mark.book, pytest.mark.browser]

skip_without_browser()

SCREENSHOTS = BUILD / "screenshots"
TIMEOUT_MS = 60_000  # the CI machine is a busy 2-core VM
QUIET_MS = 500  # the network is settled once no request has been in flight for this long
SCREENSHOT_TIMEOUT_MS = 120_000  # a 40,000-pixel page on a busy 2-core machine
FULL_SCREENSHOTS = os.environ.get("REGLAB_FULL_SCREENSHOTS") == "1"


def toc_pages() -> list[str]:
    """Every page of _toc.yml as its HTML path: root, then parts, chapters and sections."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    walk(toc.get("sections"))
    return [f"{Path(p).with_suffix('')}.html" for p in pages]


PAGES = toc_pages()
EXTRA_PAGES = ["index.html", "search.html", "genindex.html"]  # Sphinx's own pages
CHAPTERS = [p for p in PAGES if p.startswith("notebooks/")]


@pytest.fixture(scope="session")
def book_html(request) -> Path:
    """The built HTML: REGLAB_BOOK_HTML if set, else the session's strict build."""
    if os.environ.get("REGLAB_BOOK_HTML"):
        html = Path(os.environ["REGLAB_BOOK_HTML"]).resolve()
    else:
        request.getfixturevalue("built_book")
        html = BUILD / "html"
    if not (html / "index.html").exists():
        pytest.fail(f"no built book at {html}; see _build/book-build.log")
    return html


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def server(book_html):
    """A threaded static server for the book on 127.0.0.1 (a free port)."""
    handler = functools.partial(_QuietHandler, directory=str(book_html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@dataclass
class Visit:
    """What one page did in the browser."""
    errors: list[str] = field(default_factory=list)   # console errors, uncaught exceptions
    failed: list[str] = field(default_factory=list)   # failed, blocked or 4xx/5xx requests
    maths: dict = field(default_factory=dict)
    images: list[dict] = field(default_factory=list)
    quizzes: list[dict] = field(default_factory=list)
    explorers: list[dict] = field(default_factory=list)
    broken: str = ""  # the visit itself failed (a timeout, say): no check may pass
    inflight: dict = field(default_factory=dict, repr=False)  # request -> URL, not finished


def redirect_target(book_html: Path, path: str) -> str | None:
    """Where a page's <meta http-equiv="refresh"> sends the reader (index.html), if any."""
    text = (book_html / path).read_text("utf-8")
    found = re.search(r'http-equiv="refresh"[^>]*url=([^"]+)"', text, re.IGNORECASE)
    return found and posixpath.normpath(posixpath.join(posixpath.dirname(path), found[1]))


def open_page(browser, server: str, path: str, visit: Visit, redirect: str | None = None):
    """A fresh context and page at server/path; records errors and blocks other hosts."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    local = urlsplit(server).netloc

    def route(route):
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).netloc == local:
            route.continue_()
        else:
            visit.failed.append(f"blocked request to another host: {url}")
            route.abort("blockedbyclient")

    try:
        context.route("**/*", route)
        page = context.new_page()
        page.on("console", lambda msg: msg.type == "error" and visit.errors.append(
            f"console error: {msg.text} ({msg.location.get('url', '')}:"
            f"{msg.location.get('lineNumber', '')})"))
        page.on("pageerror", lambda exc: visit.errors.append(f"uncaught: {exc}"))
        page.on("request", lambda req: visit.inflight.__setitem__(req, req.url))
        page.on("requestfinished", lambda req: visit.inflight.pop(req, None))
        page.on("requestfailed", lambda req: visit.inflight.pop(req, None))
        page.on("requestfailed", lambda req: urlsplit(req.url).netloc == local
                and visit.failed.append(f"failed request: {req.url} ({req.failure})"))
        page.on("response", lambda resp: resp.status >= 400
                and visit.failed.append(f"HTTP {resp.status}: {resp.url}"))
        page.goto(f"{server}/{path}", wait_until="load")
        if redirect:  # index.html: on to the root page
            page.wait_for_url(f"{server}/{redirect}", wait_until="load")
    except Exception:
        context.close()
        raise
    return context, page


def settle(page, visit: Visit) -> None:
    """Wait until none of the page's requests has been in flight for QUIET_MS.

    Playwright's own "networkidle" state is not used: it sometimes never arrives even with
    no request outstanding, which made a page time out now and then. A request still
    unfinished after TIMEOUT_MS is recorded as a failed request, with its URL.
    """
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < QUIET_MS / 1000:
        if time.monotonic() > deadline:
            visit.failed.extend(f"request unfinished after {TIMEOUT_MS // 1000} s: {url}"
                                for url in visit.inflight.values())
            return
        page.wait_for_timeout(100)  # lets Playwright deliver the request events
        if visit.inflight:
            quiet_since = time.monotonic()


WAIT_FOR_MATHJAX = """async () => {
  if (!document.querySelector('script[src*="mathjax" i]')) return null;
  const t0 = Date.now();
  while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
    if (Date.now() - t0 > 15000) return false;
    await new Promise(r => setTimeout(r, 50));
  }
  await MathJax.startup.promise;
  return true;
}"""

# Maths is left as raw TeX where MathJax did not run: look in the article's text, not in
# code (pre/code), scripts or styles.
MATHS_STATE = r"""() => {
  const article = document.querySelector("article") || document.body;
  const copy = article.cloneNode(true);
  copy.querySelectorAll("pre, code, script, style, mjx-container, .highlight")
      .forEach(e => e.remove());
  const text = copy.textContent;
  // display maths wider than its column scrolls sideways at the test's 1280px
  const wide = Array.from(document.querySelectorAll('article mjx-container[display="true"]'))
    .filter(m => m.scrollWidth > m.clientWidth + 2
                 || m.getBoundingClientRect().right > article.getBoundingClientRect().right)
    .map(m => m.textContent.slice(0, 60));
  return {
    mjx: document.querySelectorAll("article mjx-container").length,
    raw: ["$$", "\\(", "\\)", "\\[", "\\]"].filter(d => text.includes(d)),
    wide: wide,
  };
}"""

# Scroll to the end (for anything lazy), force eager loading, and wait for each image.
IMAGES_STATE = """async () => {
  for (let y = 0; y < document.body.scrollHeight; y += window.innerHeight) {
    window.scrollTo(0, y);
    await new Promise(r => requestAnimationFrame(r));
  }
  window.scrollTo(0, 0);
  const images = Array.from(document.images);
  images.forEach(img => { img.loading = "eager"; });
  await Promise.all(images.map(img => img.complete ? null : new Promise(r => {
    img.addEventListener("load", r, {once: true});
    img.addEventListener("error", r, {once: true});
    setTimeout(r, 10000);
  })));
  return images.map(img => ({src: img.currentSrc || img.src, complete: img.complete,
                             width: img.naturalWidth, visible: img.offsetParent !== null}));
}"""


def try_quizzes(page) -> list[dict]:
    """Click a wrong and then the right choice of each quiz's first question."""
    results = []
    for n, quiz in enumerate(page.locator(".reglab-quiz").all()):
        question = quiz.locator(".reglab-question").first
        result = {"quiz": n}
        for correct, verdict in (("0", "Not quite."), ("1", "Right.")):
            choice = question.locator(f'.reglab-choice[data-correct="{correct}"]').first
            if correct == "0" and choice.count() == 0:
                continue
            choice.scroll_into_view_if_needed()
            choice.click()
            why = question.locator(".reglab-why:visible")
            result[verdict] = {
                "class": choice.get_attribute("class"),
                "feedback": why.first.inner_text() if why.count() == 1 else None,
                "shown": why.count(),
            }
        results.append(result)
    return results


# One explorer's state as the reader sees it: the frame number, the picture, the readouts.
EXPLORER_STATE = """root => ({
  frame: root.dataset.frame, ready: root.dataset.ready === "1",
  src: root.querySelector("img.reglab-explorer-frame").src,
  readouts: Array.from(root.querySelectorAll("output")).map(o => o.textContent),
  playing: (root.querySelector(".reglab-explorer-player") || {dataset: {}}).dataset.playing,
})"""

# How long a switch takes: from the input event until the new frame is decoded and shown.
SWITCH_MS = """async (el) => {
  const img = el.closest(".reglab-explorer").querySelector("img.reglab-explorer-frame");
  const kind = el.tagName === "SELECT" ? "change" : "input";
  const was = el.value;
  const t0 = performance.now();
  el.value = String((Number(el.value) + 1) % (Number(el.max || el.options.length - 1) + 1));
  el.dispatchEvent(new Event(kind, {bubbles: true}));
  await img.decode();
  await new Promise(r => requestAnimationFrame(r));
  const took = performance.now() - t0;
  el.value = was;  // back where the reader left it
  el.dispatchEvent(new Event(kind, {bubbles: true}));
  return took;
}"""


EXPLORER_ROOT = re.compile(r'<div class="reglab-explorer(?: [^"]*)?" id="')


def try_explorers(page) -> list[dict]:
    """Move every control of every explorer as a reader would; record what changed."""
    results = []
    for n, root in enumerate(page.locator(".reglab-explorer").all()):
        root.scroll_into_view_if_needed()
        state = root.evaluate(EXPLORER_STATE)
        result = {"explorer": n, "ready": state["ready"], "moves": [], "switch_ms": []}
        for control in root.locator("input[type=range], select[data-control]").all():
            result["moves"].append(move_control(root, control))
            result["switch_ms"].append(control.evaluate(SWITCH_MS))
        player = root.locator(".reglab-explorer-player")
        if player.count():
            result["player"] = try_player(root, player)
        results.append(result)
    return results


def move_control(root, control) -> dict:
    """Set the control to other values (its last, its first, its middle) until the picture
    changes: some settings legitimately share a picture (a run that stopped early)."""
    select = control.evaluate("el => el.tagName") == "SELECT"
    if select:
        values = [o.get_attribute("value") for o in control.locator("option").all()]
    else:
        values = [str(v) for v in range(int(control.get_attribute("max")) + 1)]
    current = control.input_value()
    moved = {"changed": False, "readout": select}
    for value in dict.fromkeys([values[-1], values[0], values[len(values) // 2]]):
        if value == current:
            continue
        before = root.evaluate(EXPLORER_STATE)
        control.select_option(value) if select else control.fill(value)
        after = root.evaluate(EXPLORER_STATE)
        moved["readout"] |= after["readouts"] != before["readouts"]
        if after["src"] != before["src"] and after["frame"] != before["frame"]:
            moved["changed"] = True
            break
    return moved


def try_player(root, player) -> dict:
    """Restart, step forward and back, play then pause: the control bar of a player."""
    button = {action: player.locator(f'button[data-action="{action}"]')
              for action in ("restart", "back", "play", "forward")}
    scrub = player.locator("input[type=range]")
    button["restart"].click()
    at_start = scrub.input_value()
    button["forward"].click()
    button["forward"].click()
    stepped = scrub.input_value()
    button["back"].click()
    back = scrub.input_value()
    button["restart"].click()
    button["play"].click()
    playing = root.evaluate(EXPLORER_STATE)["playing"]
    root.page.wait_for_function("el => Number(el.value) >= 2", arg=scrub.element_handle(),
                                timeout=TIMEOUT_MS)
    button["play"].click()
    paused_at = scrub.input_value()
    root.page.wait_for_timeout(600)
    return {"at_start": at_start, "stepped": stepped, "back": back, "playing": playing,
            "advanced": int(paused_at) >= 2, "paused": scrub.input_value() == paused_at
            and root.evaluate(EXPLORER_STATE)["playing"] == "0"}


@pytest.fixture(scope="session")
def visited(browser, server, book_html):
    """visited(path) -> Visit: each page is opened once and checked in every way."""
    cache: dict[str, Visit] = {}

    def visit(path: str) -> Visit:
        if path in cache:
            if cache[path].broken:
                pytest.fail(f"the visit of {path} failed: {cache[path].broken}", pytrace=False)
            return cache[path]
        result = cache[path] = Visit()
        if not (book_html / path).exists():
            result.failed.append(f"{path} was not built")
            return result
        redirect = redirect_target(book_html, path)
        context = None
        try:
            context, page = open_page(browser, server, path, result, redirect)
            result.maths["typeset"] = page.evaluate(WAIT_FOR_MATHJAX)
            result.maths.update(page.evaluate(MATHS_STATE))
            result.images = page.evaluate(IMAGES_STATE)
            result.quizzes = try_quizzes(page)
            result.explorers = try_explorers(page)
            settle(page, result)
            if path in CHAPTERS:  # from the top, so the sticky header and sidebars are there
                page.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=SCREENSHOTS / f"{Path(path).stem}.png",
                                full_page=FULL_SCREENSHOTS, timeout=SCREENSHOT_TIMEOUT_MS)
        except Exception as exc:
            result.broken = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if context:
                context.close()
        return result

    return visit


def has_maths(html: Path) -> bool:
    """Whether the built page has maths for MathJax (Sphinx math nodes or a quiz's TeX)."""
    text = html.read_text(encoding="utf-8")
    article = text[text.find("<article"):text.rfind("</article>")]
    return 'class="math notranslate' in article or "mathjax_process" in article


def test_every_built_page_is_covered(book_html):
    built = {p.relative_to(book_html).as_posix() for p in book_html.rglob("*.html")
             if p.relative_to(book_html).parts[0] not in ("_static", "_sources", "_images")}
    assert built - set(PAGES) - set(EXTRA_PAGES) == set()
    assert set(PAGES) <= built, f"pages of _toc.yml not built: {set(PAGES) - built}"


@pytest.mark.parametrize("path", PAGES + EXTRA_PAGES)
def test_page_loads_without_errors(visited, path):
    visit = visited(path)
    if visit.failed or visit.errors:
        pytest.fail("\n".join(visit.failed + visit.errors), pytrace=False)


@pytest.mark.parametrize("path", PAGES)
def test_maths_is_typeset(visited, book_html, path):
    visit = visited(path)
    if not has_maths(book_html / path):
        return
    assert visit.maths.get("typeset"), "MathJax did not start"
    assert visit.maths["mjx"] > 0, "no typeset maths (mjx-container) on a page with maths"
    assert not visit.maths["raw"], f"raw TeX left in the text: {visit.maths['raw']}"
    assert not visit.maths["wide"], (
        f"display maths wider than the column at 1280px (split it): {visit.maths['wide']}")


@pytest.mark.parametrize("path", PAGES)
def test_every_image_is_loaded(visited, path):
    visit = visited(path)
    broken = [i["src"] for i in visit.images if not (i["complete"] and i["width"] > 0)]
    assert not broken, f"images that did not load: {broken}"


@pytest.mark.parametrize("path", PAGES)
def test_quizzes_answer_a_click(visited, book_html, path):
    visit = visited(path)
    in_html = len(re.findall(r'class="reglab-quiz[ "]', (book_html / path).read_text("utf-8")))
    assert len(visit.quizzes) == in_html
    for quiz in visit.quizzes:
        right = quiz["Right."]
        assert "reglab-right" in right["class"], quiz
        assert right["shown"] == 1 and right["feedback"].startswith("Right."), quiz
        if "Not quite." in quiz:
            wrong = quiz["Not quite."]
            assert "reglab-wrong" in wrong["class"], quiz
            assert wrong["shown"] == 1 and wrong["feedback"].startswith("Not quite."), quiz


@pytest.mark.parametrize("path", PAGES)
def test_explorers_answer_every_control(visited, book_html, path):
    visit = visited(path)
    in_html = len(EXPLORER_ROOT.findall((book_html / path).read_text("utf-8")))
    assert len(visit.explorers) == in_html
    if path in CHAPTERS:
        assert in_html >= 1, "every chapter has an explorer"
    for explorer in visit.explorers:
        assert explorer["ready"], f"explorer {explorer['explorer']}: the script did not run"
        assert explorer["moves"], f"explorer {explorer['explorer']} has no control"
        for k, move in enumerate(explorer["moves"]):
            assert move["changed"], f"explorer {explorer['explorer']}, control {k}: no new frame"
            assert move["readout"], f"explorer {explorer['explorer']}, control {k}: no readout"
        # the median: one switch on a busy machine (the suite runs two browsers beside other
        # work) may take longer without the page being slow; make bench is for timings
        typical = statistics.median(explorer["switch_ms"])
        assert typical <= 100, (f"explorer {explorer['explorer']}: switches took {typical:.0f} "
                                f"ms (median of {explorer['switch_ms']})")
        if "player" in explorer:
            player = explorer["player"]
            assert (player["at_start"], player["stepped"], player["back"]) == ("0", "2", "1")
            assert player["playing"] == "1" and player["advanced"] and player["paused"], player


@pytest.mark.parametrize("path", CHAPTERS)
def test_chapter_has_figures_and_a_screenshot(visited, path):
    visit = visited(path)
    assert len([i for i in visit.images if i["width"] > 0]) >= 3, path
    assert (SCREENSHOTS / f"{Path(path).stem}.png").stat().st_size > 10_000, path


def test_search_finds_dropout(browser, server):
    visit = Visit()
    context, page = open_page(browser, server, "search.html?q=dropout", visit)
    try:
        page.wait_for_selector("#search-results ul.search li", timeout=TIMEOUT_MS)
        page.wait_for_function(
            "() => !document.querySelector('#search-progress')"
            " || !/Preparing|Searching/.test(document.querySelector('#search-progress')"
            ".textContent)", timeout=TIMEOUT_MS)
        links = page.eval_on_selector_all(
            "#search-results ul.search li a", "as => as.map(a => a.getAttribute('href'))")
    finally:
        context.close()
    assert links, "no search results for 'dropout'"
    assert any("notebooks/04-dropout" in link for link in links), links
    if visit.failed or visit.errors:
        pytest.fail("\n".join(visit.failed + visit.errors), pytrace=False)
