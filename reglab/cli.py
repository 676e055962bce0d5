"""The ``reglab`` command line: release exercises, grade submissions, make quiz keys, clean
notebooks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reglab import release as rel
from reglab.checks import QUIZ_OPTIONS, answer_key
from reglab.notebooks import clean_notebook


def solution_paths(args_paths: list[str], source_dir: Path) -> list[Path]:
    if args_paths:
        return [Path(p) for p in args_paths]
    return sorted(source_dir.glob("*.ipynb"))


def cmd_release(args) -> int:
    sources = solution_paths(args.notebooks, Path(args.source))
    out = Path(args.out)
    try:
        if args.check:
            stale = rel.stale(sources, out)
            for path in stale:
                print(f"out of date: {path} (run `reglab release`)", file=sys.stderr)
            if not stale:
                print(f"{len(sources)} exercise notebook(s) in sync with {args.source}/")
            return 1 if stale else 0
        written = rel.release(sources, out)
    except rel.ReleaseError as err:
        print(f"reglab release: nothing written.\n{err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_key(args) -> int:
    choice = args.answer.strip().lower()
    if choice not in QUIZ_OPTIONS:
        print(f"reglab key: the answer must be one of {', '.join(QUIZ_OPTIONS)}", file=sys.stderr)
        return 2
    print(answer_key(args.name, choice))
    return 0


def cmd_clean(args) -> int:
    changed = [p for p in args.notebooks if clean_notebook(Path(p))]
    for path in changed:
        print(f"cleaned {path}")
    return 0


def cmd_grade(args) -> int:
    from reglab.grading.grade import GradeError, grade

    try:
        entries = grade(Path(args.source), Path(args.submissions), Path(args.out),
                        workers=args.workers, seed=args.seed, cell_timeout=args.cell_timeout,
                        notebook_timeout=args.notebook_timeout, memory_mb=args.memory_mb,
                        max_megabytes=args.max_megabytes, force=args.force,
                        dask_address=args.dask, progress=not args.quiet)
    except GradeError as err:
        print(f"reglab grade: {err}", file=sys.stderr)
        return 2
    counts = {}
    for entry in entries:
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"{len(entries)} submission(s): {summary or 'none'}; wrote {args.out}/grades.csv")
    return 1 if counts.get("grader-error") else 0


def add_grade_parser(sub) -> None:
    p = sub.add_parser("grade", help="grade a folder of submitted notebooks")
    p.add_argument("source", help="the instructor notebook, e.g. solutions/01-overfitting.ipynb")
    p.add_argument("submissions", help="a folder of .ipynb files, or one folder per student")
    p.add_argument("--out", required=True, help="folder for grades.csv, results, feedback")
    p.add_argument("--workers", type=int, default=None, help="parallel submissions (cores)")
    p.add_argument("--cell-timeout", type=float, default=60.0, help="seconds per cell")
    p.add_argument("--notebook-timeout", type=float, default=600.0,
                   help="seconds per notebook")
    p.add_argument("--memory-mb", type=int, default=4096,
                   help="memory cap for the kernel and every process it starts")
    p.add_argument("--max-megabytes", type=float, default=20.0,
                   help="larger submissions are not read")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the hidden inputs (default: picked once per --out folder)")
    p.add_argument("--force", action="store_true", help="regrade submissions already graded")
    p.add_argument("--dask", metavar="tcp://HOST:PORT", default=None,
                   help="run on an existing Dask cluster instead of local processes")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_grade)


def cmd_gradebook(args) -> int:
    from reglab.grading.gradebook import GradebookError, write_gradebook

    try:
        book, notes = write_gradebook([Path(d) for d in args.grades_dirs], Path(args.out),
                                      fmt=args.format, names=args.assignment_names)
    except GradebookError as err:
        print(f"reglab gradebook: nothing written; {len(err.problems)} problem(s):",
              file=sys.stderr)
        for problem in err.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"reglab gradebook: warning: {note}", file=sys.stderr)
    print(f"wrote {args.out} ({args.format}): {len(book.students)} student(s), "
          f"{len(book.assignments)} assignment(s)")
    return 0


def add_gradebook_parser(sub) -> None:
    p = sub.add_parser("gradebook", help="join the grades folders of a term into one CSV")
    p.add_argument("grades_dirs", nargs="+", metavar="GRADES_DIR",
                   help="output folders of `reglab grade`, one per assignment")
    p.add_argument("--out", required=True, help="the term's CSV file")
    p.add_argument("--format", choices=["plain", "canvas", "moodle"], default="plain",
                   help="plain (default), or a file for Canvas's or Moodle's grade import")
    p.add_argument("--assignment-names", nargs="+", metavar="NAME", default=None,
                   help="one column name per GRADES_DIR, in order (default: folder names)")
    p.set_defaults(run=cmd_gradebook)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="reglab", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("release", help="generate exercises/ from solutions/")
    p.add_argument("notebooks", nargs="*", help="solution notebooks (default: all in --source)")
    p.add_argument("--source", default="solutions", help="folder of solution notebooks")
    p.add_argument("--out", default="exercises", help="folder for the exercise notebooks")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if an exercise is missing or out of date")
    p.set_defaults(run=cmd_release)

    add_grade_parser(sub)
    add_gradebook_parser(sub)

    p = sub.add_parser("key", help="print the answer key a quiz self-check compares against")
    p.add_argument("name", help="the answer variable, e.g. q1")
    p.add_argument("answer", help="the right option, e.g. b")
    p.set_defaults(run=cmd_key)

    p = sub.add_parser("clean", help="remove outputs and execution counts from notebooks")
    p.add_argument("notebooks", nargs="+")
    p.set_defaults(run=cmd_clean)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
