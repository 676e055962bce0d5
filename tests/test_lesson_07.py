"""Chapter 07 teaches what its executed cells show: the claims in its prose, with margins.

Every value comes from the chapter's own `glue` calls (medians over seeds where there is
randomness), read from the notebook the book build executed.
"""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.book

NOTEBOOK = "notebooks/07-batch-normalization.ipynb"


# --- conventions ---------------------------------------------------------------------------

def test_the_stated_library_defaults(g):
    assert g["keras_default_momentum"] == pytest.approx(0.99)
    assert g["keras_default_eps"] == pytest.approx(1e-3)
    assert g["torch_default_momentum"] == pytest.approx(0.1)
    assert g["torch_default_eps"] == pytest.approx(1e-5)
    assert g["keras_window_099"] == pytest.approx(100)
    # the defaults are not equivalent: PyTorch's 0.1 is Keras's 0.9, a window ten times shorter
    assert g["torch_window_default"] == pytest.approx(10)
    assert g["keras_window_099"] / g["torch_window_default"] == pytest.approx(10)
    assert g["torch_as_keras_momentum"] != pytest.approx(g["keras_default_momentum"])
    assert g["init_weight_099"] == pytest.approx(0.99 ** g["steps_per_epoch_example"])


# --- NumPy layer: gradient check and the match with Keras ----------------------------------

def test_backward_pass_passes_the_gradient_check(g):
    assert g["grad_rel_err_max"] < 1e-7
    for name in ("x", "gamma", "beta"):
        assert g[f"grad_rel_err_{name}"] <= g["grad_rel_err_max"]
    # the check can fail: treating the batch statistics as constants is caught
    assert g["grad_rel_err_naive"] > 1e-2
    assert g["grad_dx_column_sum"] < 1e-10


def test_numpy_matches_keras_in_both_modes_running_statistics_included(g):
    assert g["keras_match_steps"] >= 3
    for key in ("train", "moving_mean", "moving_var", "infer"):
        assert g[f"keras_diff_{key}"] < 1e-5, key


def test_keras_stores_the_biased_variance(g):
    assert g["keras_var_vs_biased"] < 1e-5
    assert g["keras_var_vs_unbiased"] > 1e-2


def test_pytorch_momentum_is_one_minus_keras_momentum(g):
    assert g["torch_as_keras_momentum"] == pytest.approx(0.9)
    assert g["torch_keras_mean_diff"] < 1e-5
    m = g["keras_match_m"]
    assert g["torch_var_factor"] == pytest.approx(m / (m - 1))
    assert g["torch_keras_var_ratio"] == pytest.approx(m / (m - 1), rel=1e-4)


def test_a_frozen_keras_layer_runs_in_inference_mode(g):
    assert g["frozen_vs_infer"] < 1e-5
    assert g["frozen_update"] == 0.0


def test_keras_running_variance_keeps_the_small_batch_bias_the_paper_removes(g):
    # the paper (and PyTorch) estimate the inference variance with m/(m-1); Keras does not
    m = g["small_m"]
    assert g["small_m_steps"] >= 500
    assert g["small_m_factor"] == pytest.approx((m - 1) / m)
    assert g["keras_small_var_ratio"] == pytest.approx((m - 1) / m, abs=0.05)
    assert g["paper_small_var_ratio"] == pytest.approx(1.0, abs=0.05)
    assert g["paper_small_var_ratio"] - g["keras_small_var_ratio"] > 0.15
    assert g["keras_over_paper"] == pytest.approx((m - 1) / m, rel=1e-4)


def test_batch_norm_in_a_conv_layer_is_per_channel(g):
    assert g["conv_gamma_shape"] == g["conv_channels"]
    assert g["conv_values_per_stat"] == g["conv_m"] * 8 * 8
    assert g["conv_bn_diff"] < 1e-4
    # every channel standardized over batch and positions together (up to epsilon) ...
    assert g["conv_channel_std_max_dev"] < 0.15
    assert g["conv_channel_var_min"] < 0.05  # the prose blames epsilon: small variances
    # ... but not each position: the per-pixel spread over the batch varies widely
    assert g["conv_pixel_std_min"] < 0.2 and g["conv_pixel_std_max"] > 1.1


def test_a_bias_before_batch_norm_changes_nothing(g):
    assert g["bias_effect"] < 1e-10


def test_batch_norm_folds_into_the_dense_layer_at_inference(g):
    assert g["fold_max_diff"] < 1e-4
    assert g["fold_out_scale"] > 0.1  # a real comparison, not two zeros


# --- batch size: noise and the train/inference gap -----------------------------------------

def test_noise_and_gap_shrink_with_the_batch_size(g):
    assert g["noise_m_small"] < g["noise_m_large"]
    assert g["noise_small"] > 3 * g["noise_large"]
    # roughly like one over the square root of the batch size
    assert g["noise_ratio"] == pytest.approx(g["noise_sqrt_ratio"], rel=0.3)


