"""Chapter 09 teaches what its executed cells show: the claims in its prose, with margins.

Every value comes from the chapter's own `glue` calls (medians over seeds for the trained
networks and the random-feature fits, paired per-seed differences with their range where an
effect is small, and, for the label smoothing chosen on validation, its effect on the test
images as a mean over the seeds with a 95% Student-t interval), read from the notebook the
book build executed.
"""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.book

NOTEBOOK = "notebooks/09-beyond-the-classics.ipynb"


# --- label smoothing: the targets, Keras's loss, the bounded lead ---------------------------

def test_smoothed_target_spreads_eps_over_all_k_classes(g):
    eps, k = g["ls_eps"], g["ls_k"]
    assert (eps, k) == (0.1, 10)
    assert g["ls_target_true"] == pytest.approx(1 - eps + eps / k)  # 0.91
    assert g["ls_target_other"] == pytest.approx(eps / k)  # 0.01
    assert g["ls_target_sum"] == pytest.approx(1.0)
    # the other convention, stated beside it: eps over the K - 1 wrong classes
    assert g["ls_alt_true"] == pytest.approx(1 - eps)
    assert g["ls_alt_other"] == pytest.approx(eps / (k - 1))


def test_keras_label_smoothing_loss_equals_the_hand_formula(g):
    assert g["ls_keras_rel_diff"] < 1e-6
    assert g["ls_keras_value"] > 1.0  # random logits: a real loss, not two zeros agreeing


def test_the_smoothed_loss_has_its_minimum_at_the_predicted_lead(g):
    assert g["ls_bound"] == pytest.approx(math.log(91))
    assert g["ls_bound_small"] == pytest.approx(math.log(1 + 10 * 0.99 / 0.01))
    assert abs(g["ls_argmin_margin"] - g["ls_bound"]) <= 0.05  # the plotted grid's step
    assert g["ls_grad_at_bound"] < 1e-6  # Keras's gradient vanishes there
    assert g["ls_grad_onehot_at_bound"] > 0.05  # the one-hot loss keeps pushing


# --- calibration: the ECE and its noise floor ----------------------------------------------

def test_ece_bin_count_is_stated_and_its_noise_floor_measured(g):
    assert g["ece_bins"] == 10
    assert g["ece_sim_draws"] >= 100
    # each run's floor: its own confidences on its own held-out images
    assert g["ece_sim_n"] == g["cal_n_held_out"]
    assert 0.005 < g["ece_floor"] < 0.04  # above zero even when calibrated by construction
    assert g["ece_floor"] < g["ece_floor_p90"] < 0.05
    assert g["ece_over_005"] > g["ece_floor_p90"]  # 5 points of over-confidence stand out
    assert 0.005 < g["ece_floor_001"] < g["ece_floor_p90_001"] < 0.05


# --- the experiment: a long-trained MLP on digits ------------------------------------------

def test_setting_and_enough_seeds_for_medians(g):
    assert g["cal_n_seeds"] >= 10
    assert g["cal_n_train"] == 200 and g["cal_n_held_out"] == 700
    assert g["cal_n_test"] == 1797 - 200 - 700  # the rest of each split: the test images
    assert (g["cal_eps_0"], g["cal_eps_1"], g["cal_eps_2"]) == (0.0, 0.01, 0.1)
    for name in ("0", "001", "01"):
        assert g[f"cal_train_accuracy_{name}"] == 1.0  # every recipe fits its training set


def test_without_smoothing_nll_rises_while_accuracy_holds(g):
    assert g["cal_best_step"] < g["cal_steps"] / 2
    assert g["cal_nll_final_0"] > 1.04 * g["cal_nll_best_0"]
    assert g["cal_nll_rise_seeds"] == g["cal_n_seeds"]  # in every seed, not only the median
    assert abs(g["cal_acc_final_0"] - g["cal_acc_at_best_0"]) <= 0.01


