"""Training on corrections: the parameters (include_feedback, base_version), and the whole loop
over HTTP with small numbers (bench/feedback_loop.py; the README has the full-size figures)."""

from __future__ import annotations

import numpy as np
import pytest
import requests

from bench import feedback_loop
from bench.unlike_mnist import outline
from client.service import DigitsClient
from model.training.config import FINE_TUNE_EPOCHS, FINE_TUNE_LEARNING_RATE, ConfigError, parse_training_request
from tests.conftest import TINY_MODELS_SERVED, TOKEN

STACK_ENV = TINY_MODELS_SERVED  # the small fine-tuned version may be activated by hand
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_fine_tuning_takes_a_short_default_and_a_lower_learning_rate():
    config, policy = parse_training_request({"base_version": 3, "include_feedback": True, "activate": "if-better"})
    assert (config.base_version, config.include_feedback, policy) == (3, True, "if-better")
    assert config.epochs == FINE_TUNE_EPOCHS and config.effective_learning_rate == FINE_TUNE_LEARNING_RATE
    assert parse_training_request({"base_version": 3, "epochs": 4})[0].epochs == 4
    assert parse_training_request({})[0].include_feedback is False


@pytest.mark.parametrize(
    "body",
    [{"include_feedback": "yes"}, {"include_feedback": 1}, {"base_version": "1"}, {"base_version": True},
     {"base_version": 0}, {"base_version": 1.5}, {"base_version": 1, "arch": "logreg"}],
)  # fmt: skip
def test_bad_feedback_parameters_are_refused(body):
    with pytest.raises(ConfigError):
        parse_training_request(body)


def test_outlines_are_hollow_strokes_of_the_same_digit(mnist):
    digit = mnist.x_train[0]
    drawn = outline(digit)
    assert set(np.unique(drawn)) <= {0, 255}
    assert (drawn > 0).sum() > 0.5 * (digit > 100).sum()  # about as long a stroke...
    assert not (drawn[1:-1, 1:-1] > 0).all()  # ...with the inside of thick strokes left out


@pytest.mark.slow
def test_a_base_version_that_is_not_stored_is_refused(stack):
    answer = requests.post(f"{stack.web_url}/api/v1/training-jobs", json={"base_version": 99}, headers=AUTH, timeout=10)
    assert answer.status_code == 400 and "base_version 99 is not stored" in answer.json()["error"]["message"]


@pytest.mark.slow
def test_the_loop_over_http_with_small_numbers(stack):
    client = DigitsClient(stack.web_url, token=TOKEN)
    figures = feedback_loop.run(client, size=60, epochs=1, train_limit=2000, log=lambda _: None)

    assert figures["corrections"] == 30 and figures["unseen_half"] == 30
    assert 0 < figures["held_out_corrections"] < 30
    for name in ("unseen_before", "unseen_after", "mnist_test_before", "mnist_test_after", "held_out_after"):
        assert 0 <= figures[name] <= 1, name
    assert figures["unseen_before"] < 0.95  # the shipped model reads outlines worse than MNIST
    assert figures["epochs"] == 1 and figures["repeats"] >= 1 and figures["training_seconds"] > 0
    report = feedback_loop.report(figures)
    assert "other half" in report and "MNIST test" in report and "goal" in report

    card = client.model(figures["new_version"])
    assert card["base_version"] == 1 and card["fine_tuned_weight_share"] == 0.5
    assert card["feedback"] == {"included": True, "train_corrections": 30 - figures["held_out_corrections"],
                                "repeats": figures["repeats"]}  # fmt: skip
    held = card["held_out_corrections"]
    assert held["count"] == figures["held_out_corrections"]
    assert sum(map(sum, held["confusion_matrix"])) == held["count"]
    assert "held-out corrections" in figures["activation"]  # if-better judged on them, and says so
