"""Kernels forked from the TensorFlow template record exactly what fresh ones do.

The ``tensorflow`` template (:mod:`reglab.grading.fork`) has imported TensorFlow and Keras,
under the environment ``reglab.setup`` sets, without starting TensorFlow's runtime. A kernel
forked from it must behave as one that imports TensorFlow itself (a kernel of the ``plain``
template): ``reglab.setup(keras=True)`` still gets one intra-op and one inter-op thread, Keras
trains, and exercise 04's solution records the same values, bit for bit. The same comparison
over exercises 04 to 08, many times: ``python -m reglab.bench_grade --stress-templates``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest

from reglab.bench_grade import SOLUTIONS, submission_job
from reglab.grading import workers as grade_workers
from reglab.grading.fork import PLAIN, TENSORFLOW, flavour_for
from reglab.grading.grade import Settings, isolated_job

SETTINGS = Settings(seed=1, cell_timeout=60.0, notebook_timeout=300.0)
EXERCISE = SOLUTIONS / "04-dropout.ipynb"


# ---------------------------------------------------------------- which template

@pytest.mark.parametrize("code, flavour", [
    ("import reglab\nreglab.setup(seed=0, keras=True)", TENSORFLOW),
    ("reglab.setup(0, keras = True)", TENSORFLOW),
    ("import tensorflow as tf", TENSORFLOW),
    ("def build():\n    import keras", TENSORFLOW),
    ("from keras import layers", TENSORFLOW),
    ("from tensorflow.keras import layers", TENSORFLOW),
    ("import numpy as np\nreglab.setup(seed=0)", PLAIN),
    ("# import tensorflow", PLAIN),
    ("import tensorflow_datasets", PLAIN),
    ("keras_moving_update(mean, var, x, momentum=0.9)", PLAIN),  # 07: NumPy, named after Keras
])
def test_the_flavour_follows_the_source_code_cells(code, flavour):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("import keras"),
                                         nbformat.v4.new_code_cell(code)])
    assert flavour_for(nb) == flavour


def test_the_exercises_that_build_keras_models_get_the_tensorflow_template():
    flavours = {path.name[:2]: flavour_for(nbformat.read(path, as_version=4))
                for path in sorted(SOLUTIONS.glob("[0-9][0-9]-*.ipynb"))}
    assert {n for n, f in flavours.items() if f == TENSORFLOW} == {"04", "05", "06", "08"}


# ---------------------------------------------------------------- forked kernels

@pytest.fixture(scope="module")
def two_workers():
    """One worker per flavour, so that both run at once (each starts its own template)."""
    workers = {PLAIN: grade_workers.Worker(), TENSORFLOW: grade_workers.Worker()}
    yield workers
    for worker in workers.values():
        worker.kill()


def run_both(workers: dict, notebook, graded: list[int]) -> dict:
    """{flavour: report} of the same notebook in a kernel of each template, side by side."""
    def run(flavour):
        return workers[flavour].run(isolated_job(notebook, graded, SETTINGS, flavour),
                                    deadline=SETTINGS.notebook_timeout + 60)

    with ThreadPoolExecutor(len(workers)) as pool:
        return dict(zip(workers, pool.map(run, workers)))


# the OS threads of the template the kernel was forked from, after the fork (one: a thread that
# is not stopped at a fork, as OpenBLAS's are, would still be there), what TensorFlow read from
# the environment when imported (oneDNN: TF_ENABLE_ONEDNN_OPTS, read once, at import), its
# threads after setup, and the loss of a short fit, bit for bit
SETUP_AND_FIT = """import os, sys
preloaded = "tensorflow" in sys.modules
template_threads = len(os.listdir(f"/proc/{os.getppid()}/task"))
import reglab
reglab.setup(seed=0, keras=True)
import keras, numpy as np, tensorflow as tf
from tensorflow.python.util import _pywrap_util_port
from reglab.checks import check
x = np.random.default_rng(0).random((64, 4)).astype("float32")
y = (x.sum(axis=1) > 2).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(1, activation="sigmoid")])
model.compile("adam", "binary_crossentropy")
loss = model.fit(x, y, epochs=2, batch_size=16, verbose=0).history["loss"][-1]
check("setup", [preloaded, template_threads,
                tf.config.threading.get_intra_op_parallelism_threads(),
                tf.config.threading.get_inter_op_parallelism_threads(),
                bool(_pywrap_util_port.IsMklEnabled()), float(loss)], None, how="exact")
"""


@pytest.mark.notebooks
def test_a_forked_tensorflow_kernel_is_set_up_and_trains_as_a_fresh_one(two_workers):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SETUP_AND_FIT)])
    reports = run_both(two_workers, nb, [0])
    cells = {flavour: report["cells"]["0"] for flavour, report in reports.items()}
    assert all(cell["records"] for cell in cells.values()), cells
    (fresh, *plain), (forked, *tensorflow) = (cells[f]["records"][0]["value"]
                                              for f in (PLAIN, TENSORFLOW))
    assert (fresh, forked) == (False, True)  # TensorFlow imported by the kernel, the template
    assert plain[:4] == [1, 1, 1, False]  # template's threads, intra-op, inter-op; no oneDNN
    assert tensorflow == plain


@pytest.mark.notebooks
def test_exercise_04_records_the_same_in_a_forked_tensorflow_kernel(two_workers):
    nb, graded = submission_job(EXERCISE, EXERCISE.read_text(encoding="utf-8"))
    reports = run_both(two_workers, nb, graded)
    plain, forked = reports[PLAIN], reports[TENSORFLOW]
    assert plain["stopped"] is None and all(plain["cells"][str(i)]["records"] for i in graded)
    assert forked["cells"] == plain["cells"]
