"""The check of a model version runs in a child that sees none of the service's environment, and
judges the LiteRT export that LiteRT workers will serve, not only the Keras file."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from model.runtimes import check
from model.runtimes.litert import LiteRTPredictor
from model.shipped import SHIPPED_MODEL
from settings import Settings
from worker.checking import check_limits

SECRETS = {
    "DIGITS_ADMIN_TOKEN": "admin-secret-never-in-a-check",
    "SECRET_KEY": "k" * 40,
    "REDIS_URL": "redis://x:pw@h/0",
}

pytestmark = pytest.mark.slow  # each check loads TensorFlow in its child: about 20 s


def _children_environments(stop: threading.Event, seen: list[dict[str, str]]) -> None:
    """Read the environment of every child of this process running the check, until ``stop``."""
    while not stop.is_set():
        for children in Path("/proc/self/task").glob("*/children"):
            for pid in children.read_text().split():
                try:
                    command = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if b"model.runtimes.check" in command:
                        raw = Path(f"/proc/{pid}/environ").read_bytes()
                        seen.append(dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item))
                except OSError:
                    pass  # ended meanwhile
        time.sleep(0.05)


def test_the_check_child_starts_with_a_clean_environment_and_judges_the_litert_export(environ):
    for name, value in SECRETS.items():
        environ.setenv(name, value)
    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=_children_environments, args=(stop, seen), daemon=True)
    watcher.start()
    try:
        # The service's limits but for cost: the cost rule is tested elsewhere, and this machine is shared.
        limits = dataclasses.replace(check_limits(Settings()), max_ms_per_image=1000)
        checked = check.check_bytes(SHIPPED_MODEL.read_bytes(), "keras", limits, os.environ["MNIST_DIR"])
    finally:
        stop.set()
        watcher.join()
    assert seen, "the check's child was never seen"
    for child in seen:
        assert not set(SECRETS) & set(child), f"the check's child saw {sorted(set(SECRETS) & set(child))}"

    verdict = checked.verdict
    assert verdict.ok, verdict
    assert checked.litert is not None and verdict.litert_accuracy is not None and verdict.litert_accuracy >= 0.9
    # The export returned is a working LiteRT model: the very one a worker is given to serve.
    assert LiteRTPredictor(checked.litert).probabilities(np.zeros((2, 28, 28), np.float32)).shape == (2, 10)
