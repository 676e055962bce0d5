"""The check / record API used by exercise notebooks.

A test cell calls ``check(name, got, expected)`` (or ``check_choice`` for a quiz answer).

* Outside the grader -- a student self-checking in Jupyter, nbval, or nbgrader -- the call
  compares in the kernel: it prints a one-line confirmation when right and raises
  :class:`CheckFailed` (an ``AssertionError``) with a plain-language message when wrong.
* Under the course's grader (environment variable ``REGLAB_GRADING=1``) the call compares
  nothing. It *records* what the student's code produced, as plain data, in a display output
  of type :data:`RECORD_MIME`. The reference solution is recorded the same way in its own
  clean kernel, and the grader compares the two recordings in its own process with
  :func:`compare`. So no verdict is ever computed by code the student controls.

Hidden tests draw their inputs from :func:`test_rng`, whose seed the grader picks at grading
time (``REGLAB_SEED``); outside the grader the seed is fixed.
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import Any

import numpy as np

GRADING_ENV = "REGLAB_GRADING"
SEED_ENV = "REGLAB_SEED"
RECORD_MIME = "application/vnd.reglab.record+json"
COMPARATORS = ("exact", "allclose", "set", "config")
DEFAULT_TEST_SEED = 2024
QUIZ_OPTIONS = ("a", "b", "c", "d")


class CheckFailed(AssertionError):
    """A wrong answer. Jupyter shows only the message, not a traceback."""

    def _render_traceback_(self) -> list[str]:  # IPython's hook for custom tracebacks
        return [f"\u2717 {self}"]


class NotAnswered(CheckFailed):
    """An answer cell that still holds its placeholder."""


def grading() -> bool:
    """True when the notebook runs under the course's grader."""
    return os.environ.get(GRADING_ENV) == "1"


def test_rng(default_seed: int = DEFAULT_TEST_SEED) -> np.random.Generator:
    """The random generator hidden tests draw inputs from (grader's seed when grading)."""
    seed = int(os.environ.get(SEED_ENV, default_seed)) if grading() else default_seed
    return np.random.default_rng(seed)


test_rng.__test__ = False  # not a pytest test, though its name starts with "test"


