import numpy as np
import pytest

from reglab import checks
from reglab.checks import (RECORD_MIME, CheckFailed, NotAnswered, answer_key, answered, check,
                           check_choice, compare, test_rng, to_plain)


@pytest.fixture
def recorded(monkeypatch):
    """Run checks as under the grader and collect what they publish."""
    published = []
    monkeypatch.setenv(checks.GRADING_ENV, "1")
    monkeypatch.setattr("IPython.display.publish_display_data", published.append)
    return published


class AlwaysEqual:
    def __eq__(self, other):
        return True


def test_right_answer_prints_a_tick(capsys, monkeypatch):
    monkeypatch.delenv(checks.GRADING_ENV, raising=False)
    check("task", np.array([1.0, 2.0]), [1.0, 2.0])
    assert capsys.readouterr().out.strip() == "\u2713 task: correct"


def test_wrong_value_says_what_is_wrong_with_the_hint():
    with pytest.raises(CheckFailed, match=r"task: got 3, expected 2\. look at the sign"):
        check("task", 3.0, 2.0, hint="look at the sign")


def test_wrong_shape_is_named():
    with pytest.raises(CheckFailed, match=r"got shape \(3, 2\), expected shape \(3, 3\)"):
        check("dm", np.zeros((3, 2)), np.zeros((3, 3)))


def test_nan_never_passes():
    with pytest.raises(CheckFailed, match="NaN"):
        check("x", [np.nan], [np.nan])


def test_rigged_eq_is_not_compared_as_itself():
    with pytest.raises(CheckFailed, match="cannot check a value of type AlwaysEqual"):
        check("x", AlwaysEqual(), 1.0)
    ok, _ = compare(AlwaysEqual(), 1.0, how="exact")
    assert not ok


def test_check_failed_is_an_assertion_with_a_short_jupyter_traceback():
    err = CheckFailed("q1: not right")
    assert isinstance(err, AssertionError)
    assert err._render_traceback_() == ["\u2717 q1: not right"]


@pytest.mark.parametrize("how, got, expected, ok", [
    ("exact", "overfit", "overfit", True),
    ("exact", 1, 1.0, False),
    ("allclose", [1.0, 2.0 + 1e-9], [1.0, 2.0], True),
    ("allclose", [1.0, 2.1], [1.0, 2.0], False),
    ("set", [3, 1, 2], [1, 2, 3], True),
    ("set", [1, 2], [1, 2, 3], False),
    ("config", {"name": "dense_7", "units": 4}, {"name": "dense", "units": 4}, True),
    ("config", {"name": "d", "units": 5}, {"name": "d", "units": 4}, False),
])
def test_comparators(how, got, expected, ok):
    assert compare(got, expected, how=how)[0] is ok


def test_unknown_comparator_is_an_error():
    with pytest.raises(ValueError, match="unknown comparator"):
        compare(1, 1, how="fuzzy")


def test_to_plain_converts_numpy_and_keeps_structure():
    value = {"a": np.float32(1.5), "b": (np.arange(3), [np.int64(2)])}
    assert to_plain(value) == {"a": 1.5, "b": [[0, 1, 2], [2]]}
    with pytest.raises(TypeError):
        to_plain(np.array(["x"]))


def test_grading_mode_records_instead_of_comparing(recorded):
    check("task", np.array([1.0, 2.0]), [5.0, 5.0], rtol=1e-6)  # wrong, but only recorded
    (entry,) = recorded
    record = entry[RECORD_MIME]
    assert record == {"name": "task", "how": "allclose", "rtol": 1e-6, "atol": 1e-10,
                      "value": [1.0, 2.0]}


def test_grading_mode_records_unconvertible_values_as_errors(recorded):
    check("task", AlwaysEqual(), 1.0)
    record = recorded[0][RECORD_MIME]
    assert record["value"] is None and "AlwaysEqual" in record["error"]


def test_grading_mode_records_nan_as_an_error(recorded):
    check("task", float("nan"), 1.0)
    assert "NaN" in recorded[0][RECORD_MIME]["error"]


def test_test_rng_uses_the_graders_seed_only_when_grading(monkeypatch):
    monkeypatch.delenv(checks.GRADING_ENV, raising=False)
    monkeypatch.setenv(checks.SEED_ENV, "99")
    fixed = test_rng().random()
    assert fixed == np.random.default_rng(checks.DEFAULT_TEST_SEED).random()
    monkeypatch.setenv(checks.GRADING_ENV, "1")
    assert test_rng().random() == np.random.default_rng(99).random()


def test_quiz_choice_right_wrong_and_unanswered(capsys, monkeypatch):
    monkeypatch.delenv(checks.GRADING_ENV, raising=False)
    key = answer_key("q1", "b")
    check_choice("q1", " B ", key, right="because.")
    assert capsys.readouterr().out.strip() == "\u2713 q1: right. because."
    with pytest.raises(CheckFailed, match="'a' is not right. think again"):
        check_choice("q1", "a", key, wrong="think again")
    with pytest.raises(NotAnswered, match="q1 is not answered yet"):
        check_choice("q1", None, key)
    with pytest.raises(CheckFailed, match="not one of the options"):
        check_choice("q1", "e", key)


def test_quiz_choice_records_the_normalized_answer_when_grading(recorded):
    check_choice("q2", "C", answer_key("q2", "a"))
    assert recorded[0][RECORD_MIME]["value"] == "c"


def test_answer_key_is_salted_by_name():
    assert answer_key("q1", "a") != answer_key("q2", "a")
    assert answer_key("q1", "a") != answer_key("q1", "b")


def test_a_forgotten_return_is_named():
    with pytest.raises(CheckFailed, match="forget to `return`"):
        check("mse", None, 0.5)


@pytest.mark.parametrize("got", ["1.25", True, ["1.0", "2.0"], [[1.0], [1.0, 2.0]]])
def test_strings_booleans_and_ragged_lists_are_not_numbers(got):
    assert not compare(got, 1.25 if not isinstance(got, list) else [1.0, 2.0])[0]


def test_a_graded_quiz_items_visible_check_says_only_that_it_is_answered(capsys, monkeypatch):
    monkeypatch.delenv(checks.GRADING_ENV, raising=False)
    answered("q1", " B ")
    out = capsys.readouterr().out
    assert "q1 = 'b' saved" in out and "right" not in out and "\u2713" not in out
    with pytest.raises(NotAnswered, match="q1 is not answered yet"):
        answered("q1", None)
    with pytest.raises(CheckFailed, match="not one of the options"):
        answered("q1", "e")


def test_the_visible_quiz_check_records_nothing_when_grading(recorded):
    answered("q1", "b")
    assert recorded == []
