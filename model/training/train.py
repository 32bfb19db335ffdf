"""Train a network on MNIST, evaluate it on the 10,000 test images, and describe it in a model card.

python -m model.training train --recipe strong --out model/shipped/default.keras
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import functools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from model.mnist import DataError, Mnist, load_mnist
from model.runtimes import keras_files, scikit_learn
from model.runtimes.formats import SUFFIXES
from model.training import architectures, classic
from model.training.augment import augment_batch
from model.training.config import (
    ARCHITECTURES,
    CLASSIC_ARCHITECTURES,
    DEFAULT_RECIPE,
    FINE_TUNE_EPOCHS,
    FINE_TUNE_LEARNING_RATE,
    RECIPES,
    ConfigError,
    TrainConfig,
    parse_train_config,
)
from model.training.fragments import NumberParts, number_parts

ProgressFn = Callable[[dict], None]
TEST_IMAGES = 10_000  # MNIST's test set, on which every trained model is scored
StopFn = Callable[[], bool]


class Cancelled(Exception):
    """Training stopped because ``should_stop`` said so."""


# Corrections are repeated until they make about this share of the training images, so that a
# few hundred of them weigh against 55,000 MNIST digits; never more than MAX_REPEATS times each.
FEEDBACK_SHARE = 0.1
MAX_REPEATS = 50
# A fine-tuned network's weights are averaged with its base's, this much of the fine-tuned ones
# (WiSE-FT, Wortsman et al. 2022): measured here, the average keeps nearly all of the base's MNIST
# accuracy (-0.06 points against -0.17 for the fine-tuned weights alone) and half of what the
# corrections taught (+15 points on unseen outlined digits against +24; README, "The feedback loop").
FINE_TUNED_SHARE = 0.5
# Targets of 0.91 and 0.01, not 1 and 0: the network stops pushing its confidence up for ever and
# generalises better (measured here, ten epochs of default: 99.62 % against 99.49 % without).
LABEL_SMOOTHING = 0.1
# Fragments (model/fragments.py) in each batch, per digit, when training shows them: measured,
# 0.25 (of 20,000) read 90.2 % of 500 held-out touching 4-digit numbers right, 0.5 (of 40,000) 89.0 %.
FRAGMENTS_PER_BATCH = 0.25
# ... and digits as they were cut out of touching numbers, with their labels: measured, two epochs
# of fine-tuning the shipped network with them read 904 of 1,000 held-out touching numbers right
# against 896 without them.
CUT_DIGITS_PER_BATCH = 0.125


@dataclass(frozen=True)
class Corrections:
    """Corrections people gave (28x28 uint8 images, labels given): those training may use, and the
    held-out ones that judge the result (see jobs/feedback.py for which are which)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    held_images: np.ndarray
    held_labels: np.ndarray


def repeats_for(corrections: int, images: int) -> int:
    """How many times each correction is trained on beside ``images`` MNIST digits."""
    if not corrections:
        return 0
    return int(np.clip(round(FEEDBACK_SHARE * images / corrections), 1, MAX_REPEATS))


