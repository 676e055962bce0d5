"""Chapter 08 teaches what its executed cells show: the claims in its prose, with margins.

Every value comes from the chapter's own `glue` calls (medians over seeds for the trained
networks), read from the notebook the book build executed.
"""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.book

NOTEBOOK = "notebooks/08-choosing-and-combining.ipynb"


# --- the stated conventions ------------------------------------------------------------------

def test_keras_l2_is_lambda_times_sum_of_squares_without_a_half(g):
    assert g["conv_l2_rel_diff"] < 1e-5
    assert g["conv_l2_keras"] == pytest.approx(g["conv_l2_hand"], rel=1e-5)


def test_max_norm_caps_each_units_incoming_vector(g):
    c = g["conv_max_norm"]
    assert 0 < g["conv_n_long"] < g["conv_n_units"]  # some units capped, some not
    assert g["conv_norm_before_max"] > 1.5 * c
    assert g["conv_norm_after_max"] <= c * (1 + 1e-5)
    assert g["conv_long_after"] == pytest.approx([c] * g["conv_n_long"], rel=1e-4)
    assert g["conv_short_unchanged"] < 1e-6  # shorter vectors: unchanged up to rounding
    assert 0 < g["conv_keras_eps"] < 1e-5  # the fuzz factor that makes them not exactly equal
    assert g["conv_direction_diff"] < 1e-5  # long vectors only rescaled


def test_dropout_rate_is_the_drop_probability(g):
    assert abs(g["conv_kept"] - (1 - g["conv_rate"])) < 0.01


def test_the_variable_strength_layers_compute_what_keras_computes(g):
    # the chapter trains one compiled network whose L2 and dropout read their strengths
    # from variables: they must match keras.regularizers.L2 and keras.layers.Dropout
    assert g["var_l2_rel_diff"] < 1e-5
    assert abs(g["var_kept"] - (1 - g["conv_rate"])) < 0.01
    assert g["var_survivor_value"] == pytest.approx(1 / (1 - g["conv_rate"]), rel=1e-5)
    assert g["var_keras_survivor_value"] == pytest.approx(g["var_survivor_value"], rel=1e-5)
    assert g["var_inference_diff"] < 1e-6  # identity at inference


# --- L2 + dropout --------------------------------------------------------------------------

def test_setting(g):
    assert g["a_n_seeds"] >= 10
    assert g["a_n_train"] == 300 and g["a_n_val"] == 500
    assert g["a_n_test"] == 1797 - 800


def test_unregularized_network_overfits(g):
    assert g["a_none_train"] < 0.01
    assert g["a_none_val"] > 10 * g["a_none_train"]
    assert g["a_none_rise"] > 1.04  # the validation loss rises after its minimum
    assert g["a_none_min_step"] < g["a_steps"]


def test_each_tool_alone_helps(g):
    for name in ("L2", "dropout"):
        assert g[f"a_{name}_val"] < 0.9 * g["a_none_val"], name
        assert g[f"a_{name}_wins"] == g["a_n_seeds"], name
        # paired over the seeds: the whole 95% interval is below zero
        assert g[f"a_d_{name}_none_low"] <= g[f"a_d_{name}_none"] <= g[f"a_d_{name}_none_high"]
        assert g[f"a_d_{name}_none_high"] < -0.02, name


def test_the_combination_beats_the_baseline_and_its_weaker_component(g):
    assert g["a_both_vs_none"] == pytest.approx(g["a_both_val"] / g["a_none_val"])
    assert g["a_both_vs_none"] < 0.8
    assert g["a_both_wins"] == g["a_n_seeds"]
    worst = max(g["a_L2_val"], g["a_dropout_val"])
    assert g["a_both_vs_worst"] == pytest.approx(g["a_both_val"] / worst)
    assert g["a_both_vs_worst"] < 0.95
    # ... but the gains do not add up: not far below the better single tool
    assert g["a_both_val"] > 0.8 * min(g["a_L2_val"], g["a_dropout_val"])


def test_the_combination_is_only_slightly_better_than_dropout_alone(g):
    # the prose names L2 the weaker and dropout the stronger single tool; the combination's
    # paired difference to dropout is "small next to dropout's own gain, though not zero"
    assert g["a_L2_val"] > g["a_dropout_val"]
    assert g["a_both_vs_best"] == pytest.approx(g["a_both_val"] / g["a_dropout_val"])
    assert 0.95 < g["a_both_vs_best"] < 1.05
    assert g["a_d_both_dropout_high"] < 0  # not zero
    assert abs(g["a_d_both_dropout"]) < 0.2 * abs(g["a_d_dropout_none"])  # but small
    assert g["a_d_both_L2_high"] < -0.01  # clearly better than L2 alone


# --- augmentation + early stopping -----------------------------------------------------------

