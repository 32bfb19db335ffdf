"""A training job over HTTP, timed as the person at the Train page sees it, and its ETA checked.

    python -m bench.training_job                     # private stack shaped like make run; no parameters
    python -m bench.training_job --params '{"recipe": "strong"}'
    python -m bench.training_job --url http://127.0.0.1:8000 --token $DIGITS_ADMIN_TOKEN

Submits one training job, polls it every second as the page does, and prints: seconds from the
POST to the finished record (queue, data loading, training, the test, storing and the LiteRT
export included), the test accuracy, and at a few points of the run the ETA the job showed
beside the time it really took from there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from bench.private_stack import add_service_arguments, service_client
from client.service import DigitsClient

GOALS = {"seconds": 75, "test_accuracy": 0.99}


def run(client: DigitsClient, params: dict, log=print) -> dict:
    """Submit, follow and time one training job; returns its figures and the ETA samples."""
    started = time.monotonic()
    job_id = client.train(**params)["job_id"]
    samples = []  # (seconds since the POST, the job's ETA, the job's fraction)

    def seen(record: dict) -> None:
        progress = record.get("progress") or {}
        if progress.get("eta_s") is not None:
            samples.append((time.monotonic() - started, progress["eta_s"], progress.get("fraction")))

    record = client.wait(job_id, on_progress=seen, timeout=1800)
    took = time.monotonic() - started
    if record["status"] != "succeeded":
        raise RuntimeError(f"training job {job_id} {record['status']}: {record.get('error')}")
    card = record["result"]["card"]
    return {
        "seconds": round(took, 1),
        "training_seconds": card["training_seconds"],
        "test_accuracy": record["result"]["test_accuracy"],
        "recipe": card["hyperparameters"].get("recipe"),
        "epochs": card["epochs"],
        "eta_samples": [(round(at, 1), eta, fraction) for at, eta, fraction in samples],
    }


def report(figures: dict) -> str:
    lines = [
        f"training job ({figures['recipe']}, {figures['epochs']} epochs), submitted over HTTP and polled:",
        f"  seconds from POST to finished record {figures['seconds']:7.1f}   (goal <= {GOALS['seconds']})",
        f"  of which training                    {figures['training_seconds']:7.1f}",
        f"  test accuracy                        {figures['test_accuracy']:7.2%}"
        f"   (goal >= {GOALS['test_accuracy']:.0%})",
        "  at   ETA shown   really left   bar",
    ]
    samples = figures["eta_samples"]
    for at, eta, fraction in samples[:: max(1, len(samples) // 8)]:
        left = figures["seconds"] - at
        bar = f"{fraction:.0%}" if fraction is not None else "-"
        lines.append(f"  {at:5.1f} s  {eta:7.1f} s  {left:9.1f} s   {bar}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_service_arguments(parser, "digits-training-job")
    parser.add_argument("--params", type=json.loads, default={}, help="the job's parameters as JSON (default: none)")
    args = parser.parse_args(argv)
    with service_client(args) as client:
        figures = run(client, args.params)
    print(report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
