"""The ``reglab`` command line: release exercises, make quiz keys, clean notebooks."""

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