@dataclass
class TrainedModel:
    """A trained model (Keras network or scikit-learn estimator) and its card (a JSON-ready dict)."""

    model: Any
    card: dict
    file_format: str  # "keras" or "skops"

    def to_bytes(self) -> bytes:
        """The model file's bytes, as the model store keeps them."""
        if self.file_format == scikit_learn.FILE_FORMAT:
            return classic.to_bytes(self.model)
        return keras_files.dump(self.model)

    def predictor(self):
        """A predictor over the model in memory (as a worker would serve it)."""
        if self.file_format == scikit_learn.FILE_FORMAT:
            return scikit_learn.ClassicPredictor(self.model, card=self.card)
        from model.runtimes.keras_predictor import KerasPredictor

        return KerasPredictor(self.model, card=self.card)

    def save(self, path: str | Path) -> Path:
        """Write the model file to ``path`` and the card beside it (.json); return the card's path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.to_bytes())
        card_path = path.with_suffix(".json")
        card_path.write_text(json.dumps(self.card, indent=2) + "\n")
        return card_path


def train(
    config: TrainConfig,
    mnist: Mnist,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    verbose: int = 0,
    threads: int = 0,
    corrections: Corrections | None = None,
    base: bytes | None = None,
) -> TrainedModel:
    """Train ``config.arch`` (or fine-tune the Keras network in ``base``, a .keras file) and
    evaluate it on the full test set and on the held-out ``corrections``.

    With ``config.include_feedback``, the corrections' training share is mixed into the training
    images, each repeated :func:`repeats_for` times (augmented like the rest). With
    ``config.fragments``, a Keras network also learns that so many fragments of numbers made of
    its training digits are no digit, and what their digits look like as cut out of touching
    numbers (model/fragments.py).

    ``progress`` receives a dict (epoch, batch, elapsed and ETA seconds, per-epoch history) at
    most every half second and after each epoch; ``should_stop`` is asked after every batch
    (every epoch for classic models) and raises :class:`Cancelled` when it answers true.
    """
    x_train, y_train = mnist.x_train, mnist.y_train
    if config.train_limit:
        x_train, y_train = x_train[: config.train_limit], y_train[: config.train_limit]
    n_val = min(config.validation_size, len(x_train) // 10)
    x_fit, y_fit = x_train[n_val:], y_train[n_val:]
    feedback = {"included": False, "train_corrections": 0, "repeats": 0}
    if config.include_feedback and corrections is not None and len(corrections.train_labels):
        repeats = repeats_for(len(corrections.train_labels), len(x_fit))
        x_fit = np.concatenate([x_fit, np.repeat(corrections.train_images, repeats, axis=0)])
        y_fit = np.concatenate([y_fit, np.repeat(corrections.train_labels, repeats, axis=0)])
        feedback = {"included": True, "train_corrections": len(corrections.train_labels), "repeats": repeats}
    split = (x_fit, y_fit, x_train[:n_val], y_train[:n_val])
    stop = should_stop or (lambda: False)

    started = time.perf_counter()
    if config.arch in CLASSIC_ARCHITECTURES:
        model, history, details, file_format = _fit_classic(config, *split, progress, stop, threads)
        score = scikit_learn.ClassicPredictor(model).probabilities
    else:
        parts = number_parts(*split[:2], config.fragments, config.seed) if config.fragments else None
        model, history, details, file_format = _fit_keras(config, *split, progress, stop, verbose, base, parts)
        score = functools.partial(predict_in_batches, model)
    training_seconds = time.perf_counter() - started

    evaluation = summarize_predictions(score(mnist.x_test), mnist.x_test, mnist.y_test)
    held_out = {"count": 0, "accuracy": None, "confusion_matrix": None, "mistakes": []}
    if corrections is not None and len(corrections.held_labels):
        judged = summarize_predictions(score(corrections.held_images), corrections.held_images,
                                       corrections.held_labels.astype(np.int64), mistakes=10)  # fmt: skip
        held_out = {"count": len(corrections.held_labels)}
        held_out |= {name: judged[name] for name in ("accuracy", "confusion_matrix", "mistakes")}
    card = {
        "arch": config.arch,
        "base_version": config.base_version,
        **details,
        "epochs": config.epochs,
        "test_accuracy": evaluation["accuracy"],
        "test_loss": evaluation["loss"],
        "confusion_matrix": evaluation["confusion_matrix"],
        "mistakes": evaluation["mistakes"],  # the most confident errors on the test set, with images
        "held_out_corrections": held_out,  # the corrections never trained on: accuracy, confusion, mistakes
        "feedback": feedback,  # corrections trained on, and how many times each
        "training_seconds": round(training_seconds, 1),
        "history": history,
        "train_images": len(split[0]),
        "validation_images": n_val,
        "data_checksum": mnist.checksum(),
        "data_source": mnist.source,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    return TrainedModel(model, card, file_format)


def _fit_keras(config, x_fit, y_fit, x_val, y_val, progress, should_stop, verbose, base=None, parts=None):
    keras.utils.set_random_seed(config.seed)
    network = architectures.build(config.arch, training=True)
    if base is not None:
        base_weights = keras_files.load(base).get_weights()
        network.set_weights(base_weights)
        # Fine-tuning keeps the batch-norm statistics the base learned on all of MNIST: updated on
        # one short pass heavy with corrections, they drift and cost MNIST accuracy.
        for layer in network.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    steps_per_epoch = int(np.ceil(len(x_fit) / config.batch_size))
    network.compile(
        optimizer=keras.optimizers.Adam(_schedule(config.effective_learning_rate, steps_per_epoch * config.epochs)),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=LABEL_SMOOTHING),
        metrics=[_DigitAccuracy()],
    )
    reporter = _Reporter(config, steps_per_epoch, len(x_val), progress, should_stop)
    try:
        network.fit(
            _batches(x_fit, y_fit, config, _augmented_epochs(config, fine_tuning=base is not None), parts),
            steps_per_epoch=steps_per_epoch,
            validation_data=_validation_batches(x_val, y_val) if len(x_val) else None,
            epochs=config.epochs,
            shuffle=False,  # the stream is shuffled per epoch
            callbacks=[reporter],
            verbose=verbose,
        )
    except _StopNow:
        at = f"batch {reporter.stopped_at} of {steps_per_epoch}"
        raise Cancelled(f"cancelled in epoch {reporter.epoch + 1} of {config.epochs}, at {at}") from None
    network = architectures.for_serving(config.arch, network)
    if base is not None:
        share, tuned = FINE_TUNED_SHARE, network.get_weights()
        network.set_weights([(1 - share) * w0 + share * w1 for w0, w1 in zip(base_weights, tuned, strict=True)])
    temperature = calibrate(network, x_val, y_val)
    details = {
        "framework": "keras",
        "temperature": temperature,
        "hyperparameters": replace(
            config, learning_rate=config.effective_learning_rate, validation_size=len(x_val)
        ).to_dict(),
        "parameters": int(network.count_params()),
        **({"fine_tuned_weight_share": FINE_TUNED_SHARE} if base is not None else {}),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    return network, reporter.history, details, "keras"


def calibrate(network: keras.Model, images: np.ndarray, labels: np.ndarray) -> float:
    """Make ``network``'s probabilities honest on held-out ``images``: divide its last layer's
    logits by the temperature that gives the labels the highest likelihood (Guo et al. 2017), and
    return it (1.0: unchanged, also when there are no images).

    Label smoothing trains a network to say about 0.9 where it is right 99.6 % of the time; people
    read "confidence" as how often such an answer is right. Labels (argmax) do not change.
    """
    last = network.layers[-1]
    if not len(images) or not isinstance(last, keras.layers.Dense) or last.activation is not keras.activations.softmax:
        return 1.0
    logits = np.log(np.clip(predict_in_batches(network, images), 1e-30, 1)).astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)

    def log_likelihood(temperature: float) -> float:
        scaled = logits / temperature
        return float((scaled[np.arange(len(labels)), labels] - np.log(np.exp(scaled).sum(axis=1))).mean())

    temperature = max(np.exp(np.linspace(np.log(0.05), np.log(4.0), 200)), key=log_likelihood)
    kernel, bias = last.get_weights()
    last.set_weights([kernel / temperature, bias / temperature])
    return round(float(temperature), 4)


def _fit_classic(config, x_fit, y_fit, x_val, y_val, progress, should_stop, threads):
    import sklearn

    x, x_check = scikit_learn.flatten(x_fit), scikit_learn.flatten(x_val)
    history: list[dict] = []
    started = time.perf_counter()

    def on_epoch(epoch: int, model) -> None:
        scores = {}
        for name, (xs, ys) in {"": (x, y_fit), "val_": (x_check, y_val)}.items():
            if len(xs):
                sample = slice(0, 5000)  # scoring the whole training set would cost as much as an epoch
                probabilities = np.clip(model.predict_proba(xs[sample]), 1e-7, 1)
                scores[f"{name}loss"] = round(
                    float(-np.log(probabilities[np.arange(len(ys[sample])), ys[sample]]).mean()), 5
                )
                scores[f"{name}accuracy"] = round(float((probabilities.argmax(1) == ys[sample]).mean()), 5)
        history.append({"epoch": epoch, **scores})
        if progress:
            elapsed = time.perf_counter() - started
            progress({"epoch": epoch, "epochs": config.epochs, "batch": 1, "batches": 1, "elapsed_s": round(elapsed, 1),
                      "eta_s": round(elapsed / epoch * (config.epochs - epoch), 1), "loss": scores.get("loss"),
                      "accuracy": scores.get("accuracy"), "history": list(history)})  # fmt: skip

    model = classic.fit_epochs(config.arch, x, y_fit, config.epochs, config.seed, on_epoch, should_stop, threads)
    if model is None:
        raise Cancelled(f"cancelled after epoch {len(history)} of {config.epochs}")
    details = {
        "framework": "scikit-learn",
        "hyperparameters": {
            "arch": config.arch,
            "epochs": config.epochs,
            "seed": config.seed,
            "train_limit": config.train_limit,
            **classic.describe(model),
        },  # fmt: skip
        "versions": {"scikit-learn": sklearn.__version__},
    }
    return model, history, details, scikit_learn.FILE_FORMAT


def summarize_predictions(
    probabilities: np.ndarray, images: np.ndarray, labels: np.ndarray, mistakes: int = 25
) -> dict:
    """Score (N, 10) probabilities against true labels; ``images`` (uint8) illustrate the mistakes."""
    from model.images.preprocess import to_png

    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    loss = -np.mean(np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1)))
    wrong = np.flatnonzero(predicted != labels)
    worst = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:mistakes]
    return {
        "accuracy": round(float((predicted == labels).mean()), 5),
        "loss": round(float(loss), 5),
        "confusion_matrix": confusion.tolist(),
        "mistakes": [
            {
                "index": int(i),
                "label": int(labels[i]),
                "predicted": int(predicted[i]),
                "confidence": round(float(probabilities[i, predicted[i]]), 5),
                "png": base64.b64encode(to_png(images[i] / 255.0)).decode(),
            }
            for i in worst
        ],
    }


def predict_in_batches(network: keras.Model, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities for uint8 or [0, 1] float images (N, 28, 28), by direct model calls."""
    call = tf.function(lambda x: network(x, training=False))
    outputs = [call(to_input(images[i : i + batch_size])).numpy() for i in range(0, len(images), batch_size)]
    return np.concatenate(outputs) if outputs else np.zeros((0, 10), dtype=np.float32)


