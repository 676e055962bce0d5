import pytest

from reglab.quiz import Choice, Question, quiz


def sample():
    return quiz(
        Question("Which <b> penalty gives zeros?",
                 (Choice("L1", True, "corners of the diamond"), Choice("L2", why="it shrinks"))),
        Question("Dropout at inference?", (Choice("off", True, "x"), Choice("on", why="y"))),
    )


def test_each_question_needs_exactly_one_right_choice():
    with pytest.raises(ValueError, match="exactly one correct"):
        Question("?", (Choice("a", True), Choice("b", True)))
    with pytest.raises(ValueError, match="exactly one correct"):
        Question("?", (Choice("a"), Choice("b")))


def test_html_is_deterministic_self_contained_and_escaped():
    page = sample()._repr_html_()
    assert page == sample()._repr_html_()
    assert "http" not in page and " src=" not in page
    assert "Which &lt;b&gt; penalty" in page
    assert page.count('class="reglab-choice"') == 4
    assert page.count('data-correct="1"') == 2
    assert page.count("<script>") == 1
    assert page.count('class="reglab-why"') == 4, "every explanation is in the page"
    assert page.count(" hidden>") == 4, "and hidden until its answer is clicked"
    assert "<p class=\"reglab-why\" data-choice=\"0\" hidden>Right. corners of the diamond</p>" in page


def test_plain_text_lists_questions_and_options():
    text = repr(sample())
    assert "1. Which <b> penalty gives zeros?" in text
    assert "   b) L2" in text
