"""Whether a newly trained version should replace the active one (``activate: if-better``).

Pure arithmetic on the two versions' scores, so the web, the worker and the tests agree on it.
Where people have given corrections, the held-out ones (never trained on) are what the service
is for: the new version must read them better, and may read MNIST's test set at most
``MAX_TEST_DROP`` worse. Without held-out corrections, it must beat MNIST test accuracy alone.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_TEST_DROP = 0.001  # 0.1 percentage point of MNIST test accuracy


@dataclass(frozen=True)
class Scores:
    """A version's accuracy on MNIST's test set and on the held-out corrections (None: none to read)."""

    test_accuracy: float
    held_out_accuracy: float | None = None
    held_out_count: int = 0


def if_better(new: Scores, active: Scores | None, active_version: int | None = None) -> tuple[bool, str]:
    """(activate?, why): the rule ``activate: if-better`` applies, said in a sentence."""
    if active is None:
        return True, "no version was active"
    name = f"version {active_version}" if active_version else "the active version"
    if new.held_out_count and new.held_out_accuracy is not None and active.held_out_accuracy is not None:
        on_corrections = (
            f"on {new.held_out_count} held-out corrections {new.held_out_accuracy:.2%} against {name}'s "
            f"{active.held_out_accuracy:.2%}"
        )
        on_test = f"on MNIST test {new.test_accuracy:.2%} against {active.test_accuracy:.2%}"
        if new.held_out_accuracy <= active.held_out_accuracy:
            return False, f"not better on the corrections: {on_corrections}"
        if new.test_accuracy < active.test_accuracy - MAX_TEST_DROP - 1e-9:
            return False, f"better on the corrections ({on_corrections}) but over 0.1 point worse {on_test}"
        return True, f"better {on_corrections}, and {on_test} (at most 0.1 point worse)"
    if new.test_accuracy <= active.test_accuracy:
        return False, f"its test accuracy {new.test_accuracy:.2%} does not beat {name}'s {active.test_accuracy:.2%}"
    beats = f"its test accuracy {new.test_accuracy:.2%} beats {name}'s {active.test_accuracy:.2%}"
    return True, f"{beats} (no held-out corrections to judge by)"
