"""The strict book build, and the offline HTML it produces."""

import re

import pytest
from conftest import BUILD, ROOT

from reglab.bench import PAGE_BUDGET, page_weight

pytestmark = pytest.mark.book
HTML = BUILD / "html"
CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
PAGES = ["book/intro.html", "book/how-to-use.html", "book/instructor-guide.html",
         "book/grading-on-a-cluster.html",
         "book/glossary.html", "book/references.html",
         *(f"{folder}/{name}.html" for name in CHAPTERS for folder in ("notebooks", "exercises"))]
EXTERNAL = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)=["'](?:https?:)?//""")


def test_strict_build_succeeds_without_warnings(built_book):
    log = built_book.stdout + built_book.stderr
    assert built_book.returncode == 0, log[-4000:]
    warnings = [line for line in log.splitlines() if "WARNING:" in line]  # Sphinx's format
    assert not warnings, warnings


def test_every_chapter_was_executed_once_before_the_build_read_it(built_book):
    """reglab.book_cache executed the chapters into the cache and the build found each one
    there: had the cache's key changed (a myst-nb or jupyter-cache upgrade), every chapter
    would be executed twice, silently."""
    log = built_book.stdout + built_book.stderr
    cached = set(re.findall(r"notebooks/([\w-]+)\.ipynb: Using cached notebook", log))
    assert cached == set(CHAPTERS), sorted(set(CHAPTERS) - cached)
    assert "Executing notebook" not in log


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
    images = [i for i in re.findall(r'<img[^>]*src="([^"]+)"', text)
              if not i.startswith("data:")]  # an explorer's frames are inline
    assert len([i for i in images if i.endswith(".png")]) >= 3
    for src in images:
        assert (HTML / "notebooks" / src).resolve().exists(), src
    assert 'class="reglab-quiz mathjax_process"' in text  # typeset by the book's MathJax


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_has_an_explorer_shown_as_static_html(built_book, name):
    text = (HTML / f"notebooks/{name}.html").read_text(encoding="utf-8")
    assert re.search(r'<div class="reglab-explorer(?: [^"]*)?" id="', text), "no explorer"
    assert re.search(r'<script[^>]*src="[^"]*_static/reglab-explorer\.js', text)
    # the book shows the static rendering: no widget view, no recorded widget state, no
    # widget manager script
    assert "widget-view+json" not in text and "widget-state+json" not in text
    assert "html-manager" not in text and "require.min.js" not in text


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_page_with_its_frames_is_within_budget(built_book, name):
    weight = page_weight(HTML, f"notebooks/{name}.html")
    assert weight <= PAGE_BUDGET, f"{name}: {weight / 1e6:.2f} MB"


@pytest.mark.parametrize("name", CHAPTERS)
def test_exercise_page_is_not_executed(built_book, name):
    text = (HTML / f"exercises/{name}.html").read_text(encoding="utf-8")
    assert "not implemented yet" in text
    assert 'class="cell_output' not in text, "the exercise page shows outputs of a run"


def test_solutions_are_not_published(built_book):
    assert not (HTML / "solutions").exists()
    assert "BEGIN SOLUTION" not in "".join(
        p.read_text(encoding="utf-8") for p in HTML.rglob("*.html"))


# --- The reader's book: bibliography, glossary, animations, download buttons ---------------

BIB = ROOT / "book" / "references.bib"
CITED_WHERE_USED = {  # chapter -> the works whose results it uses and must cite
    "01-overfitting": {"goodfellow2016deep"},
    "02-l2-weight-decay": {"hoerl1970ridge", "krogh1992weightdecay", "loshchilov2019adamw",
                           "goodfellow2016deep"},
    "03-l1-sparsity": {"tibshirani1996lasso", "zou2005elasticnet"},
    "04-dropout": {"srivastava2014dropout", "goodfellow2016deep"},
    "05-early-stopping": {"prechelt1998early", "goodfellow2016deep"},
    "06-data-augmentation": {"bishop1995noise", "simard1992tangent"},
    "07-batch-normalization": {"ioffe2015batchnorm"},
    "08-choosing-and-combining": {"bergstra2012random", "srivastava2014dropout",
                                  "goodfellow2016deep"},
    "09-beyond-the-classics": {"szegedy2016rethinking", "zhang2018mixup", "belkin2019reconciling",
                               "nakkiran2020deep", "nakkiran2021optimal", "muller2019when",
                               "guo2017calibration"},
}
GLOSSARY_TERMS = ["λ", "weight decay", "decoupled weight decay", "L2 penalty", "L1 penalty",
                  "sparsity", "keep probability", "drop probability", "inverted dropout",
                  "running statistics", "momentum (batch normalization)", "early stopping",
                  "patience", "data augmentation", "label-preserving transformation",
                  "capacity", "overfitting", "validation set", "max-norm constraint",
                  "bias–variance trade-off"]
ANIMATED = ["03-l1-sparsity"]  # chapter 01's λ sweep became an explorer


def _words(html: str) -> str:
    """Lower-case letters and digits only: compares titles across HTML, TeX and casing."""
    text = re.sub(r"<[^>]+>", " ", html)
    text = re.sub(r"&#?\w+;", " ", text)
    return re.sub(r"[\W_]", "", text.lower())


