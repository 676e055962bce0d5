"""reglab.progress: a bar while a cell trains, nothing left in the saved notebook or the book."""

from __future__ import annotations

import nbformat
import pytest

from reglab.execute import execute
from reglab.progress import TrainingProgress, training_progress


def test_outside_a_kernel_it_counts_and_shows_nothing():
    with training_progress(total=5, what="steps") as bar:
        for _ in range(7):
            bar.advance()
    assert bar.done == 5 and bar.handle is None and bar.bar is None


def test_a_bar_needs_something_to_count():
    with pytest.raises(ValueError, match="total must be positive"):
        TrainingProgress(0)


def test_as_a_keras_callback_it_counts_epochs_over_several_fits():
    import keras
    import numpy as np

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).random((16, 3))
    with training_progress(total=6) as bar:
        for _ in range(2):
            model.fit(x, x.sum(axis=1), epochs=3, verbose=0, callbacks=[bar])
    assert isinstance(bar, keras.callbacks.Callback) and bar.done == 6


def test_in_a_kernel_the_bar_is_a_widget_and_leaves_only_empty_html(tmp_path):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3",
                                                           "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_code_cell(
        "from reglab.progress import training_progress\n"
        "with training_progress(total=3, what='steps') as bar:\n"
        "    kind = type(bar.bar).__name__\n"
        "    for _ in range(3):\n"
        "        bar.advance(note='x')\n"
        "print(kind, bar.done)")]
    path = tmp_path / "progress.ipynb"
    nbformat.write(nb, path)
    done, _ = execute(path)
    outputs = done.cells[0].outputs
    assert outputs[0]["data"] == {"text/html": ""}, outputs  # the bar, replaced at the end
    assert outputs[1]["text"] == "IntProgress 3\n"
    assert len(outputs) == 2
