"""Execute the book's notebooks into its jupyter-cache, two at a time, before the build.

``jupyter-book build`` (myst-nb with ``execute_notebooks: cache``) executes every notebook
missing from the cache one after another, while Sphinx reads the book. A chapter keeps about
one core busy, so on a 2-core machine half of it idles for the length of the nine chapters.
``python -m reglab.book_cache [ROOT] [--processes N]`` executes them first, N at a time, and
stores each in the cache exactly as myst-nb would: the same cache folder, the same execution
(jupyter-cache's ``single_nb_execution`` in the notebook's own folder, with the book's
timeout and error setting) and the same record. The build then finds every chapter cached.

It only warms the cache: a notebook that fails here is left out of it, and the build
executes it again and reports the failure as it always does. ``make book`` and the test
suite's book build both run it first.
"""

from __future__ import annotations

import argparse
import fnmatch
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import yaml

CACHE = Path("_build") / ".jupyter_cache"  # where jupyter-book keeps it, under the root


def toc_files(toc: dict) -> list[str]:
    """Every ``file:`` of a jupyter-book ``_toc.yml``, in reading order (without suffix)."""
    found = [toc["root"]] if "root" in toc else []
    for key in ("parts", "chapters", "sections"):
        for entry in toc.get(key, []):
            if "file" in entry:
                found.append(entry["file"])
            found += toc_files({k: v for k, v in entry.items() if k != "file"})
    return found


def execute_config(root: Path) -> dict:
    """The ``execute:`` section of the book's ``_config.yml``."""
    return (yaml.safe_load((root / "_config.yml").read_text()) or {}).get("execute") or {}


def notebooks_to_execute(root: Path) -> list[Path]:
    """The notebooks the build executes: those in the table of contents, less the
    ``execute.exclude_patterns`` of ``_config.yml``."""
    excluded = execute_config(root).get("exclude_patterns", [])
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    paths = [root / f"{name}.ipynb" for name in toc_files(toc)]
    return [p for p in paths if p.exists() and not any(
        fnmatch.fnmatch(p.relative_to(root).as_posix(), pattern) for pattern in excluded)]


def execution_settings(root: Path) -> dict:
    """myst-nb's execution settings for the book (its defaults where the book sets none)."""
    execute = execute_config(root)
    return {"timeout": execute.get("timeout", 30),
            "allow_errors": bool(execute.get("allow_errors", False))}


def execute_one(path: str, settings: dict) -> tuple[str, str | None, float, str | None]:
    """In a pool process: (path, executed notebook as JSON or None, seconds, error)."""
    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution

    nb = nbformat.read(path, as_version=4)
    result = single_nb_execution(nb, cwd=str(Path(path).parent), meta_override=True,
                                 **settings)
    if result.err is not None:
        return path, None, result.time, f"{type(result.err).__name__}: {result.err}"
    return path, nbformat.writes(nb), result.time, None


def store(cache, path: str, executed: str, seconds: float) -> None:
    """Cache one executed notebook as myst-nb does, and check the build will find it."""
    import nbformat
    from jupyter_cache.base import CacheBundleIn

    uri = cache.add_nb_to_project(path).uri
    cache.cache_notebook_bundle(
        CacheBundleIn(nbformat.reads(executed, as_version=4), uri,
                      data={"execution_seconds": seconds}),
        check_validity=False, overwrite=True)
    cache.match_cache_notebook(nbformat.read(path, as_version=4))  # KeyError if it would not


def warm(root: Path, processes: int = 2) -> int:
    """Execute every notebook the build would that is not cached yet; the failures' count."""
    import nbformat
    from jupyter_cache import get_cache

    cache = get_cache(str(root / CACHE))
    todo = []
    for path in notebooks_to_execute(root):
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            todo.append(str(path))
    settings = execution_settings(root)
    failures = 0
    start = time.monotonic()
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=spawn) as pool:
        running = {pool.submit(execute_one, path, settings): path for path in todo}
        for done in as_completed(running):
            name = Path(running[done]).relative_to(root)
            try:
                path, executed, seconds, error = done.result()
                if not error:
                    store(cache, path, executed, seconds)
            except Exception as err:  # a lost pool process, a cache the build would miss
                error = f"{type(err).__name__}: {err}"
            if error:
                failures += 1
                print(f"{name}: not cached ({error}); the build executes it and reports it",
                      flush=True)
                continue
            print(f"{name}: executed in {seconds:.1f} s and cached", flush=True)
    print(f"{len(todo) - failures} of {len(todo)} notebooks cached in "
          f"{time.monotonic() - start:.1f} s ({processes} at a time)", flush=True)
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reglab.book_cache", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("root", nargs="?", default=".", type=Path)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    warm(args.root.resolve(), args.processes)
    return 0  # failures are the build's to report


if __name__ == "__main__":
    sys.exit(main())
