"""Chapter 06 teaches what its executed cells show: the claims in its prose, with margins.

Every value comes from the chapter's own `glue` calls (medians over seeds for the training
runs), read from the notebook the book build executed.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.book

NOTEBOOK = "notebooks/06-data-augmentation.ipynb"


# --- the experiment: small rotations and shifts against none against flips --------------
# Claims rest on test accuracy at the validation-chosen checkpoint, paired by seed, with a
# 95% t-interval over >= 10 seeds; an interval that touches zero fails these tests.

def test_the_claims_rest_on_ten_seeds_and_a_test_set_used_once(g):
    assert g["aug_n_seeds"] >= 10
    assert g["aug_dof"] == g["aug_n_seeds"] - 1
    assert len(g["aug_test_none_runs"]) == len(g["aug_test_good_runs"]) == g["aug_n_seeds"]
    assert g["aug_n_test"] >= 500  # a test set large enough to quote
    assert g["aug_n_checkpoints"] == g["aug_steps"] // g["aug_eval_every"] >= 5


def test_label_preserving_augmentation_raises_test_accuracy(g):
    # the paired interval lies above zero, and the mean gain is at least a point
    assert g["aug_gain_low"] > 0.0
    assert g["aug_gain_mean"] >= 0.01
    assert g["aug_gain_low"] <= g["aug_gain_mean"] <= g["aug_gain_high"]
    assert g["aug_gain_better"] >= g["aug_n_seeds"] - 2  # not one lucky seed
    assert g["aug_test_good"] > g["aug_test_none"]
    assert g["aug_gain_points"] == pytest.approx(100 * g["aug_gain_mean"])


def test_augmented_runs_peak_later(g):
    # the prose: without augmentation the best checkpoint comes early, with it later
    assert g["aug_step_good"] >= g["aug_step_none"] + 2 * g["aug_eval_every"]


def test_validation_optimism_is_small_as_stated(g):
    # "exceeds its test accuracy by a median of only ...": small, and not negative
    assert 0.0 <= g["aug_optimism_all"] < 0.02


def test_augmentation_does_not_stop_the_net_from_fitting_its_training_images(g):
    # what was measured instead of "cannot memorise": clean training accuracy stays high
    assert g["aug_train_none"] >= 0.99
    assert g["aug_train_good"] >= 0.97
    # the gap narrows because test accuracy rises, not because training accuracy falls
    assert g["aug_gap_good"] < g["aug_gap_none"] - 0.01
    assert g["aug_train_none"] - g["aug_train_good"] < g["aug_test_good"] - g["aug_test_none"]


def test_label_changing_flips_lower_test_accuracy_below_no_augmentation(g):
    assert g["aug_flip_high"] < 0.0  # the whole interval below zero
    assert g["aug_flip_mean"] <= -0.03
    assert g["aug_flip_worse"] >= g["aug_n_seeds"] - 1
    assert g["aug_test_flip"] <= g["aug_test_none"] - 0.03
    # and, a fortiori, below the label-preserving augmentation
    assert g["aug_flip_vs_good_high"] < -0.03
    assert g["aug_flip_points"] == pytest.approx(100 * g["aug_flip_mean"])


def test_flip_damage_does_not_show_on_the_training_set(g):
    # the flip-trained net still fits its clean training images; only new data suffer
    assert g["aug_train_flip"] >= 0.97
    assert g["aug_gap_flip"] > g["aug_gap_none"] + 0.03


def test_random_flip_is_a_coin_for_a_180_degree_rotation(g):
    assert g["flip_n_other"] == 0
    assert g["flip_n_unchanged"] + g["flip_n_rotated"] == g["flip_n_images"]
    # both outcomes occur, roughly half and half
    assert 0.3 * g["flip_n_images"] < g["flip_n_rotated"] < 0.7 * g["flip_n_images"]


# --- augmentation at inference --------------------------------------------------------------

def test_preprocessing_layers_are_the_identity_at_inference(g):
    assert g["photo_inert_max_diff"] == 0.0
    assert g["inf_layers_inert"] == 0.0
    assert g["inf_layers_active"] > 0.1  # while in training mode they do move pixels


def test_predictions_are_deterministic_at_inference(g):
    assert g["inf_predict_repeat"] == 0.0
    assert g["inf_wrapped_vs_bare"] == 0.0
    assert g["inf_train_mode_repeat"] > 0.0  # training=True: a new draw each call


def test_a_direct_call_without_training_argument_augments(g):
    # Keras 3: the random preprocessing layers default to training=True, so model(x) is a
    # random draw while predict / training=False are clean (issue 14, item 1)
    assert g["keras_version"].startswith("3.")
    assert g["inf_n_calls"] >= 5
    assert g["inf_direct_changed"] == g["inf_n_calls"]  # rotations + shifts move every image
    assert g["inf_direct_class_changed"] > 0.0
    # a RandomFlip model on eight photographs: a call changes none of them with chance 1/256
    assert g["inf_flip_direct_changed"] >= g["inf_n_calls"] - 1
    assert g["inf_flip_predict_changed"] == 0


# --- the explorer: the trained networks on turned validation digits -----------------------

def test_explorer_uses_a_subset_of_the_seeds(g):
    assert 3 <= g["rot_n_seeds"] <= g["aug_n_seeds"]


def test_explorer_augmented_net_is_more_robust_inside_the_training_range(g):
    # per-seed drop in accuracy from 0 degrees to the augmentation's maximum angle
    assert g["rot_good_drop_train"] < g["rot_none_drop_train"] - 0.01
    assert g["rot_good_drop_train"] < 0.05


def test_explorer_no_net_copes_far_outside_the_training_range(g):
    assert g["rot_far_angle"] >= 3 * g["aug_max_degrees"]
    for key in ("none", "good", "flip"):
        assert g[f"rot_{key}_at_far"] < 0.6 * g[f"rot_{key}_at_0"]


def test_explorer_flip_net_alone_reads_upside_down_digits(g):
    for key in ("none", "good"):
        assert g[f"rot_{key}_at_180"] < 0.5 * g[f"rot_{key}_at_0"]
    assert abs(g["rot_flip_at_180"] - g["rot_flip_at_0"]) < 0.05
    assert g["rot_flip_at_180"] > g["rot_good_at_180"] + 0.3
    # ... at the price of upright accuracy, where it is the lowest of the three
    assert g["rot_flip_at_0"] < min(g["rot_none_at_0"], g["rot_good_at_0"])
    # the frame at 180 degrees: the flip net reads most turned digits as their label,
    # the turned 9 (a 6 to the eye) included
    assert g["rot_flip_pictures_right_180"] >= g["rot_none_pictures_right_180"] + 3
    assert g["rot_flip_reads_turned_nine"] == 9
