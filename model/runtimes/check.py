"""Is a model file fit to serve? Load it and run it on known digits, in a child process held to
memory and time limits, so that a file that crashes, hangs or eats memory harms only the child.

    # prints the verdict as JSON
    python -m model.runtimes.check MODEL_FILE --min-accuracy 0.9 --max-ms 2 --memory-mb 3072 [--format skops]

What it checks: the file loads (Keras in safe mode, skops with its trusted types); on a fixed
sample of MNIST test digits the output is (N, 10), finite, each row sums to 1; one call on 256
digits costs no more than a budget per image; and the accuracy on them is not below a floor. A
Keras file's LiteRT export (what LiteRT workers serve) is made in the same child and checked the
same way; the caller stores that very export, so what is served is what was checked.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

SAMPLE = 500  # MNIST test digits, the first of each class in turn from a fixed seed
COST_BATCH = 256
# The check's child process sees nothing of the service's environment (tokens, Redis URL).
CHILD_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "2"}
# ... and runs this very code: started in the folder that holds the model package (``-m`` looks
# there first), whatever the environment's PYTHONPATH or the installed copy say.
CODE_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class CheckLimits:
    """What a model must meet to be served, and what checking it may cost (the service's are the
    CHECK_* settings: worker/checking.py)."""

    min_accuracy: float
    max_ms_per_image: float
    memory_bytes: int
    seconds: float


@dataclass(frozen=True)
class Verdict:
    """The check's answer: ``ok``, or why not; and what was measured."""

    ok: bool
    reason: str
    accuracy: float | None = None
    ms_per_image: float | None = None
    checked_at: float = 0.0
    litert_accuracy: float | None = None  # a Keras file's LiteRT export, judged the same way
    litert_ms_per_image: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class Checked(NamedTuple):
    """A verdict, and the LiteRT export that was checked with it (a Keras file's, else None)."""

    verdict: Verdict
    litert: bytes | None


def check_file(
    path: str | os.PathLike,
    file_format: str,
    limits: CheckLimits,
    mnist_dir: str,
    litert_out: str | os.PathLike | None = None,
) -> Verdict:
    """Check the model file at ``path`` in a child process, on digits from the MNIST in
    ``mnist_dir`` ("": Keras's download); never raises for a bad model. With ``litert_out``, a
    Keras file's LiteRT export is written there and checked too."""
    command = [sys.executable, "-m", "model.runtimes.check", str(path), "--format", file_format]
    if litert_out is not None:
        command += ["--litert-out", str(litert_out)]
    command += ["--mnist-dir", str(mnist_dir)]
    command += ["--min-accuracy", str(limits.min_accuracy), "--max-ms", str(limits.max_ms_per_image)]
    command += ["--memory-mb", str(limits.memory_bytes // 2**20)]

    def held_to_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))

    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=limits.seconds,
            preexec_fn=held_to_memory,
            env=CHILD_ENVIRONMENT,  # a model file is untrusted: none of the service's secrets
            cwd=CODE_ROOT,
        )
    except subprocess.TimeoutExpired:
        return _verdict(False, f"checking it took over {limits.seconds:.0f} s")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode == 0 and lines:
        return Verdict(**json.loads(lines[-1]))
    if "MemoryError" in done.stderr or "bad_alloc" in done.stderr or "Resource exhausted" in done.stderr:
        return _verdict(False, f"it needs more than {limits.memory_bytes // 2**20} MB of memory to run")
    if done.returncode < 0:
        return _verdict(False, f"the check was killed by signal {-done.returncode} (out of memory?)")
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
    return _verdict(False, f"the check failed: {tail}")


def check_bytes(data: bytes, file_format: str, limits: CheckLimits, mnist_dir: str) -> Checked:
    """:func:`check_file` for a model file's bytes, with a Keras file's LiteRT export checked and returned."""
    suffix = ".keras" if file_format == "keras" else ".skops"
    with tempfile.TemporaryDirectory() as tmp:
        path, exported = Path(tmp) / f"model{suffix}", Path(tmp) / "model.tflite"
        path.write_bytes(data)
        verdict = check_file(path, file_format, limits, mnist_dir, exported if file_format == "keras" else None)
        litert = exported.read_bytes() if verdict.ok and exported.exists() else None
        return Checked(verdict, litert)


