"""Chapter 06 teaches what its executed cells show: the claims in its prose, with margins.

Every value comes from the chapter's own `glue` calls (medians over seeds for the training
runs), read from the notebook the book build executed.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.book

NOTEBOOK = "notebooks/06-data-augmentation.ipynb"


# --- the experiment: small rotations and shifts against none against flips --------------

def test_the_claims_rest_on_several_seeds(g):
    assert g["aug_n_seeds"] >= 3
    assert len(g["aug_val_none_runs"]) == len(g["aug_val_good_runs"]) == g["aug_n_seeds"]


def test_label_preserving_augmentation_raises_validation_accuracy(g):
    # median of the paired (same split, same initial weights) per-seed differences
    assert g["aug_gain_median"] >= 0.02
    # and the medians themselves (a noisier comparison than the paired one)
    assert g["aug_val_good"] >= g["aug_val_none"] + 0.01
    assert g["aug_median_diff_points"] == pytest.approx(
        100 * (g["aug_val_good"] - g["aug_val_none"]))
    # the gain is not one lucky seed
    assert g["aug_seeds_improved"] >= g["aug_n_seeds"] - 1
    assert g["aug_gain_points"] == pytest.approx(100 * g["aug_gain_median"])


def test_augmentation_narrows_the_generalization_gap(g):
    assert g["aug_train_none"] >= 0.99  # without augmentation the net memorises its images
    assert g["aug_gap_good"] < g["aug_gap_none"] - 0.01


def test_label_changing_flips_lower_validation_accuracy_below_no_augmentation(g):
    # compared with NO augmentation (the stronger claim), median of per-seed changes
    assert g["aug_flip_change_median"] <= -0.03
    assert g["aug_val_flip"] <= g["aug_val_none"] - 0.03
    assert g["aug_seeds_flip_worse"] == g["aug_n_seeds"]
    # and, a fortiori, below the label-preserving augmentation
    assert g["aug_flip_vs_good_median"] <= -0.05
    assert g["aug_flip_points"] == pytest.approx(-100 * g["aug_flip_change_median"])


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


# --- the explorer: the trained networks on turned validation digits -----------------------

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
