"""Fragments of numbers: what they are, that they are cut the same way every time, that training
mixes them in as no digit, and that the shipped network (trained with them) doubts them."""

from __future__ import annotations

import numpy as np
import pytest

from model.shipped import SHIPPED_MODEL
from model.training.config import RECIPE_FRAGMENTS, ConfigError, parse_train_config
from model.training.fragments import NumberParts, cut_digit_of, fragment_mask, fragments, number_parts

DIGIT_A, DIGIT_B = (0, 0, 20, 30), (18, 0, 40, 30)  # two neighbours whose boxes touch
NARROW_ONE = (42, 0, 46, 30)  # a 1 right of them


def test_a_true_digit_is_no_fragment_but_parts_and_mergers_are():
    truth = [DIGIT_A, DIGIT_B, NARROW_ONE]
    candidates = [(1, 0, 20, 30), (0, 0, 7, 30), (0, 0, 40, 30), (18, 0, 46, 30), (10, 0, 28, 30)]
    assert fragment_mask(candidates, truth).tolist() == [False, True, True, True, True]


def test_a_candidate_near_one_true_digit_is_that_digit_as_cut():
    truth = [DIGIT_A, DIGIT_B, NARROW_ONE]
    candidates = [(1, 0, 20, 30), (0, 0, 22, 30), (18, 0, 41, 30), (0, 0, 7, 30), (0, 0, 40, 30), (10, 0, 28, 30)]
    assert cut_digit_of(candidates, truth).tolist() == [0, 0, 1, -1, -1, -1]


def test_touching_numbers_give_their_digits_as_cut_with_labels(mnist):
    images, labels = mnist.x_train[10_000:11_000], mnist.y_train[10_000:11_000]
    parts = number_parts(images, labels, 150, seed=3, processes=1)
    assert np.array_equal(parts.fragments, fragments(images, labels, 150, seed=3, processes=1))
    assert len(parts.digits) == len(parts.labels) > 20 and parts.digits.dtype == np.uint8
    assert set(parts.labels.tolist()) <= set(range(10)) and len(set(parts.labels.tolist())) >= 5
    # The shipped network reads most of them as their labels (chance is 10 %): they are digits, and
    # the labels are theirs.
    from model.runtimes.keras_predictor import KerasPredictor

    read = KerasPredictor.from_file(SHIPPED_MODEL).probabilities(parts.digits / 255.0).argmax(axis=1)
    assert (read == parts.labels).mean() > 0.6


def test_fragments_are_cut_the_same_way_every_time(mnist):
    images, labels = mnist.x_train[10_000:11_000], mnist.y_train[10_000:11_000]
    first = fragments(images, labels, 150, seed=3, processes=1)
    assert first.shape == (150, 28, 28) and first.dtype == np.uint8
    assert (first.reshape(150, -1).max(axis=1) > 128).all(), "every fragment has ink"
    assert np.array_equal(first, fragments(images, labels, 150, seed=3, processes=1))
    assert not np.array_equal(first, fragments(images, labels, 150, seed=4, processes=1))


def test_the_strong_recipe_trains_with_fragments_and_no_request_sets_them():
    assert parse_train_config({"recipe": "strong"}).fragments == RECIPE_FRAGMENTS["strong"] > 0
    assert parse_train_config({}).fragments == 0
    with pytest.raises(ConfigError, match="unknown parameter"):
        parse_train_config({"fragments": 10})


def test_training_batches_hold_fragments_as_every_class_alike_and_cut_digits_as_their_labels(mnist):
    from model.training.train import CUT_DIGITS_PER_BATCH, FRAGMENTS_PER_BATCH, _batches

    config = parse_train_config({"batch_size": 16, "epochs": 1})
    extra, cut = round(16 * FRAGMENTS_PER_BATCH), round(16 * CUT_DIGITS_PER_BATCH)
    parts = NumberParts(np.full((5, 28, 28), 200, np.uint8), np.full((3, 28, 28), 100, np.uint8), np.array([7, 7, 7]))
    images, targets = next(iter(_batches(mnist.x_train[:64], mnist.y_train[:64], config, range(0), parts)))
    assert images.shape == (16 + extra + cut, 28, 28, 1) and targets.shape == (16 + extra + cut, 10)
    assert np.allclose(targets[16 : 16 + extra], 0.1) and np.allclose(images[16 : 16 + extra], 200 / 255)
    assert np.all(np.argmax(targets[16 + extra :], axis=1) == 7) and np.allclose(images[16 + extra :], 100 / 255)
    assert np.allclose(np.sum(targets[:16], axis=1), 1) and np.all(np.max(targets[:16], axis=1) == 1)


def test_the_shipped_network_doubts_fragments_and_not_digits(mnist):
    """Fragments of numbers of digits it never trained on (the validation digits) against the same
    digits whole: it is sure of the digits and mostly unsure of the fragments."""
    from model.runtimes.keras_predictor import KerasPredictor

    predictor = KerasPredictor.from_file(SHIPPED_MODEL)
    held_out = slice(0, 2000)
    cut = fragments(mnist.x_train[held_out], mnist.y_train[held_out], 600, seed=11, processes=1)
    doubt = predictor.probabilities(cut / 255.0).max(axis=1)
    sure = predictor.probabilities(mnist.x_train[held_out] / 255.0).max(axis=1)
    assert np.median(sure) > 0.95
    assert np.median(doubt) < 0.6, f"median confidence on fragments {np.median(doubt):.2f}"


# The spawned process imports this module to find its target: Keras is imported only in the tests
# that use it, or the daemon would spend most of its time importing TensorFlow and exiting it.
def _cut_in_a_daemon(images, labels, answers) -> None:
    answers.put(fragments(images, labels, 40, seed=3, processes=2).shape)


def test_a_process_that_may_have_no_children_cuts_fragments_itself(mnist):
    """As a training job does in a Celery pool's (daemonic) process: no pool, same fragments."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    answers = context.Queue()
    images, labels = mnist.x_train[10_000:11_000], mnist.y_train[10_000:11_000]
    daemon = context.Process(target=_cut_in_a_daemon, args=(images, labels, answers), daemon=True)
    daemon.start()
    assert answers.get(timeout=120) == (40, 28, 28)
    daemon.join(timeout=60)  # it has answered; under load, a spawned process takes long to exit
    assert daemon.exitcode == 0