def to_input(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 (0-255) or float (0-1) -> the network's (N, 28, 28, 1) float32 input."""
    x = images.astype(np.float32)
    if images.dtype == np.uint8:
        x /= 255.0
    return x[..., None]


def _schedule(peak: float, total_steps: int) -> keras.optimizers.schedules.LearningRateSchedule:
    """One cycle: a linear warm-up over the first fifth, then cosine decay to zero (a good optimum
    in one or two epochs: measured here, 99.3 % after two)."""
    warmup = max(1, total_steps // 5)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 10,
        decay_steps=max(1, total_steps - warmup),
        warmup_target=peak,
        warmup_steps=warmup,
    )


def _augmented_epochs(config: TrainConfig, fine_tuning: bool) -> range:
    """The epochs (from 0) whose images are distorted (model/augment.py).

    Trained from scratch, the first epoch sees the digits as they are (a network learns fastest
    from them) and so does the last of three or more (it settles on real strokes); the
    distortions in between teach what real-world digits add. A fine-tuning run distorts all its epochs.
    """
    if not config.augment:
        return range(0)
    if fine_tuning or config.epochs == 1:
        return range(config.epochs)
    return range(1, config.epochs - 1 if config.epochs >= 3 else config.epochs)


def _batches(x: np.ndarray, y: np.ndarray, config: TrainConfig, augmented: range, parts: NumberParts | None = None):
    """One stream of (images, target) batches for all of training: each epoch in a new order (set by
    the seed), distorted in the ``augmented`` epochs. Targets are one-hot; with ``parts``
    (model/fragments.py), each batch also holds FRAGMENTS_PER_BATCH as many fragments, drawn at
    random, whose target is every class alike, and CUT_DIGITS_PER_BATCH as many digits cut out of
    touching numbers, with their labels.

    The images stay uint8 in memory until a batch is gathered, and there is one batch in flight:
    a training worker shares two cores with predict workers, so no thread pools of its own.
    """
    images, labels = tf.constant(x), tf.constant(y.astype(np.int64))
    count, epochs, seed = len(x), config.epochs, tf.constant(config.seed, tf.int64)
    pools = []  # (images, targets, drawn per batch)
    if parts is not None and len(parts.fragments):
        no_digit = np.full((len(parts.fragments), 10), 0.1, np.float32)
        pools.append((parts.fragments, no_digit, FRAGMENTS_PER_BATCH))
    if parts is not None and len(parts.digits) and CUT_DIGITS_PER_BATCH:
        pools.append((parts.digits, np.eye(10, dtype=np.float32)[parts.labels], CUT_DIGITS_PER_BATCH))
    pools = [(tf.constant(i), tf.constant(t), max(1, round(config.batch_size * share))) for i, t, share in pools]

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64), seed=tf.stack([seed, epoch]))
        return tf.data.Dataset.from_tensor_slices(order).batch(config.batch_size).map(lambda ids: (epoch, ids))

    def gather(step, epoch_and_ids):
        epoch, ids = epoch_and_ids
        batch, targets = tf.gather(images, ids), tf.one_hot(tf.gather(labels, ids), 10)
        for n, (pool, pool_targets, drawn) in enumerate(pools):
            draw_seed = tf.stack([seed + 1 + n, step])
            picked = tf.random.stateless_uniform([drawn], draw_seed, maxval=pool.shape[0], dtype=tf.int64)
            batch = tf.concat([batch, tf.gather(pool, picked)], 0)
            targets = tf.concat([targets, tf.gather(pool_targets, picked)], 0)
        batch = tf.cast(batch, tf.float32)[..., None] / 255.0
        if augmented:
            distort = tf.logical_and(epoch >= augmented.start, epoch < augmented.stop)
            batch = tf.cond(distort, lambda: augment_batch(batch, config.scan_share), lambda: batch)
        return batch, targets

    stream = tf.data.Dataset.range(epochs).flat_map(epoch_batches).enumerate().map(gather)
    return stream.prefetch(1).with_options(_NO_AUTOTUNE)


