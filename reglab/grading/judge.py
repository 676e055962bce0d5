"""Judge a run against the reference run, in the grader's process, on plain data.

A graded cell earns its points only if the student's recordings match the reference's one
to one by name, none carries an error, the cell raised nothing, and :func:`compare` passes
with the REFERENCE's comparator and tolerances. Messages are plain language; for a hidden
test they never show an expected value, and no message repeats text the student's code
produced unless it is a number or a string the released exercise already shows.
"""

from __future__ import annotations

import html

from reglab.checks import compare

HIDDEN_FAILED = "a hidden test with new inputs gave a different result"
KNOWN_ERRORS = {"NameError", "TypeError", "ValueError", "IndexError", "KeyError",
                "AttributeError", "ZeroDivisionError", "NotImplementedError", "RecursionError",
                "MemoryError", "KeyboardInterrupt", "SystemExit", "AssertionError",
                "CheckFailed", "NotAnswered", "CellTimeout", "LinAlgError", "UnboundLocalError"}


def judge_cell(ref: dict, got: dict | None, points: float, hidden: set[str],
               visible_text: str) -> tuple[float, str]:
    """(points earned, plain reason) for one graded cell."""
    if got is None or not got.get("ran"):
        return 0.0, "this test did not run (the notebook stopped before it)"
    if got.get("error"):
        return 0.0, _error_message(got["error"])
    by_name: dict[str, list[dict]] = {}
    for record in got["records"]:
        by_name.setdefault(str(record.get("name")), []).append(record)
    expected_names = {r["name"] for r in ref["records"]}
    extra = [n for n in by_name if n not in expected_names]
    if extra:
        return 0.0, "the test recorded results that no check asked for (was the test changed?)"
    for expected in ref["records"]:
        reason = _check_one(expected, by_name.get(expected["name"], []), hidden, visible_text)
        if reason:
            return 0.0, reason
    return points, "correct"


def _check_one(expected: dict, records: list[dict], hidden: set[str], visible_text: str) -> str:
    name = expected["name"]
    label = "a hidden test" if name in hidden else f"the check {name!r}"
    if not records:
        return f"{label} did not run"
    if len(records) > 1:
        return f"{label} was recorded more than once (was the test changed?)"
    record = records[0]
    if "error" in record or "value" not in record:
        return f"{label}: the result is not a number, an array of numbers or a string"
    try:
        ok, reason = compare(record["value"], expected["value"], expected["how"],
                             expected["rtol"], expected["atol"])
    except Exception:  # a forged recording of an odd shape must not stop the grader
        ok, reason = False, ""
    if ok:
        return ""
    if name in hidden:
        return HIDDEN_FAILED
    return f"{label}: {_safe_reason(record['value'], reason, visible_text)}"


def _safe_reason(got, reason: str, visible_text: str) -> str:
    """compare()'s reason if it can only show a number or text the exercise shows already."""
    shows_value = reason.startswith("got ") and "shape" not in reason
    if not shows_value or isinstance(got, (int, float)) or got is None:
        return reason or "the result differs from the expected one"
    if isinstance(got, str) and len(got) <= 40 and got in visible_text:
        return reason
    return "the result is not the expected answer"


def _error_message(error: dict) -> str:
    name = error.get("ename", "")
    if name == "CellTimeout":
        return "the test ran longer than the time limit and was stopped"
    if name in ("NotImplementedError", "NotAnswered"):
        return "not answered yet"
    if name.endswith("MemoryError"):
        return "the test ran out of memory"
    shown = name if name in KNOWN_ERRORS else "an error"
    return f"the test stopped with {shown} (run your notebook top to bottom to see why)"


def feedback_html(row: dict, questions: list[dict]) -> str:
    """One student's feedback page; every piece of text is escaped."""
    e = html.escape
    rows = "\n".join(f"<tr><td>{e(q['grade_id'])}</td><td>{q['points']:g} / {q['max']:g}</td>"
                     f"<td>{e(q['message'])}</td></tr>" for q in questions)
    note = f"<p>{e(row['reason'])}</p>" if row.get("reason") else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Feedback: {e(row['student'])}</title>
<style>body{{font-family:sans-serif;max-width:50em;margin:2em auto}}
td,th{{border-bottom:1px solid #ccc;padding:.3em .6em;text-align:left}}</style></head>
<body><h1>Feedback for {e(row['student'])}</h1>
<p>Total: <b>{row['total']:g} / {row['max']:g}</b> &middot; status: {e(row['status'])}</p>
{note}
<table><tr><th>Question</th><th>Points</th><th>Message</th></tr>
{rows}
</table></body></html>
"""
