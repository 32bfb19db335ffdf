"""activate: if-better, as arithmetic: better on held-out corrections, at most 0.1 point worse on MNIST test."""

from __future__ import annotations

from model.training.judge import Scores, if_better

ACTIVE = Scores(test_accuracy=0.9956, held_out_accuracy=0.90, held_out_count=200)


def test_better_on_corrections_and_hardly_worse_on_mnist_is_activated():
    better, why = if_better(Scores(0.9948, 0.93, 200), ACTIVE, 1)
    assert better, why
    assert "93.00%" in why and "90.00%" in why and "200 held-out corrections" in why and "version 1" in why


def test_not_better_on_corrections_is_not_activated_however_good_on_mnist():
    better, why = if_better(Scores(0.9990, 0.90, 200), ACTIVE, 1)
    assert not better and why.startswith("not better on the corrections")


def test_more_than_a_tenth_of_a_point_worse_on_mnist_is_not_activated():
    better, why = if_better(Scores(0.9944, 0.99, 200), ACTIVE, 1)
    assert not better and "over 0.1 point worse on MNIST test 99.44% against 99.56%" in why
    assert if_better(Scores(0.9946, 0.99, 200), ACTIVE, 1)[0]  # exactly 0.1 point worse is allowed


def test_without_corrections_mnist_test_accuracy_alone_decides():
    assert if_better(Scores(0.9960), Scores(0.9956), 1)[0]
    better, why = if_better(Scores(0.9956), Scores(0.9956), 1)
    assert not better and "does not beat version 1's 99.56%" in why
    assert if_better(Scores(0.5), None) == (True, "no version was active")
