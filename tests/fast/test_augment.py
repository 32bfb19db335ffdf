"""Training-time augmentation: the scan degradations each do what they say, on whole batches."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from model.training import augment  # noqa: E402


@pytest.fixture(scope="module")
def batch(mnist):
    return tf.constant(mnist.x_train[:32].astype(np.float32)[..., None] / 255)


def ink(images) -> np.ndarray:
    return (np.asarray(images) >= 0.5).sum(axis=(1, 2, 3))


def test_pens_change_the_strokes_width(batch):
    assert (ink(augment._broad_pen(batch)) > 1.3 * ink(batch)).all()
    assert (ink(augment._fine_pen(batch)) < ink(batch)).all()
    even = np.asarray(augment._even_strokes(batch))
    assert (ink(even) > 0).all()  # thin, faint digits lose most, never all
    # One pen: full-strength strokes softened by the same 2x2 average everywhere, where MNIST's vary.
    assert set(np.unique(even)) <= {0.0, 0.25, 0.5, 0.75, 1.0} and len(np.unique(np.asarray(batch))) > 100


def test_slant_elastic_and_blocky_move_ink_but_keep_most_of_it(batch):
    tf.random.set_seed(0)
    for degrade in (augment._slant, augment._elastic, augment._blocky):
        out = np.asarray(degrade(batch))
        assert out.shape == tuple(batch.shape) and out.min() >= 0 and out.max() <= 1 + 1e-6
        assert (ink(out) > 0.4 * ink(batch)).all()
        assert np.abs(out - np.asarray(batch)).mean() > 0.005, degrade.__name__


def test_blocky_scans_are_black_and_white_for_some(batch):
    tf.random.set_seed(2)
    out = np.asarray(augment._blocky(batch))
    quarters = np.isin(out, [0.0, 0.25, 0.5, 0.75, 1.0]).all(axis=(1, 2, 3))  # ink or paper, softened by 2x2
    assert 0.2 < quarters.mean() < 0.8


def test_specks_are_added_ink(batch):
    out = np.asarray(augment._specks(batch))
    added = (out == 1.0) & (np.asarray(batch) == 0)
    assert added.any(axis=(1, 2, 3)).mean() > 0.8
    assert ((out == 1.0) | (out == np.asarray(batch))).all()


def test_scan_degradations_touch_only_their_share(batch):
    tf.random.set_seed(1)
    assert np.array_equal(augment.scan_degradations(batch, 0.0), batch)
    changed = (np.abs(np.asarray(augment.scan_degradations(batch, 0.5)) - batch).max(axis=(1, 2, 3)) > 0).mean()
    assert 0.2 <= changed <= 0.8