def test_noise_curve_is_roughly_straight_only_from_m_8(g):
    assert g["noise_m_straight"] == 8
    # local log-log slopes for m >= 8 stay near -1/2
    assert -0.7 < g["noise_slope_min"] <= g["noise_slope_max"] < -0.4
    # and it bends below: flatter between m = 2 and 4
    assert g["noise_m_first"] == 2
    assert g["noise_slope_first"] > -0.38
    assert g["noise_slope_first"] > g["noise_slope_max"] + 0.08


def test_gap_is_quoted_only_where_it_is_above_the_monte_carlo_floor(g):
    # the quoted gaps are clearly above the sampling error of a mean of noise_n_batches outputs
    assert g["gap_small"] > 4 * g["floor_small"]
    assert g["gap_mid"] > 2.5 * g["floor_mid"]
    # the floor is what the notebook says it is: noise / sqrt(number of batches)
    assert g["floor_small"] == pytest.approx(g["noise_small"] / math.sqrt(g["noise_n_batches"]),
                                             rel=1e-6)
    assert g["floor_large"] == pytest.approx(g["noise_large"] / math.sqrt(g["noise_n_batches"]),
                                             rel=1e-6)
    # the gap shrinks faster than the noise, roughly in proportion to the batch size
    assert g["gap_m_ratio"] == g["gap_m_mid"] // g["noise_m_small"]
    assert g["gap_ratio"] == pytest.approx(g["gap_small"] / g["gap_mid"])
    assert g["gap_ratio"] > 1.5 * g["noise_ratio_gap_range"]
    assert g["gap_ratio"] == pytest.approx(g["gap_m_ratio"], rel=0.35)
    # at m = 128 the measurement is at its floor: the prose does not quote it as the gap
    assert g["gap_large"] < 2 * g["floor_large"]


def test_noise_goes_like_one_over_sqrt_m_and_gap_like_one_over_m_as_predicted(g):
    # the second-order (delta-method) predictions quoted in the prose
    assert g["gap_m8"] == pytest.approx(g["gap_pred_m8"], rel=0.2)
    assert g["gap_mid"] == pytest.approx(g["gap_pred_mid"], rel=0.2)
    assert g["gap_sign_corr"] > 0.9
    assert g["noise_mid"] == pytest.approx(g["noise_pred_mid"], rel=0.05)
    # the predicted gap is 1/m: a batch gap_m_ratio times larger divides it by that factor
    assert g["gap_pred_m8"] / g["gap_pred_mid"] == pytest.approx(2.0)
    # where the prose says the approximation is too crude or sampling matters
    assert g["gap_first"] > 1.3 * g["gap_pred_first"]
    assert g["noise_large"] < 0.97 * g["noise_pred_large"]


def test_small_batches_underestimate_the_variance_by_m_minus_1_over_m(g):
    assert g["var_ratio_small"] == pytest.approx(g["var_ratio_small_theory"], abs=0.05)
    assert g["var_ratio_small"] < 0.9



# --- the batch-size explorer ---------------------------------------------------------------

def test_explorer_batch_means_have_the_standard_error_sigma_over_sqrt_m(g):
    # at every batch size the batch means scatter by sigma / sqrt(m) (batches drawn with
    # replacement), within the sampling error of bex_steps batches
    assert g["bex_steps"] >= 500
    assert 0.93 < g["bex_se_ratio_min"] <= g["bex_se_ratio_max"] < 1.07
    assert g["bex_sd_mean_small"] == pytest.approx(1 / math.sqrt(g["noise_m_small"]), rel=0.07)
    assert g["bex_sd_mean_large"] == pytest.approx(1 / math.sqrt(g["noise_m_large"]), rel=0.07)
    assert g["bex_sd_mean_small"] / g["bex_sd_mean_large"] == pytest.approx(
        g["noise_sqrt_ratio"], rel=0.1)


def test_explorer_keras_running_variance_inherits_the_small_batch_bias(g):
    m_first, m_last = g["noise_m_first"], g["bex_m_last"]
    assert g["bex_run_mean_err_first"] < 0.1  # the running mean is close to the population's
    assert g["bex_run_var_first"] == pytest.approx((m_first - 1) / m_first, abs=0.06)
    assert g["bex_run_var_first"] < 0.6
    assert g["bex_run_var_last"] == pytest.approx((m_last - 1) / m_last, abs=0.02)
    # the inference line is steeper than 1 at m = 2 because of that variance
    assert g["bex_slope_first"] == pytest.approx(1 / math.sqrt(g["bex_run_var_first"]), rel=0.05)
    assert g["bex_slope_first"] > 1.25


def test_explorer_training_mode_noise_fades_with_the_batch_size(g):
    assert g["bex_spread_first"] > 0.5
    assert g["bex_spread_first"] > 5 * g["bex_spread_last"]
    assert g["bex_spread_last"] < 0.15