def _bib_entries() -> dict[str, list[str]]:
    """{key: [first author's surname, title, year]} of book/references.bib."""
    text = BIB.read_text(encoding="utf-8")
    entries = {}
    for match in re.finditer(r"@\w+\{([^,\s]+),(.*?)\n\}", text, flags=re.DOTALL):
        fields = dict(re.findall(r"^\s*(\w+)\s*=\s*\{(.*)\},?\s*$", match.group(2),
                                 flags=re.MULTILINE))
        assert {"author", "title", "year"} <= set(fields), f"{match.group(1)} is incomplete"
        surname = fields["author"].split(",")[0]
        entries[match.group(1)] = [surname, fields["title"], fields["year"]]
    return entries


def _reference_ids() -> dict[str, str]:
    """{key: HTML id of its entry on the references page}, matched by author, title, year."""
    page = (HTML / "book/references.html").read_text(encoding="utf-8")
    blocks = re.split(r'(?=<div class="citation" id=")', page)[1:]
    by_id = {re.match(r'<div class="citation" id="([^"]+)"', b).group(1): _words(b)
             for b in blocks}
    ids = {}
    for key, parts in _bib_entries().items():
        found = [i for i, words in by_id.items() if all(_words(p) in words for p in parts)]
        if len(found) == 1:
            ids[key] = found[0]
    return ids


def test_references_page_lists_every_work_of_the_bibliography(built_book):
    entries, ids = _bib_entries(), _reference_ids()
    assert len(entries) >= 9
    assert set(ids) == set(entries), f"not listed: {sorted(set(entries) - set(ids))}"
    page = (HTML / "book/references.html").read_text(encoding="utf-8")
    assert page.count('<div class="citation" id="') == len(entries), "an entry is listed twice"


@pytest.mark.parametrize("name", sorted(CITED_WHERE_USED))
def test_chapter_cites_the_papers_whose_results_it_uses(built_book, name):
    ids = _reference_ids()
    text = (HTML / f"notebooks/{name}.html").read_text(encoding="utf-8")
    linked = set(re.findall(r'href="\.\./book/references\.html#([^"]+)"', text))
    cited = {key for key, anchor in ids.items() if anchor in linked}
    missing = CITED_WHERE_USED[name] - cited
    assert not missing, f"{name} does not cite {sorted(missing)}"


def test_glossary_defines_the_terms_with_their_conventions(built_book):
    page = (HTML / "book/glossary.html").read_text(encoding="utf-8")
    terms = [_words(t) for t in re.findall(r'<dt id="term-[^"]*">(.*?)</dt>', page,
                                             flags=re.DOTALL)]
    for term in GLOSSARY_TERMS:
        assert _words(term) in terms, f"the glossary does not define {term!r}"
    # the two conventions learners trip on are stated where the terms are defined
    assert "Dropout(rate)" in page and "0.99" in page


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_links_its_terms_to_the_glossary(built_book, name):
    text = (HTML / f"notebooks/{name}.html").read_text(encoding="utf-8")
    anchors = re.findall(r'href="\.\./book/glossary\.html#(term-[^"]+)"', text)
    assert len(set(anchors)) >= 3, f"{name} links only {sorted(set(anchors))}"
    glossary = (HTML / "book/glossary.html").read_text(encoding="utf-8")
    for anchor in set(anchors):
        assert f'id="{anchor}"' in glossary, anchor


@pytest.mark.parametrize("name", ANIMATED)
def test_animation_plays_in_the_static_page(built_book, name):
    text = (HTML / f"notebooks/{name}.html").read_text(encoding="utf-8")
    # matplotlib's to_jshtml: a player whose frames are inline PNGs, so it plays offline
    assert "new Animation(frames" in text, f"{name} has no to_jshtml animation"
    frames = re.findall(r'frames\[\d+\] = "data:image/png;base64,', text)
    assert 15 <= len(frames) <= 40, f"{len(frames)} frames"


@pytest.mark.parametrize("page", [f"{folder}/{name}.html" for name in CHAPTERS
                                  for folder in ("notebooks", "exercises")])
def test_page_offers_its_notebook_for_download(built_book, page):
    text = (HTML / page).read_text(encoding="utf-8")
    links = re.findall(r'<a href="([^"]+\.ipynb)"[^>]*class="[^"]*btn-download', text)
    assert links, f"{page} has no .ipynb download button"
    target = (HTML / page).parent / links[0]
    assert target.resolve().is_file(), links[0]
    assert target.resolve().parent.parent == (HTML / "_sources").resolve()
    assert target.name == page.split("/")[-1].replace(".html", ".ipynb")
    if page.startswith("exercises/"):  # the student notebook, not a solution
        source = target.read_text(encoding="utf-8")
        assert "BEGIN SOLUTION" not in source and "NotImplementedError" in source


def test_lambda_sweep_animation_shows_the_u_its_prose_describes(glued):
    g = glued("notebooks/01-overfitting.ipynb")
    assert g["lam_anim_min"] < g["lam_anim_best_lam"] < g["lam_anim_max"], "best at an end"
    assert g["lam_anim_best_val"] < g["lam_anim_val_first"] / 100
    assert g["lam_anim_best_val"] < g["lam_anim_val_last"] / 2
    assert g["lam_anim_train_rises"]
    assert 20 <= g["lam_anim_n"] <= 30


def test_weights_animation_l1_has_exact_zeros_and_l2_has_none(glued):
    g = glued("notebooks/03-l1-sparsity.ipynb")
    assert g["anim_l1_zeros"] >= 0.8 * g["sp_n_irrelevant"]
    assert g["anim_l2_zeros"] == 0
    assert g["anim_l1_irrelevant_max"] < g["anim_l2_irrelevant_max"]
