"""Multiple-choice quizzes that work in JupyterLab and in the static HTML book.

``quiz(Question(...), ...)`` returns an object whose HTML is self-contained: the styles and
a few lines of JavaScript are inline, nothing is loaded from another host, and the element
ids are derived from the question text, so re-running a cell gives identical output.
Write maths as ``\\( ... \\)``: MathJax typesets it in JupyterLab, and in the book because the
quiz carries the ``mathjax_process`` class that the book's MathJax configuration looks for.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass, field

STYLE = """
.reglab-quiz{border:1px solid #c8ccd4;border-radius:6px;padding:.6em 1em;margin:.8em 0}
.reglab-quiz-title{font-weight:600;margin:.2em 0 .6em}
.reglab-question{margin:0 0 1em}
.reglab-prompt{margin:.2em 0 .4em}
.reglab-choice{display:block;width:100%;text-align:left;margin:.25em 0;padding:.4em .7em;
 border:1px solid #c8ccd4;border-radius:4px;background:transparent;color:inherit;
 cursor:pointer;font:inherit}
.reglab-choice:hover{border-color:#5a7bbf}
.reglab-choice.reglab-right{border-color:#2e7d32;background:rgba(46,125,50,.12)}
.reglab-choice.reglab-wrong{border-color:#c62828;background:rgba(198,40,40,.10)}
.reglab-feedback{min-height:1.2em}
.reglab-why{margin:.3em 0}
"""

SCRIPT = """
(function () {
  var root = document.getElementById("%(id)s");
  if (!root || root.dataset.ready) { return; }
  root.dataset.ready = "1";
  root.querySelectorAll(".reglab-choice").forEach(function (button) {
    button.addEventListener("click", function () {
      var question = button.closest(".reglab-question");
      question.querySelectorAll(".reglab-choice").forEach(function (b) {
        b.classList.remove("reglab-right", "reglab-wrong");
      });
      button.classList.add(button.dataset.correct === "1" ? "reglab-right" : "reglab-wrong");
      question.querySelectorAll(".reglab-why").forEach(function (p) {
        p.hidden = p.dataset.choice !== button.dataset.choice;
      });
    });
  });
})();
"""


@dataclass(frozen=True)
class Choice:
    text: str
    correct: bool = False
    why: str = ""


@dataclass(frozen=True)
class Question:
    prompt: str
    choices: tuple[Choice, ...] = field(default_factory=tuple)

    def __post_init__(self):
        if sum(c.correct for c in self.choices) != 1:
            raise ValueError(f"question {self.prompt[:60]!r} needs exactly one correct choice")


class Quiz:
    """A group of questions; displays as interactive HTML, prints as plain text."""

    def __init__(self, questions: list[Question], title: str):
        if not questions:
            raise ValueError("a quiz needs at least one question")
        self.questions = list(questions)
        self.title = title
        digest = hashlib.sha1("|".join(q.prompt for q in questions).encode()).hexdigest()
        self.id = f"reglab-quiz-{digest[:10]}"

    def __repr__(self) -> str:
        lines = [self.title]
        for n, q in enumerate(self.questions, 1):
            lines.append(f"{n}. {q.prompt}")
            lines += [f"   {chr(97 + i)}) {c.text}" for i, c in enumerate(q.choices)]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        root = f'<div class="reglab-quiz mathjax_process" id="{self.id}">'
        parts = [f"{root}<style>{STYLE}</style>",
                 f'<p class="reglab-quiz-title">{html.escape(self.title)}</p>']
        for n, q in enumerate(self.questions, 1):
            parts.append('<div class="reglab-question">')
            parts.append(f'<p class="reglab-prompt">{n}. {html.escape(q.prompt)}</p>')
            for i, c in enumerate(q.choices):
                parts.append(
                    f'<button type="button" class="reglab-choice" data-choice="{i}" '
                    f'data-correct="{int(c.correct)}">{html.escape(c.text)}</button>'
                )
            # Every explanation is in the page from the start (so MathJax typesets it with
            # the rest); a click shows the one that belongs to the chosen answer.
            parts.append('<div class="reglab-feedback" aria-live="polite">')
            for i, c in enumerate(q.choices):
                verdict = "Right." if c.correct else "Not quite."
                parts.append(f'<p class="reglab-why" data-choice="{i}" hidden>'
                             f"{verdict} {html.escape(c.why)}</p>")
            parts.append("</div></div>")
        parts.append(f"<script>{SCRIPT % {'id': self.id}}</script></div>")
        return "\n".join(parts)


def quiz(*questions: Question, title: str = "Check your understanding") -> Quiz:
    return Quiz(list(questions), title)
