"""time_limit interrupts work that runs over, on the main thread and on any other: a predict worker
reads its images on its lane-consumer thread, where no signal arrives."""

from __future__ import annotations

import threading
import time

import pytest

from model.images.budget import OutOfTime, time_limit


def spin_for_ever() -> None:
    while True:
        pass


def run_limited(seconds: float) -> tuple[BaseException | None, float]:
    started = time.perf_counter()
    try:
        with time_limit(seconds):
            spin_for_ever()
    except BaseException as exc:  # noqa: BLE001 - the test reports whatever came out
        return exc, time.perf_counter() - started
    return None, time.perf_counter() - started


@pytest.mark.parametrize("where", ["main thread", "another thread"])
def test_work_that_never_ends_is_interrupted_soon_after_its_limit(where):
    if where == "main thread":
        outcome = run_limited(0.1)
    else:
        results: list = []
        thread = threading.Thread(target=lambda: results.append(run_limited(0.1)), daemon=True)
        thread.start()
        thread.join(5)
        assert not thread.is_alive(), "the limit did not interrupt the work"
        outcome = results[0]
    exc, took = outcome
    assert isinstance(exc, OutOfTime) and "took over 100 ms" in str(exc)
    assert 0.1 <= took < 0.5


def test_work_within_its_limit_is_not_interrupted_later():
    def limited_then_more() -> str:
        with time_limit(0.05):
            time.sleep(0.01)
        time.sleep(0.2)  # past the limit, outside it: nothing may arrive here
        return "done"

    results: list = []
    threads = [threading.Thread(target=lambda: results.append(limited_then_more())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert results == ["done"] * 4


def test_one_threads_limit_does_not_reach_another():
    results: dict[str, object] = {}

    def slow() -> None:
        results["slow"] = run_limited(0.1)[0]

    def patient() -> None:
        with time_limit(5):
            time.sleep(0.4)
        results["patient"] = "done"

    threads = [threading.Thread(target=slow, daemon=True), threading.Thread(target=patient)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert isinstance(results["slow"], OutOfTime) and results["patient"] == "done"