def test_the_unsmoothed_network_is_over_confident(g):
    assert g["cal_overconfidence_0"] > 0.015
    assert g["cal_confidence_0"] > g["cal_accuracy_0"] + 0.015
    assert g["cal_overconf_seeds"] == g["cal_n_seeds"]  # over-confident in every seed
    assert g["cal_ece_0"] > g["ece_floor_p90"]
    # more than chance: above its own floor's 90th percentile in (nearly) every seed
    assert g["cal_ece_above_floor_0"] >= g["cal_n_seeds"] - 1
    assert g["cal_confidence_wrong_0"] > 0.6  # sure of its mistakes
    assert g["cal_lead_0"] > g["cal_bound_001"]  # its training logits lead further than any cap


def test_smoothing_caps_the_training_logits_lead(g):
    for name in ("001", "01"):
        assert g[f"cal_lead_{name}"] < g[f"cal_bound_{name}"]
    assert g["cal_lead_01"] < g["cal_lead_001"] < g["cal_lead_0"]


def test_small_eps_lowers_nll_at_equal_accuracy(g):
    assert g["cal_dnll_001"] < -0.01
    assert g["cal_nll_lower_001"] >= g["cal_n_seeds"] - 1
    assert abs(g["cal_daccuracy_001"]) <= 0.01
    # its ECE change on validation is within the noise the chapter measured: no claim there
    assert abs(g["cal_dece_001"]) < g["ece_floor_p90_001"]
    assert g["cal_dece_001_min"] < 0 < g["cal_dece_001_max"]


def test_eps_chosen_on_validation_lowers_the_test_nll_at_equal_accuracy(g):
    n = g["cal_n_seeds"]
    assert g["cal_t_dof"] == n - 1
    assert g["cal_chosen_0"] + g["cal_chosen_001"] + g["cal_chosen_01"] == n
    assert g["cal_chosen_001"] >= n - 1  # the small eps wins on validation
    # on the test images, scored once: the NLL gain is real (the interval excludes zero)...
    assert g["cal_test_dnll_low"] < g["cal_test_dnll"] < g["cal_test_dnll_high"] < 0
    assert g["cal_test_nll_lower"] >= n - 2
    # ...and smaller than on the validation images it was chosen on (the same statistic)
    assert g["cal_test_dnll"] > g["cal_dnll_001_mean"]
    # the accuracy does not change measurably
    assert g["cal_test_daccuracy_low"] < 0 < g["cal_test_daccuracy_high"]
    assert abs(g["cal_test_daccuracy"]) < 0.01
    # the ECE falls "by about a point": an interval below zero
    assert -0.02 < g["cal_test_dece"] < -0.005
    assert g["cal_test_dece_high"] < 0


def test_eps_0_1_makes_the_network_under_confident_and_worse_in_nll(g):
    assert g["cal_confidence_01"] < g["cal_accuracy_01"] - 0.1
    assert g["cal_underconfidence_01"] > 0.1
    assert g["cal_dece_01"] > 0.05 and g["cal_dece_01_min"] > 0
    assert g["cal_ece_worse_01"] == g["cal_n_seeds"]
    assert g["cal_dnll_01"] > 0.03 and g["cal_dnll_01_min"] > 0
    assert g["cal_nll_lower_01"] == 0
    # its accuracy change is under a point: too small to claim a gain
    assert abs(g["cal_daccuracy_01"]) < 0.01


def test_confidence_falls_with_eps_and_nll_is_lowest_at_the_small_eps(g):
    assert g["cal_confidence_falls"]
    assert g["cal_confidence_0"] > g["cal_confidence_001"] > g["cal_confidence_01"]
    assert g["cal_nll_001"] < min(g["cal_nll_0"], g["cal_nll_01"])


# --- mixup ---------------------------------------------------------------------------------

def test_beta_alpha_controls_how_mixed_the_examples_are(g):
    assert g["mix_unmixed_02"] > 0.5  # mostly near 0 or 1
    assert g["mix_unmixed_1"] == pytest.approx(2 * g["mix_near"], abs=0.01)  # uniform
    assert g["mix_unmixed_4"] < 0.02  # mostly even blends
    assert g["mix_unmixed_02"] > g["mix_unmixed_1"] > g["mix_unmixed_4"]


