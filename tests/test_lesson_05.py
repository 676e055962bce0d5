"""Chapter 05 teaches what its executed cells show: the claims in its prose, with margins.

Every value comes from the chapter's own `glue` calls (medians over seeds), read from the
notebook the book build executed.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.book

NOTEBOOK = "notebooks/05-early-stopping.ipynb"


# --- the label-noise experiment --------------------------------------------------------

def test_the_corruption_is_the_stated_fraction(g):
    assert g["n_corrupted"] == round(g["noise_fraction"] * g["n_train"])
    assert g["noise_fraction"] == pytest.approx(0.4)


def test_noisy_labels_are_memorized(g):
    # training accuracy against the noisy labels ends far above the 60% a digit-recognizer
    # could reach on them
    assert g["noisy_train_acc"] > 0.95
    assert g["clean_train_acc"] > 0.95


def test_noisy_validation_accuracy_peaks_early_and_falls(g):
    assert g["noisy_peak_epoch"] <= 0.3 * g["epochs"]
    assert g["noisy_val_loss_min_epoch"] <= 0.4 * g["epochs"]
    assert g["noisy_peak"] > 0.8
    assert g["noisy_drop"] > 0.1
    assert g["noisy_final"] < g["noisy_peak"] - 0.1
    assert g["noisy_val_loss_ratio"] > 1.5


def test_clean_label_drop_is_much_smaller(g):
    assert g["clean_drop"] < 0.03
    assert g["clean_drop"] < 0.25 * g["noisy_drop"]
    assert g["clean_final"] > g["noisy_final"] + 0.15


# --- Keras's EarlyStopping on the noisy labels -----------------------------------------

def test_restored_model_beats_the_final_one_by_a_clear_margin(g):
    assert g["es_gain"] > 0.08
    assert g["es_restored_val_acc"] > g["es_final_val_acc"] + 0.08
    assert g["es_gain_points"] == pytest.approx(100 * g["es_gain"])
    assert g["es_below_peak_points"] < 5


def test_callback_stops_early_and_patience_epochs_after_the_best(g):
    assert g["es_epochs_run"] < 0.6 * g["epochs"]
    for stop, best in zip(g["es_stopped_epochs"], g["es_best_epochs"]):
        assert stop - best == g["patience"]
    assert g["es_same_path"] == 1  # the run with the callback retraced the run without it


def test_restored_model_ignores_the_planted_labels(g):
    assert g["es_final_memorized"] > 0.9
    assert g["es_restored_memorized"] < 0.3
    # the prose: above the rate of a network that ignored the planted labels
    assert g["es_restored_memorized"] > g["chance_memorized"]
    assert g["chance_memorized"] == pytest.approx((1 - g["es_restored_true"]) / 9, rel=0.05)
    assert g["es_restored_true"] > 0.6
    assert g["es_final_true"] < 0.1


def test_the_test_set_confirms_the_restored_model(g):
    assert g["es_test_acc"] > 0.8
    assert abs(g["es_val_minus_test_points"]) < 8


# --- the hand-written rule against keras.callbacks.EarlyStopping -----------------------

def test_hand_written_loop_agrees_with_keras_on_every_history(g):
    assert g["n_histories"] == g["n_cases"] + g["n_random"] + g["n_seeds"]
    assert g["n_agree"] == g["n_histories"]
    assert g["n_replay_agree"] == g["n_seeds"]


def test_edge_cases_behave_as_the_prose_says(g):
    cases = g["case_results"]  # name -> [[ours stop, ours best], [keras stop, keras best]]
    for ours, theirs in cases.values():
        assert ours == theirs
    stop = {name: value[1][0] for name, value in cases.items()}  # -1: never stopped
    best = {name: value[1][1] for name, value in cases.items()}
    assert stop["the same, patience 0"] == stop["the same, patience 1"]
    assert stop["small gains, no min_delta"] == -1
    assert stop["small gains, min_delta"] != -1
    assert (stop["never improves"], best["never improves"]) == (3, 0)
    assert stop["never improves, large patience"] == -1
    assert stop["best at the last epoch"] == -1 and best["best at the last epoch"] == 5
    assert stop["flat: ties are not improvements"] == 2
    assert stop["warm-up ignored"] > stop["no warm-up"]


# --- early stopping against ridge for a linear model -----------------------------------

def test_weight_norm_grows_with_the_steps(g):
    norms = g["lin_norms"]
    assert all(b > a for a, b in zip(norms, norms[1:]))
    ridge = g["lin_norms_ridge"]
    assert all(b > a for a, b in zip(ridge, ridge[1:]))


def test_early_stopped_solution_resembles_ridge_at_one_over_eta_tau(g):
    assert g["lin_rel_dist"] < 0.35
    assert g["lin_rel_dist"] < 0.6 * min(g["lin_rel_dist_10x"], g["lin_rel_dist_01x"])
    assert 0.2 < g["lin_best_c"] < 5
    assert 0.1 < g["lin_best_c_lo"] <= g["lin_best_c"] <= g["lin_best_c_hi"] < 10


def test_stopping_early_beats_running_to_least_squares(g):
    assert g["lin_val_best"] < 0.8 * g["lin_val_ls"]
    assert g["lin_val_best"] == pytest.approx(g["lin_val_ridge_best"], rel=0.25)


# --- the explorer: patience and label noise, replayed on the recorded runs -----------------

def test_replay_is_what_the_callback_did(g):
    assert g["stop_replay_agree"] == g["n_seeds"]
    assert g["patience"] in g["stop_patiences"]


def test_more_patience_never_stops_earlier_and_costs_epochs(g):
    for kind in ("noisy", "clean"):
        for per_seed in g[f"stop_epochs_per_seed_{kind}"]:
            assert all(b >= a for a, b in zip(per_seed, per_seed[1:]))
        medians = g[f"stop_epochs_{kind}"]
        assert g[f"stop_first_epochs_{kind}"] == round(medians[0])
        assert g[f"stop_last_epochs_{kind}"] == round(medians[-1])
        assert medians[-1] >= medians[0] + 15
        assert medians[-1] <= g["epochs"]


def test_too_little_patience_is_fooled_by_a_wiggle(g):
    for kind in ("noisy", "clean"):
        ratios = g[f"stop_kept_ratio_{kind}"]
        assert ratios[0] == pytest.approx(g[f"stop_first_ratio_{kind}"])
        assert g[f"stop_first_ratio_{kind}"] > 1.05  # patience 1 keeps a clearly worse epoch
        assert g[f"stop_chapter_ratio_{kind}"] < 1.01  # the chapter's patience: the best one
        assert min(ratios) >= 1.0


def test_label_noise_sets_the_stakes(g):
    assert g["noisy_val_loss_ratio"] > g["clean_val_loss_ratio"] + 0.3
    assert g["clean_val_loss_min_epoch"] > g["noisy_val_loss_min_epoch"]


# --- the inequality behind "early stopping ~ ridge", and Adam ----------------------------

def test_gd_shrinks_every_direction_less_than_the_matching_ridge(g):
    # 1 - (1 - eta s)^tau >= 1 - exp(-x) >= x / (1 + x): never negative, on every triple
    assert g["shrink_n_triples"] >= 1000
    assert g["shrink_gap_min"] >= -1e-12
    assert g["shrink_formula_err"] < 1e-8  # the formula is what gradient descent computed
    assert g["shrink_norm_ratio_min"] >= 1.0  # so the weight vector is never shorter
    assert g["shrink_norm_ratio_max"] > 1.05
    # the continuous bound's largest gap, at e^x = (1 + x)^2
    assert g["shrink_gap_argmax"] == pytest.approx(2.513, abs=0.01)
    assert g["shrink_gap_max_cont"] == pytest.approx(0.2036, abs=0.001)
    # the discrete gap is largest after the first step along the strongest direction: 1 vs 1/2
    assert g["shrink_gap_max"] == pytest.approx(0.5, abs=1e-9)
    assert g["shrink_gap_max_tau"] == 1 and g["shrink_gap_max_is_top"]
    # the closest ridge has a weaker penalty than 1/(eta tau), in 80% of the cases at least
    assert g["lin_best_c"] < 1 and g["lin_best_c_hi"] < 1


def test_adam_breaks_the_eigen_direction_picture(g):
    assert g["gd_rot_change"] < 1e-10  # gradient descent: rotation-equivariant
    assert g["adam_rot_change_min"] > 0.05  # Adam: not, in every problem
    assert g["adam_rot_change"] > 0.1
    assert g["gd_outside"] == 0
    assert g["adam_outside"] > 0.1


# --- loss vs accuracy, and ReduceLROnPlateau --------------------------------------------

def test_loss_and_accuracy_pick_different_epochs_with_noisy_labels(g):
    loss_epochs, acc_epochs = g["monitor_loss_epochs_noisy"], g["monitor_acc_epochs_noisy"]
    assert len(loss_epochs) == len(acc_epochs) == g["n_seeds"]
    assert g["monitor_n_differ_noisy"] == sum(a != b for a, b in zip(loss_epochs, acc_epochs))
    assert g["monitor_n_differ_noisy"] >= g["n_seeds"] - 1
    assert sorted(acc_epochs)[1] < sorted(loss_epochs)[1]  # the accuracy peaks earlier
    assert g["monitor_acc_gap_points_noisy"] > 0.5
    assert g["monitor_loss_ratio_noisy"] > 1.02
    assert g["acc_step_points"] == pytest.approx(100 / g["n_val"])


def test_plateau_replay_lowers_the_rate_where_early_stopping_would_stop(g):
    for kind in ("noisy", "clean"):
        rates = g[f"plateau_rates_{kind}"]
        assert len(rates) == g["epochs"]
        assert all(b <= a for a, b in zip(rates, rates[1:]))  # only ever lowered
        assert rates[0] == pytest.approx(g["learning_rate"])
        assert min(rates) >= g["plateau_min_lr"] * (1 - 1e-6)
        assert g[f"plateau_same_as_stop_{kind}"]
        assert g[f"plateau_n_reductions_{kind}"] >= 1
        first = g[f"plateau_first_{kind}"]
        assert rates[first - 1] == pytest.approx(g["learning_rate"])
        assert rates[first] == pytest.approx(g["learning_rate"] * g["plateau_factor"])
    # The defaults differ (the prose says so), and the comparison above used both.
    assert g["plateau_min_delta"] > 0
    assert g["stop_min_delta"] == 0
