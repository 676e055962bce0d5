"""Chapter 01 teaches what its executed cells show: the claims in its prose, with margins.

Every value comes from the chapter's own `glue` calls (medians over seeds), read from the
notebook the book build executed.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.book

NOTEBOOK = "notebooks/01-overfitting.ipynb"


# --- polynomial fits -------------------------------------------------------------------

def test_degree_1_underfits(g):
    noise_floor = g["poly_noise_var"]
    assert g["poly_val_mse_d1"] > 2 * g["poly_val_mse_d3"]
    # both errors high, not only the validation one: that is what makes it underfitting
    assert g["poly_train_mse_d1"] > 2 * noise_floor
    assert g["poly_val_mse_d1"] < 1.5 * g["poly_train_mse_d1"]


def test_degree_3_sits_near_the_noise_floor(g):
    noise_floor = g["poly_noise_var"]
    assert 0.5 * noise_floor < g["poly_train_mse_d3"] < 2 * noise_floor
    assert 0.5 * noise_floor < g["poly_val_mse_d3"] < 2 * noise_floor
    # the prose: "about what it got", the least-squares expectation sigma^2 (1 - p/n)
    assert abs(g["poly_train_mse_d3"] / g["poly_expected_train_d3"] - 1) < 0.25
    assert g["poly_best_degree"] in (3, 4, 5)


def test_high_degrees_explode_on_validation_data(g):
    d3 = g["poly_val_mse_d3"]
    assert g["poly_val_mse_d10"] > 10 * d3
    assert g["poly_val_mse_d15"] > 100 * d3
    assert g["poly_ratio_d15_d3"] == pytest.approx(g["poly_val_mse_d15"] / d3)


def test_training_error_only_falls_with_degree_and_ends_below_the_noise(g):
    train = [g["poly_train_mse"][d] for d in sorted(g["poly_train_mse"])]
    assert all(b <= a * (1 + 1e-9) for a, b in zip(train, train[1:]))
    assert g["poly_train_mse_d15"] < 0.5 * g["poly_noise_var"]


# --- capacity sweep in Keras -----------------------------------------------------------

def test_large_mlp_validation_loss_bottoms_out_early_then_rises(g):
    epochs = g["mlp_epochs"]
    assert g["mlp_large_val_min_epoch"] <= 0.3 * epochs
    assert g["mlp_large_val_final"] > 1.2 * g["mlp_large_val_min"]
    assert g["mlp_large_val_rise"] > 0.05
    assert g["mlp_large_train_final"] < 1e-3  # training loss keeps collapsing meanwhile
    assert g["mlp_large_train_acc_final"] >= 0.99


def test_small_mlp_is_still_improving_at_the_end(g):
    epochs = g["mlp_epochs"]
    assert g["mlp_small_val_final"] <= 1.02 * g["mlp_small_val_min"]
    assert g["mlp_small_val_min_epoch"] >= 0.9 * epochs


def test_large_mlp_has_far_more_parameters(g):
    assert g["mlp_large_params"] > 100 * g["mlp_small_params"]
    assert g["mlp_large_params"] > g["mlp_n_train"]


def test_accuracy_stays_close_while_the_losses_diverge(g):
    # the large net's accuracy barely moves while its validation loss climbs
    assert abs(g["mlp_large_acc_final"] - g["mlp_large_acc_at_min"]) < 0.02
    # the two nets end with close accuracies but clearly different losses
    assert g["mlp_acc_diff_points"] < 5
    assert g["mlp_loss_final_ratio"] > 1.2
    assert g["mlp_large_val_final"] > 1.2 * g["mlp_small_val_final"]


# --- the explorer: degree against the number of training points ------------------------

def test_more_data_tames_degree_15(g):
    val = g["cap_val_ratio_d15"]  # validation MSE / noise floor, one per training-set size
    assert all(b < a for a, b in zip(val, val[1:]))
    assert g["cap_val_d15_first"] == pytest.approx(val[0])
    assert g["cap_val_d15_last"] == pytest.approx(val[-1])
    assert val[0] > 1000  # with the chapter's 20 points: an explosion
    assert val[-1] < 1.5  # with the most points: close to the noise floor
    assert g["cap_val_d15_second"] < 0.01 * val[0]


def test_training_error_of_degree_15_rises_to_the_noise_floor(g):
    train = g["cap_train_ratio_d15"]
    assert all(b >= a for a, b in zip(train, train[1:]))
    assert g["cap_train_d15_first"] < 0.5
    assert 0.8 < g["cap_train_d15_last"] < 1.0


def test_more_data_does_not_cure_underfitting(g):
    val = g["cap_val_ratio_d1"]
    assert min(val) == pytest.approx(g["cap_val_d1_min"])
    assert g["cap_val_d1_min"] > 3  # far above the noise floor at every n
    assert val[-1] > 0.7 * val[0]  # and hardly better with the most data


def test_best_degree_hardly_moves_with_n(g):
    assert g["cap_n_count"] == len(g["cap_best_degrees"])
    assert all(3 <= d <= 5 for d in g["cap_best_degrees"])
    assert g["cap_best_degree_min"] == min(g["cap_best_degrees"])
    assert g["cap_best_degree_max"] == max(g["cap_best_degrees"])
    assert g["cap_best_degrees"][0] == g["poly_best_degree"]  # n = 20 is the sweep above


# --- "confidently wrong", measured on the misclassified validation images ---------------

def test_large_mlp_is_more_confident_in_its_mistakes(g):
    # medians over the seeds, and paired by seed (both networks see the same split)
    assert g["mlp_conf_wrong_large_end"] > g["mlp_conf_wrong_small_end"] + 0.1
    assert min(g["mlp_conf_wrong_diffs"]) > 0, "not higher in every seed"
    assert g["mlp_conf_wrong_diff_min"] == pytest.approx(min(g["mlp_conf_wrong_diffs"]))
    assert g["mlp_conf_wrong_diff_max"] == pytest.approx(max(g["mlp_conf_wrong_diffs"]))
    assert g["mlp_nll_wrong_large_end"] > 2 * g["mlp_nll_wrong_small_end"]
    assert min(g["mlp_nll_wrong_diffs"]) > 0
    assert g["mlp_nll_wrong_ratio"] > 2


def test_large_mlp_mistakes_grow_more_confident_not_more_numerous(g):
    best, end = g["mlp_n_wrong_large_best"], g["mlp_n_wrong_large_end"]
    assert abs(end - best) <= 0.1 * best  # "hardly changes"
    assert g["mlp_conf_wrong_large_end"] > g["mlp_conf_wrong_large_best"] + 0.05
    assert g["mlp_nll_wrong_large_end"] > 1.5 * g["mlp_nll_wrong_large_best"]
    assert g["mlp_conf_right_large_end"] > g["mlp_conf_right_large_best"]
    assert g["mlp_share_wrong_large_end"] > 0.9


@pytest.mark.parametrize("name", ["small", "large"])
def test_validation_callback_agrees_with_keras_evaluate(g, name):
    # Keras's own evaluate() after the last epoch, computed apart from the chapter's callback:
    # the callback's last validation loss and accuracy, and the cross-entropy recomputed from
    # its kept probabilities, must be the same numbers
    keras_loss = g[f"mlp_{name}_keras_val_loss"]
    assert g[f"mlp_{name}_val_final"] == pytest.approx(keras_loss, rel=1e-3)
    assert g[f"mlp_{name}_acc_final"] == pytest.approx(g[f"mlp_{name}_keras_val_acc"], rel=1e-3)
    assert g[f"mlp_nll_all_{name}_end"] == pytest.approx(keras_loss, rel=1e-3)
