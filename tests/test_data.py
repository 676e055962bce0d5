import numpy as np
import pytest

from reglab.data import cubic_target, digits_split, noisy_cubic


def test_noisy_cubic_is_repeatable_and_in_range():
    x, y = noisy_cubic(n=20, noise=0.1, seed=3)
    x2, y2 = noisy_cubic(n=20, noise=0.1, seed=3)
    assert x.shape == y.shape == (20,)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert x.min() >= -1 and x.max() <= 1
    assert np.all(np.diff(x) >= 0)
    residual = y - cubic_target(x)
    assert 0.03 < residual.std() < 0.3


def test_noise_free_cubic_is_the_target():
    x, y = noisy_cubic(n=5, noise=0.0, seed=0)
    np.testing.assert_allclose(y, 1.5 * x**3 - x + 0.3)


def test_digits_split_sizes_scaling_and_disjointness():
    split = digits_split(n_train=300, n_val=500, seed=0)
    assert split.x_train.shape == (300, 64)
    assert split.x_val.shape == (500, 64)
    assert split.x_test.shape == (1797 - 800, 64)
    assert 0.0 <= split.x_train.min() and split.x_train.max() <= 1.0
    assert set(np.unique(split.y_train)) == set(range(10))
    total = len(split.y_train) + len(split.y_val) + len(split.y_test)
    assert total == 1797


def test_digits_split_depends_on_seed():
    a, b = digits_split(seed=0), digits_split(seed=1)
    assert not np.array_equal(a.y_train, b.y_train)
    np.testing.assert_array_equal(a.y_train, digits_split(seed=0).y_train)


def test_digits_split_refuses_an_empty_test_set():
    with pytest.raises(ValueError, match="no test images"):
        digits_split(n_train=1000, n_val=797)