def test_the_mixup_map_makes_convex_combinations(g):
    assert g["mix_target_sum_err"] < 1e-6
    assert g["mix_pixel_min"] >= 0.0 and g["mix_pixel_max"] <= 1.0 + 1e-6


def test_mixup_lowers_confidence_more_for_larger_alpha(g):
    assert g["mix_conf_lower_02"] == g["mix_conf_lower_1"] == g["cal_n_seeds"]
    assert g["mix_dconfidence_02_max"] < -0.03
    assert g["mix_dconfidence_1"] < g["mix_dconfidence_02"] - 0.02
    # below the accuracy now: the ECE rises in every seed
    assert g["mix_confidence_02"] < g["mix_accuracy_02"]
    assert g["mix_confidence_1"] < g["mix_accuracy_1"]
    assert g["mix_ece_worse_02"] >= g["cal_n_seeds"] - 1
    assert g["mix_ece_worse_1"] >= g["cal_n_seeds"] - 1


def test_mixup_does_not_raise_accuracy_nor_change_nll_measurably(g):
    # alpha = 0.2: no measurable accuracy change; alpha = 1: a small loss
    assert g["mix_daccuracy_02_low"] < 0 < g["mix_daccuracy_02_high"]
    assert -0.015 < g["mix_daccuracy_1_mean"] < g["mix_daccuracy_1_high"] < 0
    assert g["mix_acc_lower_1"] >= g["cal_n_seeds"] - 2
    for name in ("02", "1"):
        assert g[f"mix_dnll_{name}_low"] < 0 < g[f"mix_dnll_{name}_high"]
        assert abs(g[f"mix_daccuracy_{name}"]) < 0.01
        assert g[f"mix_daccuracy_{name}_min"] < 0.005  # not a gain in every seed
        assert g[f"mix_daccuracy_{name}_max"] < 0.015  # and nowhere more than 1.5 points
        # the seeds disagree about the sign of the NLL change: no claim either way
        assert g[f"mix_dnll_{name}_min"] < 0 < g[f"mix_dnll_{name}_max"]
        assert abs(g[f"mix_dnll_{name}"]) < 0.05


# --- double descent -------------------------------------------------------------------------

def test_the_sweep_is_fine_and_repeated(g):
    assert g["dd_n_counts"] >= 30
    assert g["dd_n_seeds"] >= 5
    assert g["dd_p_max"] >= 10 * g["dd_m"]


def test_min_norm_test_error_peaks_at_the_interpolation_threshold(g):
    m = g["dd_m"]
    assert m / 1.25 <= g["dd_peak_p"] <= 1.25 * m
    assert g["dd_peak_height"] > 100 * g["dd_noise_var"]
    assert g["dd_peak_height"] > 20 * g["dd_under_best"]
    assert g["dd_seed_peaks_near"] >= 0.7 * g["dd_n_seeds"]


def test_the_error_falls_again_past_the_threshold_below_the_first_minimum(g):
    assert g["dd_under_best_p"] < g["dd_m"] / 2
    assert g["dd_min_norm_at_max"] < g["dd_under_best"]
    assert g["dd_min_norm_at_max"] < g["dd_peak_height"] / 100
    assert g["dd_m"] <= g["dd_interp_all_p"] <= 2 * g["dd_m"]  # interpolation past it


