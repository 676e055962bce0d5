"""Chapter 04 teaches what its executed cells show: the claims in its prose, with margins.

Every value comes from the chapter's own `glue` calls (medians over seeds for the trained
networks), read from the notebook the book build executed.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.book

NOTEBOOK = "notebooks/04-dropout.ipynb"


# --- inverted dropout and the practice item -----------------------------------------------

def test_practice_item_h3_p06_gives_5_or_0_with_mean_3(g):
    assert g["pr_h"] == 3.0 and g["pr_p"] == 0.6
    assert g["pr_kept_value"] == pytest.approx(5.0, abs=1e-12)
    assert g["pr_prob_kept"] == pytest.approx(0.6, abs=1e-12)
    assert g["pr_prob_dropped"] == pytest.approx(0.4, abs=1e-12)
    assert g["pr_mean"] == pytest.approx(3.0, abs=1e-12)
    assert g["pr_var"] == pytest.approx(6.0, abs=1e-12)  # (1 - p) / p * h**2


def test_simulated_unit_matches_the_distribution(g):
    assert g["pr_n_draws"] >= 100_000
    assert g["pr_emp_values"] == [0.0, 5.0]
    assert g["pr_std_error"] == pytest.approx((6.0 / g["pr_n_draws"]) ** 0.5, rel=1e-9)
    # the empirical mean of h~ is h within 4 standard errors (the stated tolerance)
    assert abs(g["pr_emp_mean"] - 3.0) < 4 * g["pr_std_error"]
    assert g["pr_emp_err_in_se"] < 4
    assert abs(g["pr_emp_frac_kept"] - 0.6) < 4 * (0.24 / g["pr_n_draws"]) ** 0.5
    assert g["pr_emp_var"] == pytest.approx(6.0, rel=0.02)


def test_keras_rate_is_the_drop_probability(g):
    assert g["km_practice_rate"] == pytest.approx(0.4)
    assert g["km_practice_values"] == [0.0, 5.0]
    assert abs(g["km_practice_frac_kept"] - 0.6) < 0.003  # the keep probability, not the rate
    assert abs(g["km_practice_mean"] - 3.0) < 0.01
    assert g["km_rate_02"] == 0.2
    assert abs(g["km_kept_02"] - 0.8) < 0.003  # Dropout(0.2) keeps 80%


def test_inference_is_the_identity(g):
    assert g["km_practice_infer_diff"] == 0.0
    assert g["km_practice_default_diff"] == 0.0


def test_original_dropout_trains_at_p_times_h(g):
    assert abs(g["orig_mean"] - 1.8) < 0.01
    assert g["orig_test_output"] == pytest.approx(1.8, abs=1e-12)


# --- backward pass and the match with Keras ------------------------------------------------

def test_gradient_check_passes_and_catches_the_usual_mistakes(g):
    assert g["gc_rel_err"] < 1e-8  # CS231n's standard is about 1e-9 or less
    p = g["gc_p"]
    assert g["gc_rel_err_no_scale"] == pytest.approx((1 - p) / (1 + p), rel=1e-6)
    assert g["gc_rel_err_new_mask"] > 0.5


def test_numpy_layer_matches_keras_dropout_given_its_mask(g):
    assert g["km_fwd_max_diff"] < 1e-6
    assert g["km_bwd_max_diff"] < 1e-6
    assert g["km_ratio_min"] == pytest.approx(1 / (1 - g["km_rate"]), rel=1e-9)
    assert g["km_ratio_max"] == pytest.approx(1 / (1 - g["km_rate"]), rel=1e-9)
    assert abs(g["km_frac_kept"] - g["km_p"]) < 0.02
    assert g["km_new_mask_frac"] > 0.1  # a fresh mask at every call


def test_relu_commutes_with_the_mask(g):
    assert g["relu_order_max_diff"] == 0.0


def test_thinned_network_count(g):
    n = g["ens_n_inputs"] + 2 * g["ens_units_per_layer"]
    assert g["ens_n_units"] == n == 64 + 2 * 256
    assert g["ens_count_digits"] == len(str(2**n))


def test_geometric_mean_is_exact_only_with_mask_probability_weights(g):
    # the softmax layer's weight-scaling rule is the probability-weighted geometric mean ...
    assert g["gm_p"] != 0.5
    assert g["gm_n_masks"] == 2 ** g["gm_n"]
    assert g["gm_weighted_diff_p"] < 1e-12
    # ... and the equal-weight one only at p = 1/2
    assert g["gm_equal_diff_p"] > 1e-3
    assert g["gm_equal_diff_half"] < 1e-12 and g["gm_weighted_diff_half"] < 1e-12


# --- the experiment: chapter 01's large network four ways, ten seeds, paired -----------------

def test_setting_is_chapter_01_design_with_ten_seeds(g):
    assert g["exp_n_layers"] == 2 and g["exp_units"] == 256  # half of chapter 01's 512
    assert g["exp_n_params"] > 100 * g["exp_n_train"]  # far more weights than images
    assert g["exp_n_train"] == 300
    assert g["exp_n_seeds"] >= 10 and g["exp_dof"] == g["exp_n_seeds"] - 1
    assert g["exp_n_test"] > 500
    assert g["exp_keep"] == pytest.approx(1 - g["exp_rate"])
    assert g["exp_input_keep"] == pytest.approx(1 - g["exp_input_rate"])
    assert g["exp_input_rate"] < g["exp_rate"]  # inputs get the smaller drop probability
    # the explorer's caption: the trained network's sizes, and a smaller stand-in drawn for it
    assert g["exp_real_inputs"] == g["ens_n_inputs"]
    assert g["exp_real_hidden_1"] == g["exp_real_hidden_2"] == g["exp_units"]
    assert g["exp_real_outputs"] == 10  # the ten digits
    assert g["exp_drawn_inputs"] < g["exp_real_inputs"]
    assert g["exp_drawn_hidden"] < g["exp_units"]


def test_side_by_side_training_is_keras_fit(g):
    assert g["exp_keras_check_diff"] < 1e-4  # relative to the largest weight
    assert g["exp_keras_check_val_diff"] < 1e-4


def test_unregularized_network_overfits(g):
    assert g["exp_none_val_min_epoch"] <= 0.5 * g["exp_epochs"]
    assert g["exp_none_val_final"] > 1.2 * g["exp_none_val_min"]
    assert g["exp_none_final_above_min"] >= 0.8 * g["exp_n_seeds"]


def _interval(g, prefix):
    low, mean, high = g[f"{prefix}_low"], g[f"{prefix}_diff"], g[f"{prefix}_high"]
    assert low < mean < high
    return low, mean, high


def test_dropout_lowers_the_test_cross_entropy_with_an_interval_below_zero(g):
    low, mean, high = _interval(g, "exp_dropout_test_xent")
    assert high < 0 and mean < -0.02
    assert g["exp_dropout_test_wins"] >= 0.9 * g["exp_n_seeds"]
    # its minimum comes later, near the end of the run
    assert g["exp_dropout_val_min_epoch"] > 1.5 * g["exp_none_val_min_epoch"]
    assert g["exp_dropout_val_min_epoch"] >= 0.9 * g["exp_epochs"]


def test_l2_helps_less_on_test_but_stops_the_rise(g):
    low, mean, high = _interval(g, "exp_L2_test_xent")
    assert high < 0
    assert g["exp_L2_test_wins"] >= 0.8 * g["exp_n_seeds"]
    assert mean > g["exp_dropout_test_xent_diff"]  # "lowers it less" than dropout
    assert _interval(g, "exp_L2_val_final")[2] < 0  # at the last epoch: clearly lower
    assert g["exp_L2_val_final"] < 1.05 * g["exp_L2_val_min"]
    assert g["exp_L2_val_min_epoch"] >= 0.75 * g["exp_epochs"]  # still falling late
    # the rise it stops costs more than what is left at the chosen epoch
    assert g["exp_L2_val_final_diff"] < 2 * mean


def test_both_together_about_match_dropout_alone(g):
    assert _interval(g, "exp_both_test_xent")[2] < 0
    low, mean, high = _interval(g, "exp_both_vs_dropout")
    assert low < 0 < high  # "an interval that contains 0"
    assert abs(mean) < 0.5 * abs(g["exp_dropout_test_xent_diff"])


def test_test_accuracies_move_much_less_than_the_losses(g):
    accs = [g[f"exp_{name}_test_acc"] for name in ("none", "L2", "dropout", "both")]
    assert max(accs) - min(accs) < 0.02
    assert all(a > 0.9 for a in accs)
    low, mean, high = _interval(g, "exp_dropout_test_acc")
    assert low < 0 < high  # "not distinguishable from zero"


# --- confidently wrong, measured --------------------------------------------------------------

def test_unregularized_network_ends_confidently_wrong_and_l2_prevents_it(g):
    assert g["wrong_none_final_conf"] > 0.75
    assert g["wrong_none_final_share"] > 0.8  # the wrong answers carry the cross-entropy
    assert _interval(g, "wrong_L2_final_conf")[2] < -0.03
    assert _interval(g, "wrong_L2_final_nll")[2] < 0
    assert g["wrong_L2_final_nll"] < 0.75 * g["wrong_none_final_nll"]


def test_at_the_chosen_epoch_l2_is_not_less_confident_but_dropout_is(g):
    low, mean, high = _interval(g, "wrong_L2_best_conf")
    assert low < 0 < high  # "that difference is gone"
    assert _interval(g, "wrong_dropout_best_conf")[2] < -0.03
    assert _interval(g, "wrong_dropout_best_nll")[2] < 0
    assert g["wrong_dropout_best_nll"] < g["wrong_none_best_nll"]


# --- the ensemble reading ------------------------------------------------------------------

def test_full_network_decides_like_the_average_of_thinned_networks(g):
    assert g["mc_T"] >= 16
    assert g["mc_agree"] >= 0.97
    assert abs(g["mc_avg_acc"] - g["mc_full_acc"]) <= 0.02


def test_full_network_is_close_to_the_geometric_mean(g):
    assert g["mc_geo_prob_diff"] < 0.01
    assert g["mc_prob_diff_ratio"] == pytest.approx(g["mc_prob_diff"] / g["mc_geo_prob_diff"])
    assert g["mc_prob_diff_ratio"] > 2
    assert 0.8 < g["mc_geo"] / g["mc_full"] < 1.25
    assert g["mc_avg"] > g["mc_geo"]  # here the arithmetic average is the worse-calibrated


def test_a_single_thinned_network_is_much_worse(g):
    assert g["mc_single"] > 1.5 * g["mc_full"]
    assert g["mc_single"] > 1.2 * g["mc_avg"]
    assert g["mc_single_acc"] < g["mc_full_acc"] - 0.02


def test_mc_dropout_spread_flags_errors(g):
    assert g["mcu_spread_wrong"] > 1.3 * g["mcu_spread_right"]
    assert g["mcu_spread_wins"] >= 0.9 * g["exp_n_seeds"]
    assert g["mcu_acc_kept_entropy"] > g["mcu_acc_all_entropy"] + 0.01
    assert g["mcu_acc_kept_spread"] > g["mcu_acc_all_spread"] + 0.01


def test_full_network_confidence_is_a_baseline_mc_dropout_does_not_beat(g):
    # the prose: "the free baseline does better" (both intervals below zero)
    assert _interval(g, "mcu_entropy_vs_conf")[2] < 0
    assert _interval(g, "mcu_spread_vs_conf")[2] < 0


# --- the big picture: dropout on a linear model is a data-scaled L2 penalty ------------------

def test_linear_dropout_expected_loss_is_loss_plus_scaled_l2(g):
    assert g["lin_n_masks"] == 2 ** g["lin_d"]
    assert g["lin_abs_diff"] < 1e-9 * g["lin_expected"]
    assert g["lin_expected"] == pytest.approx(g["lin_formula"], rel=1e-10)


# --- the explorer: replaying the recorded training curves ------------------------------------

def test_replay_unregularized_network_memorises_its_training_images(g):
    assert g["exp_none_train_final"] < 0.01
    assert g["exp_none_val_final"] > 20 * g["exp_none_train_final"]


def test_replay_thinned_networks_training_loss_stays_above_full_network_validation(g):
    # Keras's training metric is measured on the thinned networks, the validation on the full
    assert g["exp_dropout_train_final"] > g["exp_dropout_val_final"]
    assert g["exp_dropout_train_above_val"] == g["exp_n_seeds"]
    assert g["exp_dropout_train_final"] > 10 * g["exp_none_train_final"]


def test_replay_l2_keeps_training_loss_off_zero(g):
    assert g["exp_L2_train_final"] > 5 * g["exp_none_train_final"]  # "several times"
    assert g["exp_L2_train_final"] < 0.5 * g["exp_dropout_train_final"]