def test_noise_moves_the_stopping_point_later(g):
    assert g["b_noise_es_step"] >= 3 * g["b_none_es_step"]
    assert g["b_none_es_step"] <= 0.3 * g["b_steps"]


def test_early_stopping_alone_does_not_help_here(g):
    assert g["b_none_es_vs_final"] == pytest.approx(g["b_none_es"] / g["b_none_final"])
    assert g["b_none_es_vs_final"] > 1.02  # "did not improve": worse than training to the end


def test_early_stopping_does_not_improve_on_noise_alone(g):
    # "the gain of the combination comes from the noise": stopping the noisy runs early is
    # no better than training them all steps
    assert g["b_noise_es_vs_final"] == pytest.approx(g["b_noise_es"] / g["b_noise_final"])
    assert g["b_noise_es_vs_final"] > 1.0


def test_the_two_validation_halves_disagree_without_noise(g):
    # stopping half: rises after the kept check; report half: improves after it
    assert g["b_none_stop_final"] > 1.1 * g["b_none_stop_es"]
    assert g["b_none_es"] > 1.03 * g["b_none_final"]
    # a handful of images dominates a half's cross-entropy
    assert g["b_n_worst"] <= 0.05 * g["b_n_stop"]
    assert g["b_worst_share_stop"] > 0.6
    assert g["b_worst_share_report"] > 0.6


def test_augmentation_plus_early_stopping_beats_early_stopping_alone(g):
    assert g["b_combo_vs_es"] == pytest.approx(g["b_noise_es"] / g["b_none_es"])
    assert g["b_combo_vs_es"] < 0.9
    assert g["b_combo_wins"] == g["b_n_seeds"] >= 3
    assert g["b_combo_vs_none"] == pytest.approx(g["b_noise_es"] / g["b_none_final"])
    assert g["b_combo_vs_none"] < 0.9
    assert g["b_n_stop"] + g["b_n_report"] == g["a_n_val"]


# --- batch norm + max-norm -------------------------------------------------------------------

def test_batch_norm_divides_out_the_max_norm_rescaling(g):
    assert g["bn_norm_before"] > 1.5 * g["bn_c"]  # the constraint really rescaled
    assert g["bn_dense_diff"] > 0.3 * g["bn_out_scale"]  # the raw outputs changed a lot
    assert g["bn_diff_capped"] < 0.01 * g["bn_out_scale"]  # after batch norm: almost nothing


# --- the tuning study ------------------------------------------------------------------------

def test_search_space_and_draws(g):
    assert 8 <= g["d_n_trials"] <= 12
    assert len(g["d_trials"]) == g["d_n_trials"]
    lo, hi = 10 ** g["d_log_lam_low"], 10 ** g["d_log_lam_high"]
    for lam, rate, _ in g["d_trials"]:
        assert lo <= lam <= hi
        assert g["d_rate_low"] <= rate <= g["d_rate_high"]


def test_the_choice_is_made_on_validation(g):
    best = min(g["d_trials"], key=lambda t: t[2])
    assert [g["d_best_lam"], g["d_best_rate"], g["d_best_val"]] == pytest.approx(best)
    assert g["d_worst_val"] == pytest.approx(max(t[2] for t in g["d_trials"]))



def test_explorer_the_largest_lambda_underfits_and_scores_worst(g):
    assert g["d_x_score_is_last"] < 1e-6  # a trial's score is the last point of its curve
    lams = sorted(t[0] for t in g["d_trials"])
    assert g["d_x_strong_lam"] == pytest.approx(lams[-1])
    assert g["d_x_strong_val"] == pytest.approx(g["d_worst_val"])
    assert g["d_x_strong_train"] > 5 * g["d_x_other_train_max"]
    assert g["d_x_strong_train"] > 0.1


def test_explorer_with_a_weak_penalty_the_dropout_rate_decides(g):
    weak = [t for t in g["d_trials"] if t[0] < g["d_x_weak_lam"]]
    low = [t[2] for t in weak if t[1] < g["d_x_rate_split"]]
    high = [t[2] for t in weak if t[1] >= g["d_x_rate_split"]]
    assert (len(low), len(high)) == (g["d_x_n_low_rate"], g["d_x_n_high_rate"])
    assert len(low) >= 2 and len(high) >= 2
    assert g["d_x_low_rate_best"] == pytest.approx(min(low))
    assert g["d_x_high_rate_worst"] == pytest.approx(max(high))
    assert g["d_x_high_rate_worst"] < g["d_x_low_rate_best"] - 0.01


def test_explorer_the_score_wobbles_as_much_as_the_best_trials_differ(g):
    scores = sorted(t[2] for t in g["d_trials"])
    n = g["d_x_n_top"]
    assert g["d_x_top_spread"] == pytest.approx(scores[n - 1] - scores[0])
    assert g["d_x_top_spread"] < 0.05
    # "about as much": the last-step wobble of one curve is comparable to the spread
    assert 0.6 * g["d_x_top_spread"] < g["d_x_wobble_max"] < 2.5 * g["d_x_top_spread"]


