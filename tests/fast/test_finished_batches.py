"""Kept answers about finished batches (web/finished_batches.py) are bounded in bytes and in time."""

from __future__ import annotations

from web.finished_batches import FinishedBatches


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_answer_is_kept_for_its_asker_kind_and_only_so_long():
    clock = Clock()
    kept = FinishedBatches(max_bytes=100, keep_s=10, clock=clock)
    kept.keep("b1", False, b"anyone's")
    assert kept.get("b1", False) == b"anyone's"
    assert kept.get("b1", True) is None  # the admin's answer shows more: it is kept apart
    clock.now = 10.5
    assert kept.get("b1", False) is None


def test_the_oldest_answers_go_first_when_the_room_is_full_and_one_too_large_is_not_kept():
    kept = FinishedBatches(max_bytes=100, keep_s=10, clock=Clock())
    kept.keep("b1", False, b"1" * 40)
    kept.keep("b2", False, b"2" * 40)
    assert kept.get("b1", False)  # b1 was used last: b2 is now the oldest
    kept.keep("b3", False, b"3" * 40)
    assert [kept.get(batch_id, False) is not None for batch_id in ("b1", "b2", "b3")] == [True, False, True]
    kept.keep("b4", False, b"4" * 101)
    assert kept.get("b4", False) is None and kept.get("b3", False) is not None