def test_dead_units_delay_the_threshold_in_some_seeds(g):
    m, n = g["dd_m"], g["dd_n_seeds"]
    assert 1 <= g["dd_full_rank_at_m"] < n  # some seeds are short of rank m at p = m
    assert g["dd_rank_at_m_min"] < m
    assert g["dd_n_short_at_m"] == n - g["dd_full_rank_at_m"]
    assert g["dd_interp_at_m"] == g["dd_full_rank_at_m"]  # exact fits need rank m
    assert g["dd_interp_all_p"] > m  # so every seed interpolates only later
    # a few ranks short of square: better conditioned than square, still far worse than p = m/2
    assert g["dd_smin_at_m_full"] < g["dd_smin_at_m_short"] < g["dd_smin_at_half"] / 10
    assert g["dd_test_at_m_short"] > 30 * g["dd_under_best"]
    assert g["dd_test_at_m_full"] > 30 * g["dd_under_best"]
    # some rank-deficient seeds still peak at p = m, more of the others later than earlier,
    # and "a little": within a factor 2 of m
    assert 1 <= g["dd_short_peak_at_m"] < g["dd_n_short_at_m"]
    assert (g["dd_short_peak_at_m"] + g["dd_short_peak_later"] + g["dd_short_peak_earlier"]
            == g["dd_n_short_at_m"])
    assert g["dd_short_peak_later"] > g["dd_short_peak_earlier"]
    assert m < g["dd_short_peak_latest"] <= 2 * m
    assert g["dd_seed_peak_min"] >= m / 2


def test_a_tiny_fixed_penalty_already_cuts_the_peak(g):
    assert g["dd_fixed_at_m_0"] == pytest.approx(g["dd_peak_height"])  # the peak is at p = m
    assert g["dd_fixed_at_m_1e6"] < g["dd_fixed_at_m_0"] / 10
    assert g["dd_fixed_at_m_1e4"] < g["dd_fixed_at_m_1e6"] / 2
    assert g["dd_fixed_at_m_1e4"] < 2 * g["dd_tuned_at_m"]  # 1e-4 flattens it nearly as well


def test_tuned_ridge_removes_the_peak(g):
    assert g["dd_peak_tuned"] < g["dd_peak_height"] / 100
    assert g["dd_peak_ratio"] == pytest.approx(g["dd_peak_height"] / g["dd_peak_tuned"])
    # no peak: at the threshold it is no worse than at half the threshold, and not far above
    # its own best value
    assert g["dd_tuned_at_m"] <= g["dd_tuned_at_half"]
    assert g["dd_tuned_at_m"] < 2 * g["dd_tuned_best"]
    assert g["dd_tuned_max_over"] <= g["dd_tuned_at_half"] * 1.05
    assert g["dd_tuned_at_max"] < 1.5 * g["dd_tuned_best"]
    assert g["dd_lam_at_m"] > g["dd_lam_min"]  # a real penalty was chosen there


def test_the_weights_blow_up_and_the_smallest_singular_value_dips_at_the_threshold(g):
    m = g["dd_m"]
    assert g["dd_norm_peak_p"] == g["dd_smin_low_p"] == g["dd_peak_p"] == m
    assert g["dd_norm_at_m"] > 30 * g["dd_norm_at_half"]
    assert g["dd_norm_at_m"] > 100 * g["dd_norm_at_max"]
    assert g["dd_smin_at_m"] < g["dd_smin_at_half"] / 10
    assert g["dd_smin_at_m"] < g["dd_smin_at_max"] / 10


def test_gradient_descent_stays_in_the_row_space_on_its_way_to_the_min_norm_fit(g):
    assert g["gd_formula_diff"] < 1e-8
    assert g["gd_outside_row_space"] < 1e-10
    assert 0 < g["gd_n_slow"] < g["gd_n_directions"]
    assert g["gd_factor_min"] < 0.5
    assert g["gd_rel_dist"] > 0.1  # not there yet, as the prose says
    assert g["gd_train_gd"] > 1e-4
    assert g["gd_test_gd"] < g["gd_test_plus"]  # early stopping acting like ridge
    assert g["gd_seed"] in range(g["dd_n_seeds"])  # one seed, one p: stated as such


def test_another_interpolant_fits_as_well_and_predicts_worse(g):
    assert g["gd_other_train"] < 1e-12
    assert g["gd_other_norm_ratio"] == pytest.approx(math.sqrt(1 + g["gd_null_factor"] ** 2))
    assert g["gd_other_test"] > 1.5 * g["gd_test_plus"]


def test_explorer_is_light(g):
    assert g["ex_n_frames"] <= 100
    assert g["dd_shown_seed"] in range(g["dd_n_seeds"])
    assert g["dd_seed_peaks_at_m"] >= 1