def test_tuned_setting_beats_the_unregularized_baseline_on_validation(g):
    assert g["d_baseline_val"] == pytest.approx(g["a_none_val"])
    assert len(g["d_tuned_runs"]) == g["a_n_seeds"]
    assert g["d_tuned_val"] < 0.85 * g["d_baseline_val"]
    assert max(g["d_tuned_runs"]) < g["d_baseline_val"]
    assert g["d_d_none_low"] <= g["d_d_none"] <= g["d_d_none_high"] < -0.03


def test_tuned_setting_is_no_better_than_the_hand_picked_ones(g):
    # "no better than the untuned settings ... the exact strengths matter little"
    assert g["d_tuned_vs_both"] == pytest.approx(g["d_tuned_val"] / g["a_both_val"])
    assert g["d_tuned_vs_dropout"] == pytest.approx(g["d_tuned_val"] / g["a_dropout_val"])
    for ratio in (g["d_tuned_vs_both"], g["d_tuned_vs_dropout"]):
        assert 0.98 < ratio < 1.1
    # paired over the seeds: the intervals reach zero, so no detectable gain, and any
    # difference is small next to the gain over no regularization
    for name in ("both", "dropout"):
        assert g[f"d_d_{name}_low"] < 0 < g[f"d_d_{name}_high"], name
        assert g[f"d_d_{name}_high"] - g[f"d_d_{name}_low"] < 0.2 * abs(g["d_d_none"]), name
    # retrained, the chosen setting is worse than its own winning trial
    assert g["d_tuned_val"] > 1.02 * g["d_best_val"]


def test_the_test_set_is_used_exactly_once(g):
    assert g["d_test_evaluations"] == 1
    assert 0.85 < g["d_test_acc"] <= 1
    assert math.isfinite(g["d_test_xent"]) and g["d_test_xent"] > 0
    assert g["d_gap_xent"] == pytest.approx(g["d_test_xent"] - g["d_best_val"])
    assert g["d_gap_acc_points"] == pytest.approx(100 * (g["d_best_val_acc"] - g["d_test_acc"]))


def test_the_observed_gaps_are_negative_and_within_the_noise(g):
    # the prose: both gaps negative, the cross-entropy gap within its standard error's range
    assert g["d_best_val_check"] == pytest.approx(g["d_best_val"], rel=1e-6)
    assert g["d_gap_xent"] < 0 and g["d_gap_acc_points"] < 0
    assert 0 < g["d_gap_xent_se"] and abs(g["d_gap_xent"]) < 2 * g["d_gap_xent_se"]
    # accuracy played no part in the choice: several trials had a higher validation accuracy
    assert 2 <= g["d_n_more_accurate"] < g["d_n_trials"]


def test_the_best_of_several_noisy_scores_is_optimistic(g):
    sigma = 100 * math.sqrt(g["sim_true_acc"] * (1 - g["sim_true_acc"]) / g["sim_n_val"])
    assert g["sim_sigma_points"] == pytest.approx(sigma)
    assert g["sim_reps"] >= 10_000
    assert abs(g["sim_single_points"]) < 0.3 * sigma  # one measurement: unbiased
    assert g["sim_optimism_points"] > 0.8 * sigma  # the best of k: biased upward
    assert g["sim_optimism_large_points"] > g["sim_optimism_points"] + 0.3 * sigma



def test_the_optimism_simulation_is_neither_an_upper_nor_a_lower_bound(g):
    # it models validation sampling noise only; shared errors lower the optimism, seed luck
    # raises it, both measured on the study
    assert 0 < g["sim_shared"] < 1
    assert g["sim_seed_sd_points"] > 0
    base = g["sim_opt_sampling_points"]
    assert base == pytest.approx(g["sim_optimism_points"], rel=0.15)  # normal approximation
    assert g["sim_opt_shared_points"] < 0.9 * base  # below the simulated figure
    assert g["sim_opt_seed_points"] > 1.05 * base  # above it
    assert g["sim_opt_shared_points"] < g["sim_opt_shared_seed_points"] < g["sim_opt_seed_points"]


# --- inference: the training flag ------------------------------------------------------------

def test_model_call_without_a_flag_runs_augmentation_layers_in_training_mode(g):
    n = g["flip_n"]
    assert g["flip_mirror_differs"] is True  # a flip is visible on this digit
    assert 3 <= g["flip_changed_call"] <= n - 3  # about half of the copies flipped
    assert g["flip_changed_no_training"] == 0
    assert g["flip_changed_predict"] == 0
    assert g["flip_evaluate_loss"] == 0.0


def test_dropout_and_noise_layers_default_to_inference_mode(g):
    assert g["net_call_diff"] < 1e-6
