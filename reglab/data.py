"""Data sets for the course: scikit-learn's bundled sets or generated, never downloaded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def cubic_target(x: np.ndarray) -> np.ndarray:
    """The smooth function behind the polynomial-fitting examples: 1.5x^3 - x + 0.3."""
    return 1.5 * x**3 - x + 0.3


def noisy_cubic(n: int = 20, noise: float = 0.1, seed: int = 0):
    """``n`` points with x uniform on [-1, 1] and y = cubic_target(x) + N(0, noise^2)."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-1.0, 1.0, size=n))
    y = cubic_target(x) + rng.normal(0.0, noise, size=n)
    return x, y


@dataclass(frozen=True)
class Split:
    """Train / validation / test arrays; features scaled to [0, 1]."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def digits_split(n_train: int = 300, n_val: int = 500, seed: int = 0) -> Split:
    """scikit-learn's bundled 8x8 digits (1,797 images), shuffled by ``seed``.

    ``n_train`` and ``n_val`` images go to training and validation; every remaining image is
    the test set. Pixels (0..16) are divided by 16; labels are integers 0..9.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    if n_train + n_val >= len(digits.target):
        raise ValueError(
            f"n_train + n_val = {n_train + n_val} leaves no test images "
            f"(the digits set has {len(digits.target)})"
        )
    order = np.random.default_rng(seed).permutation(len(digits.target))
    x = (digits.data[order] / 16.0).astype("float32")
    y = digits.target[order].astype("int64")
    a, b = n_train, n_train + n_val
    return Split(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:])
