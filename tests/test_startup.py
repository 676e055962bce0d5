import os
import random

import matplotlib
import numpy as np
from threadpoolctl import threadpool_info

import reglab
from reglab.startup import PLOT_STYLE


def test_setup_quiets_tensorflow_and_pins_threads(monkeypatch):
    for key in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(key, raising=False)
    reglab.setup(seed=1)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"
    assert os.environ["OMP_NUM_THREADS"] == "1"
    assert all(pool["num_threads"] == 1 for pool in threadpool_info())


def test_setup_sets_plot_style():
    matplotlib.rcParams["axes.grid"] = False
    reglab.setup(seed=0)
    assert matplotlib.rcParams["axes.grid"] is PLOT_STYLE["axes.grid"]


def test_a_slow_legend_placement_warns_nothing_into_the_book():
    import warnings

    reglab.setup(0)
    with warnings.catch_warnings(record=True) as caught:  # keeps the filters setup installed
        warnings.warn('Creating legend with loc="best" can be slow with large amounts of '
                      'data.', UserWarning)  # matplotlib's words, on a busy machine
        warnings.warn("any other warning", UserWarning)
    assert [str(w.message) for w in caught] == ["any other warning"]


def test_setup_makes_python_and_numpy_repeatable():
    reglab.setup(seed=7)
    first = (random.random(), np.random.rand())
    reglab.setup(seed=7)
    assert (random.random(), np.random.rand()) == first
    reglab.setup(seed=8)
    assert (random.random(), np.random.rand()) != first


def test_stub_errors_are_reported_in_one_line():
    from reglab.startup import _not_implemented_message

    def design_matrix():
        raise NotImplementedError("not implemented yet")

    try:
        design_matrix()
    except NotImplementedError as err:
        lines = _not_implemented_message(None, NotImplementedError, err, err.__traceback__)
    assert len(lines) == 1
    assert lines[0].startswith("\u2717 design_matrix: not implemented yet -- write your answer")
