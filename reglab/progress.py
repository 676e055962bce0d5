"""A progress bar for training cells: live in Jupyter, nothing left in the book.

    with training_progress(total=len(SEEDS) * EPOCHS, what="dropout sweep") as bar:
        for seed in SEEDS:
            model.fit(..., epochs=EPOCHS, verbose=0, callbacks=[bar])

``bar`` is a Keras callback that advances one step per epoch, over as many ``fit`` calls as
the cell makes (``bar.advance()`` counts other work, such as a NumPy loop). In JupyterLab it
is an ipywidgets progress bar with a readout (step, elapsed time, the last losses). When the
block ends the display is replaced by empty HTML, so the executed notebook, and the book built
from it, keep no trace of it; outside a kernel it shows nothing at all.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager


class TrainingProgress:
    """Counts epochs (as a Keras callback) or steps (``advance``) toward ``total``."""

    def __init__(self, total: int, what: str = "training"):
        if total <= 0:
            raise ValueError(f"training_progress: total must be positive, got {total}")
        self.total, self.what, self.done = int(total), what, 0
        self.started = time.perf_counter()
        self.bar = self.text = self.box = self.handle = None

    def show(self) -> None:
        try:
            import ipywidgets as w
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            return
        if get_ipython() is None:  # plain Python: nothing to draw on
            return
        self.bar = w.IntProgress(value=0, min=0, max=self.total, description=self.what,
                                 style={"description_width": "initial"})
        self.text = w.Label("")
        self.box = w.HBox([self.bar, self.text])
        self.handle = display(self.box, display_id=True)

    def advance(self, steps: int = 1, note: str = "") -> None:
        self.done = min(self.done + steps, self.total)
        if self.bar is not None:
            seconds = time.perf_counter() - self.started
            self.bar.value = self.done
            self.text.value = f"{self.done}/{self.total} \u00b7 {seconds:.0f} s" + (
                f" \u00b7 {note}" if note else "")

    def on_epoch_end(self, epoch, logs=None):  # Keras calls this after every epoch
        logs = logs or {}
        note = " \u00b7 ".join(f"{k} {v:.3g}" for k, v in logs.items()
                               if k in ("loss", "val_loss") and isinstance(v, float))
        self.advance(1, note)

    def close(self) -> None:
        if self.handle is not None:  # empty HTML: nothing is left in the saved notebook
            self.handle.update({"text/html": ""}, raw=True)
            for widget in (self.box, self.bar, self.text):
                widget.close()
            self.handle = None


def _keras_progress_class():
    """TrainingProgress as a Keras callback, built only where Keras is already imported (a
    NumPy-only notebook does not pay TensorFlow's import for a progress bar)."""
    if "keras" not in sys.modules:
        return TrainingProgress
    import keras

    class KerasTrainingProgress(TrainingProgress, keras.callbacks.Callback):
        def __init__(self, total: int, what: str = "training"):
            keras.callbacks.Callback.__init__(self)
            TrainingProgress.__init__(self, total, what)

    return KerasTrainingProgress


@contextmanager
def training_progress(total: int, what: str = "training"):
    """A progress bar over ``total`` epochs (or steps) for the duration of the block."""
    progress = _keras_progress_class()(total, what)
    progress.show()
    try:
        yield progress
    finally:
        progress.close()
