"""The first cell of every notebook: ``reglab.setup(seed)``.

It makes a run repeatable and fast on a small CPU machine, and keeps TensorFlow's start-up
chatter out of notebook outputs (and so out of the HTML book).
"""

from __future__ import annotations

import gc
import os
import random
import sys

import numpy as np

# Set before TensorFlow is imported anywhere; harmless if it never is.
QUIET_TF_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "KERAS_BACKEND": "tensorflow",
}
ONE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

PLOT_STYLE = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 100,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "font.size": 10,
}

LEGEND_SPEED_WARNING = 'Creating legend with loc="best" can be slow'


def quiet_environment() -> None:
    """Set the environment variables that silence TensorFlow and pin BLAS to one thread."""
    for key, value in {**QUIET_TF_ENV, **ONE_THREAD_ENV}.items():
        os.environ.setdefault(key, value)


def limit_threads() -> None:
    """One BLAS thread: on 2 cores, two threads made small MLPs 3-12x slower."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def plot_style() -> None:
    """The course's matplotlib defaults (inline figures in Jupyter and in the book)."""
    import warnings

    import matplotlib

    matplotlib.rcParams.update(PLOT_STYLE)
    # matplotlib warns on stderr when placing a loc="best" legend takes over a second, which
    # happens only on a busy machine: the figure is the same, but the warning would reach the
    # book as stderr output and fail its strict build
    warnings.filterwarnings("ignore", message=LEGEND_SPEED_WARNING, category=UserWarning)


def seed_everything(seed: int, keras: bool = False) -> None:
    """Seed Python and NumPy, and Keras/TensorFlow when ``keras`` is true."""
    random.seed(seed)
    np.random.seed(seed)
    if keras:
        import keras as _keras

        _keras.utils.set_random_seed(seed)


def configure_tensorflow() -> None:
    """One intra-op and one inter-op thread, set before TensorFlow's runtime starts."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # e.g. retracing warnings on stderr would reach the book
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # the runtime was already initialised in this process: keep its setting


def _not_implemented_message(shell, etype, value, tb, tb_offset=None) -> list[str]:
    """A one-line report for an exercise stub, instead of a traceback."""
    while tb.tb_next is not None:
        tb = tb.tb_next
    where = tb.tb_frame.f_code.co_name
    place = "" if where == "<module>" else f"{where}: "
    return [f"\u2717 {place}{value or 'not implemented yet'} -- write your answer in its "
            "answer cell, in place of the `raise NotImplementedError(...)` line"]


def _show_stub_error(shell, etype, value, tb, tb_offset=None) -> list[str]:
    """IPython custom-exception handler: report as an error, with the one-line message."""
    lines = _not_implemented_message(shell, etype, value, tb, tb_offset)
    shell._showtraceback(etype, value, lines)  # publishes the error like any other
    return lines


def short_stub_errors() -> None:
    """In Jupyter, show an unanswered exercise's NotImplementedError as one plain line."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.set_custom_exc((NotImplementedError,), _show_stub_error)


def skip_slow_optional_imports() -> None:
    """jsonschema (imported by the first ``glue``, through nbformat) imports rfc3987_syntax
    if it can, which compiles some 39 grammars (about 1.3 s of CPU in every chapter) for an
    IRI format check no notebook uses; jsonschema treats the module as optional."""
    sys.modules.setdefault("rfc3987_syntax", None)


def setup(seed: int = 0, keras: bool = False) -> None:
    """Prepare a notebook: quiet environment, one thread, plot style, seeds.

    Pass ``keras=True`` in notebooks that build Keras models: TensorFlow is then imported
    here (about 2.5 s), after its environment variables are set.
    """
    quiet_environment()
    skip_slow_optional_imports()
    short_stub_errors()
    limit_threads()
    plot_style()
    if keras:
        configure_tensorflow()
    seed_everything(seed, keras=keras)
    # what the imports so far created (about 570k objects after TensorFlow) is never garbage:
    # out of the collector's sight, each later collection is cheaper (explorer frames ~25%)
    gc.freeze()