# --- experiment (a): deep ReLU network and the initial weight scale ------------------------

def test_activations_fade_or_explode_without_batch_norm_only(g):
    assert g["init_factor_measured"] == pytest.approx(g["init_factor_predicted"], rel=0.3)
    assert g["init_std_last_small_nobn"] < 1e-5
    assert g["init_std_last_large_nobn"] > 1e3
    for name in ("mid", "large"):
        assert g[f"init_std_last_{name}_bn"] == pytest.approx(g["relu_gauss_std"], abs=0.05)
    # epsilon takes a visible bite at the smallest scale, as the prose says
    assert 0.2 < g["init_std_last_small_bn"] < g["init_std_last_mid_bn"] - 0.05


def test_experiment_a_is_a_median_over_seeds(g):
    assert g["deep_n_seeds"] >= 3
    assert g["deep_depth"] >= 6


def test_batch_norm_rescues_the_smallest_initial_scale(g):
    assert g["deep_acc_nobn_small"] < 0.3
    assert g["deep_loss_nobn_small"] == pytest.approx(math.log(10), abs=0.05)
    assert g["deep_acc_bn_small"] > 0.85
    assert g["deep_min_acc_bn_small"] > 0.8
    assert g["deep_acc_gain_small"] > 0.5


def test_batch_norm_wins_at_every_scale(g):
    # with a sensible scale the gain is small; at the large scale it is still clear
    assert g["deep_acc_gain_mid"] > -0.01
    assert g["deep_acc_gain_mid"] < g["deep_acc_gain_small"]
    assert g["deep_acc_gain_large"] > 0.02
    assert g["deep_acc_nobn_mid"] > 0.8  # the plain network does train at a sensible scale
    # only the smallest scale defeats the plain network (the summary says "an initial scale")
    assert g["deep_acc_nobn_large"] > 0.5
    assert g["deep_acc_bn_large"] < g["deep_acc_bn_mid"]  # BN does not make scale irrelevant


# --- experiment (b): sigmoid network at a high learning rate -------------------------------

def test_batch_norm_is_far_ahead_after_one_epoch(g):
    assert g["speed_acc1_bn"] > 0.75
    assert g["speed_min_acc1_bn"] > 0.6
    assert g["speed_acc1_bn"] > g["speed_acc1_nobn"] + 0.4
    assert g["speed_max_acc1_nobn"] < g["speed_min_acc1_bn"]


def test_batch_norm_reaches_the_target_in_far_fewer_epochs(g):
    assert g["speed_epochs_bn"] <= 3
    assert g["speed_epochs_max_bn"] <= 3
    assert g["speed_epochs_nobn"] >= 2 * g["speed_epochs_bn"]
    assert g["speed_epoch_ratio"] >= 2


def test_the_plain_sigmoid_network_gets_there_given_time(g):
    assert g["speed_epochs_nobn"] <= g["speed_epochs"]
    assert g["speed_acc_final_nobn"] > g["speed_target"] - 0.03
    assert abs(g["speed_acc_final_bn"] - g["speed_acc_final_nobn"]) < 0.08


# --- experiment (c): does batch normalization regularize? ----------------------------------

def test_regularization_experiment_is_paired_over_enough_seeds_with_a_sweep(g):
    assert g["reg_n_seeds"] >= 5
    assert g["reg_n_lrs"] >= 3
    assert g["reg_steps"] == g["reg_epochs"] * (g["reg_n_train"] // g["reg_batch"])
    # each network's chosen learning rate lies inside the grid, not at an edge
    for name in ("nobn", "bn"):
        assert g["reg_lr_low"] < g[f"reg_lr_{name}"] < g["reg_lr_high"], name
    assert g["reg_bn_lower_at_every_lr"] is True


def test_batch_norm_lowers_the_held_out_loss_at_tuned_learning_rates(g):
    assert g["reg_d_held_low"] <= g["reg_d_held"] <= g["reg_d_held_high"] < 0
    assert g["reg_d_held_wins"] >= g["reg_n_seeds"] - 1
    assert g["reg_held_bn"] < g["reg_held_nobn"]
    assert g["reg_d_held_acc_low"] > 0  # percentage points


def test_batch_norm_also_fits_better_so_not_all_of_it_is_regularization(g):
    assert g["reg_d_train_high"] < 0


def test_batch_norm_narrows_the_gap_between_held_out_and_training_loss(g):
    assert g["reg_d_gap_low"] <= g["reg_d_gap"] <= g["reg_d_gap_high"] < 0
    # "the held-out loss falls by more than the training loss"
    assert g["reg_d_held"] < g["reg_d_train"]
    assert g["reg_d_gap"] == pytest.approx(g["reg_d_held"] - g["reg_d_train"], abs=1e-9)