def to_plain(value: Any) -> Any:
    """Convert an answer to plain JSON data: numbers, strings, lists, dicts, None.

    Arrays become nested lists, NumPy scalars Python numbers, tuples lists, and objects with
    ``get_config`` (Keras layers and models) their config. Anything else raises TypeError,
    so an object with a rigged ``__eq__`` is never compared as itself.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)) and type(value) in (int, float, bool):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"an array of dtype {value.dtype} is not a numeric answer")
        return value.tolist()
    if type(value) in (list, tuple):
        return [to_plain(v) for v in value]
    if type(value) is dict:
        return {str(k): to_plain(v) for k, v in value.items()}
    if hasattr(value, "get_config") and callable(value.get_config):
        return to_plain(_jsonable_config(value.get_config()))
    if hasattr(value, "numpy") and callable(value.numpy):  # a TensorFlow tensor
        return to_plain(np.asarray(value.numpy()))
    raise TypeError(f"cannot check a value of type {type(value).__name__}")


def _jsonable_config(config: Any) -> Any:
    import json

    return json.loads(json.dumps(config, default=str))


def compare(got: Any, expected: Any, how: str = "allclose", rtol: float = 1e-7,
            atol: float = 1e-10) -> tuple[bool, str]:
    """Compare two plain values; return (passed, reason). Used in-kernel and by the grader."""
    if how not in COMPARATORS:
        raise ValueError(f"unknown comparator {how!r}; use one of {', '.join(COMPARATORS)}")
    if how == "allclose":
        return _compare_allclose(got, expected, rtol, atol)
    if how == "set":
        ok = _as_set(got) == _as_set(expected)
        return ok, "" if ok else "got a different set of items than expected"
    if how == "config":
        ok = _strip_names(got) == _strip_names(expected)
        return ok, "" if ok else "the configuration differs from the expected one"
    ok = type(got) is type(expected) and got == expected
    return ok, "" if ok else f"got {_short(got)}, which is not the expected answer"


def _compare_allclose(got, expected, rtol, atol) -> tuple[bool, str]:
    if got is None:
        return False, "got None: did the function forget to `return` its result?"
    try:
        g = np.asarray(got)
        if g.dtype.kind not in "iuf":  # no strings, booleans or ragged lists posing as numbers
            raise TypeError
        g = g.astype(float)
    except (TypeError, ValueError):
        return False, f"got {_short(got)}, which is not a number or an array of numbers"
    e = np.asarray(expected, dtype=float)
    if g.shape != e.shape:
        return False, f"got shape {g.shape}, expected shape {e.shape}"
    if not np.all(np.isfinite(g)):
        return False, "the result contains NaN or infinity"
    if np.allclose(g, e, rtol=rtol, atol=atol):
        return True, ""
    if g.size == 1:
        return False, f"got {g.item():.6g}, expected {e.item():.6g}"
    worst = float(np.max(np.abs(g - e)))
    return False, f"values differ from the expected ones (largest difference {worst:.3g})"


def _as_set(value) -> set:
    items = value if isinstance(value, list) else [value]
    return {repr(v) for v in items}


def _strip_names(config):
    """Layer and model names are auto-numbered by Keras; they never decide a config check."""
    if isinstance(config, dict):
        return {k: _strip_names(v) for k, v in config.items() if k != "name"}
    if isinstance(config, list):
        return [_strip_names(v) for v in config]
    return config


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def record(name: str, value: Any, how: str, rtol: float, atol: float) -> None:
    """Publish a recording for the grader (only called when grading)."""
    from IPython.display import publish_display_data

    entry: dict[str, Any] = {"name": name, "how": how, "rtol": rtol, "atol": atol}
    try:
        entry["value"] = to_plain(value)
        _reject_non_finite(entry["value"])
    except (TypeError, ValueError) as err:
        entry["value"] = None
        entry["error"] = str(err)
    publish_display_data({RECORD_MIME: entry, "text/plain": f"recorded {name}"})


def _reject_non_finite(value) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("the result is NaN or infinite")
    if isinstance(value, list):
        for v in value:
            _reject_non_finite(v)


def check(name: str, got: Any, expected: Any, *, how: str = "allclose", rtol: float = 1e-7,
          atol: float = 1e-10, hint: str = "") -> None:
    """Check an answer: compare in-kernel, or record it when grading (see module doc)."""
    if got is NotImplemented or got is Ellipsis:
        raise NotAnswered(f"{name}: not implemented yet")
    if grading():
        record(name, got, how, rtol, atol)
        return
    try:
        got_plain = to_plain(got)
    except TypeError as err:
        raise CheckFailed(f"{name}: {err}. {hint}".strip()) from None
    ok, reason = compare(got_plain, to_plain(expected), how, rtol, atol)
    if not ok:
        raise CheckFailed(f"{name}: {reason}. {hint}".strip()) from None
    print(f"\u2713 {name}: correct")


def answer_key(name: str, answer: str) -> str:
    """The salted hash a visible quiz check compares against (so the key is not the answer)."""
    return hashlib.sha256(f"reglab:{name}:{answer}".encode()).hexdigest()[:16]


def normalize_choice(answer: Any) -> str:
    return str(answer).strip().lower()


def _valid_choice(name: str, answer: Any, options: tuple[str, ...]) -> str:
    listed = ", ".join(repr(o) for o in options)
    if answer is None or answer is Ellipsis:
        raise NotAnswered(f"{name} is not answered yet: set {name} to one of {listed}")
    choice = normalize_choice(answer)
    if choice not in options:
        raise CheckFailed(f"{name}: {answer!r} is not one of the options {listed}")
    return choice


def answered(name: str, answer: Any, *, options: tuple[str, ...] = QUIZ_OPTIONS) -> None:
    """The visible check of a graded quiz item: is it answered with one of the options?

    It says nothing about right or wrong. With four options and a verdict on every try, the
    points of a graded quiz would be free, so the verdict is kept for grading: the item's
    :func:`check_choice`, with its key, sits in the check cell's hidden tests, which the
    released exercise does not contain.
    """
    choice = _valid_choice(name, answer, options)
    if not grading():
        print(f"\u2022 {name} = {choice!r} saved. Quiz answers are graded when you submit; "
              "the chapter's own quizzes give instant feedback to practise on.")


def check_choice(name: str, answer: Any, key: str, *, right: str = "", wrong: str = "",
                 options: tuple[str, ...] = QUIZ_OPTIONS) -> None:
    """Check a multiple-choice answer such as ``q1 = "b"`` (in a graded cell's hidden tests).

    ``key`` is :func:`answer_key` of the right option; ``right`` explains why it is right and
    ``wrong`` is a hint that does not give the answer away.
    """
    choice = _valid_choice(name, answer, options)
    if grading():
        record(name, choice, "exact", 0.0, 0.0)
        return
    if answer_key(name, choice) != key:
        raise CheckFailed(f"{name}: {choice!r} is not right. {wrong}".strip())
    print(f"\u2713 {name}: right. {right}".strip())