def _validation_batches(x: np.ndarray, y: np.ndarray):
    """The validation images in batches of a thousand, in order (the same every epoch)."""
    data = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int64))).batch(1000)
    data = data.map(lambda images, labels: (tf.cast(images, tf.float32)[..., None] / 255.0, tf.one_hot(labels, 10)))
    return data.with_options(_NO_AUTOTUNE)


class _DigitAccuracy(keras.metrics.Mean):
    """The share of digits read right; fragments (targets with no class above the rest) are not counted."""

    def __init__(self, name: str = "accuracy", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        right = tf.cast(tf.argmax(y_true, axis=-1) == tf.argmax(y_pred, axis=-1), tf.float32)
        is_digit = tf.cast(tf.reduce_max(y_true, axis=-1) > 0.5, tf.float32)
        return super().update_state(right, sample_weight=is_digit)


_NO_AUTOTUNE = tf.data.Options()
_NO_AUTOTUNE.autotune.enabled = False


class _StopNow(Exception):
    """Raised out of Keras's loop when the job is asked to stop: Keras's own ``stop_training`` would
    still end the epoch (a validation pass, an epoch's history entry and a last report of every
    batch done), so a cancelled job's record and chart would show an epoch that never ended."""


class _Reporter(keras.callbacks.Callback):
    """Turns Keras's callbacks into progress dicts and checks for cancellation after every batch.

    The ETA is the pace of the batches so far (the first batch, which builds the graph, left out)
    times what is left, plus the validation passes and the final test: so a job of under a minute
    shows a right ETA from its first seconds, not one inflated by its start-up.
    """

    # A test or validation image costs about this share of a training image (forward pass only).
    EVALUATION_SHARE = 0.3

    def __init__(self, config: TrainConfig, steps: int, validation_images: int, progress, should_stop):
        super().__init__()
        self.config, self.steps = config, steps
        self.progress, self.should_stop = progress, should_stop
        self.history: list[dict] = []
        self.epoch = 0
        self.cancelled = False
        self.stopped_at: int | None = None  # the batch of its epoch after which the job was stopped
        self.started = time.perf_counter()
        self.last_report = 0.0
        self.paced_from: tuple[float, int] | None = None  # (time, steps done) after the first batch
        self.validation_images = validation_images

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.should_stop and self.should_stop():
            self.cancelled, self.stopped_at = True, batch + 1
            self._report(batch + 1, logs, stopped=True)  # where it stopped: this batch, nothing left to wait for
            raise _StopNow()
        now = time.perf_counter()
        done = self.epoch * self.steps + batch + 1
        if self.paced_from is None:
            self.paced_from = (now, done)
        if now - self.last_report >= 0.5:
            self.last_report = now
            self._report(batch + 1, logs)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.history.append(
            {
                "epoch": epoch + 1,
                **{key: round(float(value), 5) for key, value in logs.items() if key != "learning_rate"},
            }
        )
        self._report(self.steps, logs)

    def eta(self, done: int) -> float | None:
        """Seconds until the model is trained and tested, from the pace measured so far."""
        if self.paced_from is None or done - self.paced_from[1] < 3:
            return None
        since, from_step = self.paced_from
        per_step = (time.perf_counter() - since) / (done - from_step)
        validations_left = self.config.epochs - len(self.history)
        to_evaluate = TEST_IMAGES + self.validation_images * validations_left
        evaluating = to_evaluate * self.EVALUATION_SHARE * per_step / self.config.batch_size
        return (self.config.epochs * self.steps - done) * per_step + evaluating

    def _report(self, batch: int, logs: dict | None, stopped: bool = False) -> None:
        if not self.progress:
            return
        elapsed = time.perf_counter() - self.started
        done = self.epoch * self.steps + batch
        eta = None if stopped else self.eta(done)
        self.progress(
            {
                "epoch": self.epoch + 1,
                "epochs": self.config.epochs,
                "batch": batch,
                "batches": self.steps,
                "elapsed_s": round(elapsed, 1),
                "eta_s": round(eta, 1) if eta is not None else None,
                # The share of the expected time behind us: what a progress bar shows.
                "fraction": round(elapsed / (elapsed + eta), 4) if eta is not None else None,
                "loss": round(float((logs or {}).get("loss", float("nan"))), 5),
                "accuracy": round(float((logs or {}).get("accuracy", float("nan"))), 5),
                "history": list(self.history),
                **({"stopped": True} if stopped else {}),
            }
        )


def main(argv: list[str] | None = None, mnist_dir: str = "") -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", choices=RECIPES, default=DEFAULT_RECIPE)
    parser.add_argument("--arch", choices=ARCHITECTURES, default=None, help="default: the recipe's")
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learning-rate", type=float, default=None, help="peak learning rate (default: per arch)")
    parser.add_argument("--no-augment", action="store_true", help="train on the images as they are")
    parser.add_argument("--train-limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--out", type=Path, default=None, help="model file to write (default: models/<arch>.keras)")
    fine_tune = f"{FINE_TUNE_EPOCHS} epoch at learning rate {FINE_TUNE_LEARNING_RATE}"
    parser.add_argument("--base", type=Path, default=None, help=f"fine-tune this .keras network (default {fine_tune})")
    args = parser.parse_args(argv)
    try:
        config = parse_train_config(
            {
                "recipe": args.recipe,
                **({"arch": args.arch} if args.arch else {}),  # else the recipe's
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "learning_rate": args.learning_rate,
                "augment": not args.no_augment,
                "train_limit": args.train_limit,
            }
        )
        base = None
        if args.base:
            base = args.base.read_bytes()
            arch = json.loads(args.base.with_suffix(".json").read_text())["arch"]
            epochs, learning_rate = args.epochs or FINE_TUNE_EPOCHS, args.learning_rate or FINE_TUNE_LEARNING_RATE
            config = replace(config, arch=arch, epochs=epochs, learning_rate=learning_rate)
        trained = train(replace(config, seed=args.seed), load_mnist(mnist_dir), verbose=1, base=base)
        if args.base:
            trained.card["base_file"] = str(args.base)
    except (ConfigError, DataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path("models") / f"{config.arch}{SUFFIXES[trained.file_format]}"
    card_path = trained.save(out)
    card = trained.card
    print(f"test accuracy {card['test_accuracy']:.4f} after {card['training_seconds']} s; wrote {out} and {card_path}")
    return 0