def sample_digits(mnist_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """The fixed sample: (N, 28, 28) float32 in [0, 1] and their labels."""
    from model.mnist import load_mnist

    mnist = load_mnist(mnist_dir)
    order = np.random.default_rng(0).permutation(len(mnist.y_test))[:SAMPLE]
    return mnist.x_test[order].astype(np.float32) / 255.0, mnist.y_test[order]


def judge(predictor, images: np.ndarray, labels: np.ndarray, limits: CheckLimits) -> Verdict:
    """The verdict on a loaded predictor (anything with ``probabilities``)."""
    probabilities = np.asarray(predictor.probabilities(images))
    if probabilities.shape != (len(images), 10):
        return _verdict(False, f"its output is {probabilities.shape} for {len(images)} digits, not ({len(images)}, 10)")
    if not np.all(np.isfinite(probabilities)):
        return _verdict(False, "its output has values that are not finite (NaN or infinity)")
    sums = probabilities.sum(axis=1)
    if np.max(np.abs(sums - 1)) > 1e-3:
        return _verdict(False, f"its rows do not sum to 1 (from {sums.min():.4f} to {sums.max():.4f})")
    batch = images[:COST_BATCH]
    predictor.probabilities(batch)  # warmed up
    times = []
    for _ in range(5):
        started = time.perf_counter()
        predictor.probabilities(batch)
        times.append(time.perf_counter() - started)
    ms = float(np.median(times)) * 1000 / len(batch)
    if ms > limits.max_ms_per_image:
        return _verdict(False, f"it costs {ms:.2f} ms per image, over {limits.max_ms_per_image} ms", ms=ms)
    accuracy = float((probabilities.argmax(axis=1) == labels).mean())
    if accuracy < limits.min_accuracy:
        return _verdict(
            False,
            f"{accuracy:.1%} right on {len(labels)} MNIST test digits, under {limits.min_accuracy:.0%}",
            accuracy,
            ms,
        )
    return _verdict(True, "ok", accuracy, ms)


def _verdict(ok: bool, reason: str, accuracy: float | None = None, ms: float | None = None) -> Verdict:
    rounded = None if ms is None else round(ms, 4)
    return Verdict(ok, reason, None if accuracy is None else round(accuracy, 4), rounded, round(time.time(), 3))


def _load(path: Path, file_format: str):
    if file_format == "skops":
        from model.runtimes.scikit_learn import ClassicPredictor

        return ClassicPredictor.from_bytes(path.read_bytes())
    from model.runtimes.keras_predictor import KerasPredictor

    return KerasPredictor.from_file(path)


def _with_litert(
    verdict: Verdict, model: Path, out: Path, images: np.ndarray, labels: np.ndarray, limits: CheckLimits
) -> Verdict:
    """The verdict on a Keras file, with its LiteRT export (written to ``out``) judged too."""
    from model.runtimes import litert

    out.write_bytes(litert.export(model.read_bytes()))
    exported = judge(litert.LiteRTPredictor(out.read_bytes(), threads=1), images, labels, limits)
    if not exported.ok:
        out.unlink()
        return _verdict(False, f"its LiteRT export: {exported.reason}", exported.accuracy, exported.ms_per_image)
    return Verdict(
        **{**verdict.to_dict(), "litert_accuracy": exported.accuracy, "litert_ms_per_image": exported.ms_per_image}
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--format", choices=("keras", "skops"), default="keras")
    parser.add_argument("--min-accuracy", type=float, required=True, help="the least share of the sample read right")
    parser.add_argument("--max-ms", type=float, required=True, help="the most ms per image on a batch of 256")
    parser.add_argument("--mnist-dir", default="", help="MNIST's folder (default: Keras's download)")
    parser.add_argument("--litert-out", type=Path, help="a Keras file: write its LiteRT export here and check it too")
    parser.add_argument("--memory-mb", type=int, required=True, help="the memory limit it runs under")
    args = parser.parse_args(argv)
    # Time is bounded by the parent, which waits for this process; memory by its rlimit.
    limits = CheckLimits(args.min_accuracy, args.max_ms, args.memory_mb * 2**20, seconds=0.0)
    images, labels = sample_digits(args.mnist_dir)
    try:
        predictor = _load(args.model, args.format)
    except Exception as exc:  # any way a file can fail to be a model
        verdict = _verdict(False, f"it does not load: {type(exc).__name__}: {exc}"[:300])
    else:
        try:
            verdict = judge(predictor, images, labels, limits)
            if verdict.ok and args.format == "keras" and args.litert_out:
                verdict = _with_litert(verdict, args.model, args.litert_out, images, labels, limits)
        except MemoryError:
            verdict = _verdict(False, f"it needs more than {args.memory_mb} MB of memory to run")
        except Exception as exc:
            if type(exc).__name__ == "ResourceExhaustedError":  # TensorFlow's out of memory
                verdict = _verdict(False, f"it needs more than {args.memory_mb} MB of memory to run")
            else:
                verdict = _verdict(False, f"running it failed: {type(exc).__name__}: {exc}"[:300])
    print(json.dumps(verdict.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
