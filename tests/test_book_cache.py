"""reglab.book_cache picks the notebooks the build would execute, and no others."""

from conftest import ROOT

from reglab.book_cache import notebooks_to_execute, toc_files


def test_toc_files_are_read_in_reading_order_from_nested_entries():
    toc = {"root": "intro", "parts": [
        {"caption": "A", "chapters": [{"file": "a", "sections": [{"file": "a1"}]}]},
        {"chapters": [{"file": "b"}]}]}
    assert toc_files(toc) == ["intro", "a", "a1", "b"]


def test_the_chapters_are_executed_and_the_excluded_exercises_are_not():
    chosen = [p.relative_to(ROOT).as_posix() for p in notebooks_to_execute(ROOT)]
    chapters = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert chosen == chapters
