"""``make bench``: time every chapter and exercise solution against its budget, then grading.

Prints a table and exits 1 if any notebook is over its budget or fails. Budgets on 2 CPU
cores: a chapter 60 s, an exercise solution 30 s (kernel start-up included). A chapter's row
also gives the weight of its built page (HTML, explorer frames and images; budget 2 MB),
read from ``_build/html`` (``make bench`` builds the book first). Then grades a generated
class of every exercise with 1 and 2 workers, and the same submissions of exercises 01 and 04
with real nbgrader beside ours (:mod:`reglab.bench_grade`; ``python -m reglab.bench all .
N`` sets N submissions of each kind, ``python -m reglab.bench notebooks`` skips grading).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from reglab.execute import execute

BUDGETS = {"notebooks": 60.0, "solutions": 30.0}
PAGE_BUDGET = 2_000_000  # bytes: a chapter page with its figures and explorer frames
BOOK_HTML = Path("_build/html")


def page_weight(html_root: Path, page: str) -> int:
    """Bytes a reader downloads for a page's own content: its HTML and its local images."""
    text = (html_root / page).read_text(encoding="utf-8")
    images = {src for src in re.findall(r'<img[^>]*src="([^"]+)"', text)
              if not src.startswith("data:")}  # an explorer's frames are in the HTML
    return len(text.encode("utf-8")) + sum(
        (html_root / page).parent.joinpath(src).resolve().stat().st_size for src in images)


def chapter_page_weight(root: Path, folder: str, path: Path) -> int | None:
    """The built page's weight for a chapter, None for a solution or an unbuilt book."""
    page = f"{folder}/{path.stem}.html"
    if folder != "notebooks" or not (root / BOOK_HTML / page).exists():
        return None
    return page_weight(root / BOOK_HTML, page)


def rows(root: Path):
    for folder, budget in BUDGETS.items():
        for path in sorted((root / folder).glob("*.ipynb")):
            try:
                _, seconds = execute(path)
                status = "ok" if seconds <= budget else "OVER BUDGET"
            except Exception as err:  # a failing notebook is a row, not the end of the bench
                seconds, status = float("nan"), f"FAILED ({type(err).__name__})"
            weight = chapter_page_weight(root, folder, path)
            if weight is not None:
                if weight > PAGE_BUDGET and status == "ok":
                    status = "OVER BUDGET"
                status += f"  page {weight / 1e6:.2f} MB"
            yield f"{folder}/{path.name}", seconds, budget, status


def main(part: str = "all", root: str = ".", per_kind: str = "4") -> int:
    print(f"{'notebook':<45} {'seconds':>8} {'budget':>7}  status", flush=True)
    bad = 0
    for name, seconds, budget, status in rows(Path(root)):
        print(f"{name:<45} {seconds:>8.1f} {budget:>7.0f}  {status}", flush=True)
        bad += not status.startswith("ok")
    if part == "all":
        from reglab.bench_grade import bench_all, failed

        bad += len(failed(bench_all(int(per_kind))))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
