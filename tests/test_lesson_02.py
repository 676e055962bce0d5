"""Chapter 02 teaches what its executed cells show: the claims in its prose, with margins.

Every value comes from the chapter's own `glue` calls (medians over seeds where there is
randomness), read from the notebook the book build executed.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.book

NOTEBOOK = "notebooks/02-l2-weight-decay.ipynb"


# --- the penalty, its gradient and the decaying update ---------------------------------

def test_gradient_check_passes_and_would_catch_a_missing_factor_2(g):
    assert g["grad_check_rel_err"] < 1e-7
    assert g["grad_check_rel_err_wrong"] > 1e-3


def test_practice_item_one_step_multiplies_by_0_998(g):
    assert g["decay_eta"] == 0.1 and g["decay_lam"] == 0.01
    assert g["decay_factor"] == pytest.approx(0.998, abs=1e-12)
    assert g["decay_factor_spread"] < 1e-12
    assert g["decay_step_max_diff"] < 1e-12
    assert g["decay_half_life"] == pytest.approx(346.2, abs=0.1)


def test_keras_gives_the_same_factor_by_penalty_and_by_weight_decay(g):
    assert g["decay_keras_factor_l2"] == pytest.approx(0.998, abs=1e-6)
    assert g["decay_keras_factor_wd"] == pytest.approx(0.998, abs=1e-6)


# --- conventions -------------------------------------------------------------------------

def test_summed_loss_with_m_lambda_equals_mean_loss_with_lambda(g):
    assert g["conv_mean_sum_diff"] < 1e-10


def test_keras_penalty_equals_the_hand_formula(g):
    assert g["conv_n_losses"] == 2
    assert g["conv_penalty_abs_diff"] < 1e-6
    assert g["conv_keras_penalty"] > 1e-3  # a real penalty, not two zeros agreeing


def test_keras_reported_loss_includes_the_penalty(g):
    assert g["conv_eval_gap"] == pytest.approx(g["conv_keras_penalty"], rel=1e-4)
    assert g["conv_eval_loss"] > g["conv_eval_mse"]


# --- the high-dimensional regression experiment ----------------------------------------

def test_setting_is_the_memorizing_regime(g):
    assert g["reg_d"] == 200 and g["reg_n_train"] == 20
    assert g["reg_n_seeds"] >= 3


def test_without_penalty_the_model_memorizes(g):
    assert g["reg_train_l0"] < 1e-8
    assert g["reg_val_l0"] > 1e4 * g["reg_train_l0"]
    assert g["reg_val_l0"] > 100 * g["reg_noise_var"]


def test_penalty_lowers_validation_loss_and_weight_norm_by_clear_margins(g):
    assert g["reg_val_demo"] < 0.01 * g["reg_val_l0"]
    assert g["reg_norm_demo"] < 0.01 * g["reg_norm_l0"]
    assert g["reg_train_demo"] > g["reg_train_l0"]  # the price: a worse training fit
    assert g["reg_val_ratio"] == pytest.approx(g["reg_val_l0"] / g["reg_val_demo"])


def test_decay_erases_the_directions_the_data_do_not_span(g):
    assert g["reg_null_ratio_l0"] == pytest.approx(1.0, abs=1e-9)
    assert g["reg_null_ratio_demo"] == pytest.approx(g["reg_null_predicted"], rel=1e-4)
    assert g["reg_null_predicted"] < 1e-6


def test_zero_initialisation_is_an_implicit_regularizer(g):
    assert g["reg_val_zero_init"] < 0.01 * g["reg_val_l0"]


def test_lambda_chosen_on_validation_is_positive_and_helps_on_test(g):
    assert g["reg_best_lam_min"] > 0
    assert g["reg_best_val"] < 0.01 * g["reg_sweep_val_l0"]
    assert g["reg_best_norm"] < 0.01 * g["reg_sweep_norm_l0"]
    # the chosen models' single test evaluation is close to their validation error
    assert g["reg_test_mse"] < 1.5 * g["reg_best_val"]
    assert g["reg_test_mse"] < 2 * g["reg_unlearnable"]
    # the prose: the chosen models beat predicting the mean label, but only modestly
    assert 0.03 < g["reg_gain_over_constant"] < 0.2
    assert g["reg_val_constant"] == pytest.approx(g["reg_val_zero_init"], rel=0.2)


def test_exact_ridge_validation_curve_is_flat_on_these_data(g):
    # the exact ridge solution varies by a few percent over the whole grid ...
    assert g["reg_exact_spread"] < 0.1
    assert g["reg_exact_val_max"] == pytest.approx(g["reg_exact_val_min"] * (1 + g["reg_exact_spread"]))
    assert g["reg_exact_val_min"] > 0.5 * g["reg_unlearnable"]  # the span floor holds for it


def test_gradient_descent_curve_shape_comes_from_the_initialisation(g):
    # ... while gradient descent from N(0, 1) sits orders of magnitude above it at small lambda
    assert g["reg_gd_val_left"] > 1000 * g["reg_exact_val_left"]
    assert g["reg_gd_val_left"] == pytest.approx(g["reg_sweep_val_l0"], rel=0.1)
    # and lands on it once the decay has erased the initialisation
    assert g["reg_gd_exact_ratio_chosen"] == pytest.approx(1, abs=0.01)
    assert g["reg_gd_exact_ratio_right"] == pytest.approx(1, abs=0.01)
    assert (1 - 2 * g["reg_eta"] * g["reg_lam_erase"]) ** g["reg_steps"] == pytest.approx(0.01)
    assert g["reg_best_lam_min"] > g["reg_lam_erase"]  # every seed chose past the grey band


def test_the_span_floor_does_not_bind_an_estimator_outside_the_span(g):
    assert g["reg_val_equal_weights"] < 0.1 * g["reg_unlearnable"]
    assert g["reg_val_equal_weights"] < 3 * g["reg_noise_var"]
    assert g["reg_n_null"] == g["reg_d"] - g["reg_n_train"]


def test_keras_linear_model_follows_the_numpy_path(g):
    assert g["reg_keras_rel_diff"] < 1e-4


def test_random_search_tries_more_distinct_values(g):
    assert g["search_grid_distinct"] == g["search_grid_side"]
    assert g["search_random_distinct"] == g["search_n"] > g["search_grid_distinct"]


# --- geometry and the Bayesian reading ---------------------------------------------------

def test_constrained_minimum_is_a_penalized_minimum(g):
    assert g["geo_diff"] < 1e-6
    assert g["geo_lam"] > 0


def test_map_with_gaussian_prior_is_ridge_with_lambda_sigma2_over_m_tau2(g):
    assert g["map_lam"] == pytest.approx(g["map_sigma"] ** 2 / (g["map_m"] * g["map_tau"] ** 2))
    assert g["map_diff"] < 1e-5


# --- what to penalize, max-norm --------------------------------------------------------

def test_only_kernels_are_penalized_and_decayed(g):
    assert g["what_n_trainable"] == 6 and g["what_n_losses"] == 2
    assert g["what_n_penalized"] == 2 and g["what_penalized_are_kernels"] == 1
    assert g["what_kernel_factor"] == pytest.approx(0.998, abs=1e-6)
    assert g["what_other_change"] < 1e-7


def test_l2_on_a_kernel_feeding_batch_norm_does_not_limit_sensitivity(g):
    assert g["bn_epsilon"] == pytest.approx(1e-3)
    for name in ("small", "big"):
        c = g[f"bn_c_{name}"]
        assert c != 1
        assert g[f"bn_out_rel_diff_{name}"] < 1e-2  # the output barely moves (only epsilon)
        assert g[f"bn_penalty_ratio_{name}"] == pytest.approx(c**2, rel=1e-5)  # the penalty does
        assert g[f"bn_grad_ratio_{name}"] == pytest.approx(1 / c, rel=0.02)  # gradient ~ 1/c


def test_max_norm_caps_the_column_norms(g):
    c = g["mn_c"]
    assert g["mn_numpy_keras_diff"] < 1e-5
    assert g["mn_capped_max"] <= c * (1 + 1e-5)
    assert g["mn_free_max"] > 1.2 * c  # without the cap the norms do grow past c
    assert g["mn_free_frac_over"] > 0.5
    assert g["mn_capped_frac_at_cap"] > 0.5  # the constraint is active, not idle


# --- coupled L2 against decoupled weight decay --------------------------------------------

def test_sgd_coupled_and_decoupled_agree(g):
    assert g["dec_np_max_diff"] < 1e-10
    assert g["dec_keras_dtype"] == "float64"
    assert g["dec_keras_max_diff"] < 1e-10
    assert g["dec_dead_ratio"] == pytest.approx(g["dec_dead_predicted"], rel=1e-6)


def test_adam_and_adamw_weights_differ_measurably(g):
    assert g["adam_rel_diff"] > 0.05
    assert g["adam_rel_diff"] > 1e6 * g["dec_keras_max_diff"]


def test_adam_normalizes_the_size_of_lambda_away(g):
    # With no data gradient, a 100x change of lambda barely moves Adam + L2 ...
    assert g["pure_lam_ratio"] >= 100
    assert abs(g["pure_adam_l2_big"] - g["pure_adam_l2_small"]) < 0.01
    assert g["pure_adam_l2_big"] < 0.5
    # ... while AdamW decays geometrically, by (1 - eta * wd) per step.
    assert g["pure_adamw_big"] == pytest.approx(g["pure_adamw_big_predicted"], rel=1e-9)
    assert g["pure_adamw_small"] > g["pure_adamw_big"] > 0.9


def test_weights_without_data_gradient_under_adam_l2_and_adamw(g):
    assert g["adam_dead_l2_ratio"] < 0.2
    assert g["adam_dead_w_ratio"] == pytest.approx(g["adam_dead_w_predicted"], rel=1e-3)


# --- ridge in the eigenbasis: the explorer over lambda -------------------------------------

def test_svd_shrinkage_formula_matches_the_normal_equations_and_the_hat_matrix(g):
    assert g["eig_w_diff"] < 1e-10
    assert g["eig_trace_diff"] < 1e-9
    assert 0 < g["eig_df_check"] < g["eig_degree"]


def test_explorer_validation_error_is_lowest_at_an_interior_lambda(g):
    assert g["eig_lam_min"] < g["eig_best_lam"] < g["eig_lam_max"]
    assert g["eig_best_val"] < 0.1 * g["eig_val_left"]  # far below the near-interpolating fit
    assert g["eig_best_val"] < 0.5 * g["eig_val_right"]  # and clearly below the flat one
    assert g["eig_best_val"] < 2 * g["eig_noise_var"]  # "not far above the noise variance"
    assert g["eig_best_val"] > g["eig_noise_var"] * 0.8


def test_explorer_df_norm_and_training_error_move_one_way(g):
    assert g["eig_train_monotone"] and g["eig_norm_monotone"] and g["eig_df_monotone"]
    assert g["eig_df_left"] > g["eig_degree"] - 1  # nearly every direction kept
    assert g["eig_df_right"] < 1  # nearly every direction erased
    assert g["eig_df_right"] < g["eig_best_df"] < g["eig_df_left"]
    assert g["eig_train_left"] < 0.1 * g["eig_noise_var"]  # it threads the training points
    assert g["eig_norm_left"] > 100 * g["eig_best_norm"]
    # at the largest lambda the model underfits: training error close behind validation
    assert g["eig_train_right"] > 0.5 * g["eig_val_right"]
    assert g["eig_train_right"] > 2 * g["eig_noise_var"]


def test_the_u_shape_is_typical_over_training_sets(g):
    assert g["eig_n_seeds"] >= 10
    assert g["eig_n_interior"] >= 0.8 * g["eig_n_seeds"]
    assert g["eig_seed_best_lam_min"] > g["eig_lam_min"]
    assert g["eig_seed_best_lam_max"] < g["eig_lam_max"]
    assert g["eig_median_val_best"] < 0.1 * g["eig_median_val_left"]
    assert g["eig_median_val_best"] < 0.5 * g["eig_median_val_right"]


# --- which optimizer argument is coupled, which decoupled -------------------------------------

def test_keras_adam_weight_decay_is_decoupled_like_adamw(g):
    assert g["kwd_steps"] >= 10
    assert g["kwd_adam_vs_adamw"] < 1e-7
    assert g["kwd_adam_vs_coupled"] > 1e-3
