"""Training in this process: the fast form it trains in, the plain network it hands over, the progress it reports."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from model.runtimes import keras_files
from model.training import architectures
from model.training.config import parse_train_config
from model.training.train import predict_in_batches, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(mnist):
    updates: list[dict] = []
    model = train(parse_train_config({"train_limit": 3000}), mnist, progress=updates.append)
    return model, updates


def test_the_trained_network_is_plain_float32_keras(trained, mnist):
    model, _ = trained
    loaded = keras_files.load(model.to_bytes())  # safe mode: no custom layer may be needed to read it
    assert not any(isinstance(layer, architectures.TrainingBatchNormalization) for layer in loaded.layers)
    assert {layer.dtype_policy.name for layer in loaded.layers} == {"float32"}
    same = predict_in_batches(loaded, mnist.x_test[:500])
    assert np.allclose(same, predict_in_batches(model.model, mnist.x_test[:500]), atol=1e-5)
    assert (same.argmax(1) == mnist.y_test[:500]).mean() == pytest.approx(model.card["test_accuracy"], abs=0.03)


def test_training_computes_in_bfloat16_only_where_the_kernels_do_it_natively():
    """Emulated bfloat16 (an AVX2-only CPU, or oneDNN held to AVX2 on an AMX one) trained ten times slower."""
    never = lambda: pytest.fail("asked the kernels on a CPU without native bfloat16")  # noqa: E731
    assert architectures.training_dtype(frozenset({"avx2", "fma"}), never) == "float32"
    assert architectures.training_dtype(frozenset({"avx2", "amx_bf16", "amx_tile"}), lambda: True) == "mixed_bfloat16"
    assert architectures.training_dtype(frozenset({"avx512f", "avx512_bf16"}), lambda: True) == "mixed_bfloat16"
    assert architectures.training_dtype(frozenset({"avx2", "amx_bf16", "amx_tile"}), lambda: False) == "float32"
    machine = architectures.training_dtype()
    assert {layer.dtype_policy.name for layer in architectures.build("default", training=True).layers[:-1]} == {machine}


def test_onednn_held_to_avx2_trains_in_float32():
    """ONEDNN_MAX_CPU_ISA=AVX2 makes an AMX machine's kernels AVX2-only, though /proc/cpuinfo still says AMX."""
    script = "from model.training import architectures as a; print(a.training_dtype(), a.bfloat16_kernels_faster())"
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "TF_CPP_MIN_LOG_LEVEL": "2"}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["float32", "False"]


def test_the_training_form_computes_what_the_served_form_does(mnist):
    """Same weights, same answers (bfloat16 against float32: to about a percent of probability)."""
    training = architectures.build("default", training=True)
    served = architectures.for_serving("default", training)
    images = mnist.x_test[:64].astype(np.float32)[..., None] / 255.0
    fast, plain = training(images, training=False).numpy(), served(images, training=False).numpy()
    assert np.abs(fast - plain).max() < 0.02


def test_the_fast_recipe_trains_its_epochs_and_learns(trained):
    model, _ = trained
    card = model.card
    assert card["hyperparameters"]["recipe"] == "fast" and card["epochs"] == 2
    assert [entry["epoch"] for entry in card["history"]] == [1, 2]
    assert card["test_accuracy"] > 0.5  # chance is 0.1; 2,700 images seen twice (44 steps)


def test_progress_says_how_far_in_time_and_what_is_left(trained):
    _, updates = trained
    paced = [u for u in updates if u["eta_s"] is not None]
    assert paced, "no update carried an ETA"
    fractions = [u["fraction"] for u in paced]
    assert all(0 < f < 1 for f in fractions) and fractions[-1] > fractions[0]
    assert [u["eta_s"] for u in paced][-1] < paced[0]["eta_s"]
    first = paced[0]
    assert (first["epoch"], first["batch"]) < (2, 1), "the ETA came only in the last epoch"


def test_batch_norm_trains_with_the_fused_kernel():
    """The training form's speed rests on it: a layer that fell back to Keras's composed batch norm
    would train correctly at half the speed, and nothing else would say so."""
    import tensorflow as tf

    layer = architectures.TrainingBatchNormalization()
    layer.build((None, 8, 8, 4))
    graph = tf.function(lambda x: layer(x, training=True)).get_concrete_function(tf.TensorSpec((2, 8, 8, 4))).graph
    assert any(op.type.startswith("FusedBatchNorm") for op in graph.get_operations())


def test_confidence_is_calibrated_on_held_out_digits(trained, mnist):
    """Label smoothing leaves a network saying about 0.9 when it is nearly always right; the
    temperature fitted on the validation split makes the mean confidence match the accuracy."""
    model, _ = trained
    assert model.card["temperature"] < 1  # sharpened: smoothing had made it shy
    probabilities = predict_in_batches(model.model, mnist.x_test[:2000])
    accuracy = (probabilities.argmax(1) == mnist.y_test[:2000]).mean()
    assert abs(probabilities.max(1).mean() - accuracy) < 0.05


def test_a_job_stopped_mid_epoch_reports_where_it_stopped_and_no_unfinished_epoch(mnist):
    """Issue 34: Keras's own stop_training finished the epoch (a validation pass, a history entry,
    a last report of batch 430/430 with an ETA); a stop is where the job stopped, nothing after."""
    from model.training.train import Cancelled

    updates: list[dict] = []
    asked = iter(range(1_000_000))
    config = parse_train_config({"arch": "seed", "epochs": 2, "train_limit": 6000, "augment": False})
    with pytest.raises(Cancelled, match=r"cancelled in epoch 1 of 2, at batch 7 of \d+"):
        train(config, mnist, progress=updates.append, should_stop=lambda: next(asked) >= 6)
    last = updates[-1]
    assert last["stopped"] is True and last["eta_s"] is None and last["fraction"] is None
    assert (last["epoch"], last["batch"]) == (1, 7) and last["batches"] > 7
    assert last["history"] == [] and all(update["batch"] <= 7 for update in updates)
