"""A training job's progress on the terminal: one line redrawn in place, or a line now and then when piped."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from client.display import progress_line

PIPED_EVERY_S = 10.0  # a log file wants a line now and then, not one a second


class ProgressDisplay:
    """Feed it job records (``update``); it shows their ``progress`` and status changes, then ``close``."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self._status: str | None = None
        self._epoch: int | None = None
        self._last_line = ""  # the latest progress line seen
        self._printed_line = ""  # the latest line written out when piped
        self._last_printed = 0.0
        self._drawn = False

    def update(self, record: dict) -> None:
        status = record.get("status")
        if status != self._status:
            self._status = status
            if status == "queued":
                self._print("queued: waiting for a training worker")
            elif status == "running" and not record.get("progress"):
                self._print("running: loading the data and building the network")
        progress = record.get("progress")
        if not progress:
            return
        if status == "succeeded":  # tested and stored too: the bar, which counts them in, is full
            progress = {**progress, "fraction": 1.0, "eta_s": 0}
        line = progress_line(progress)
        if line == self._last_line:
            return
        self._last_line = line
        new_epoch = progress.get("epoch") != self._epoch
        self._epoch = progress.get("epoch")
        if self.live:
            self.stream.write("\r\x1b[2K" + line)
            self.stream.flush()
            self._drawn = True
        elif new_epoch or time.monotonic() - self._last_printed >= PIPED_EVERY_S:
            self._print(line)

    def close(self) -> None:
        """End the progress display; when piped, the last state seen is printed once more if it was skipped."""
        if self._drawn:
            self.stream.write("\n")
            self._drawn = False
        elif self._last_line != self._printed_line and not self.live:
            self._print(self._last_line)
        self.stream.flush()

    def _print(self, line: str) -> None:
        if self._drawn:
            self.stream.write("\n")
            self._drawn = False
        self.stream.write(line + "\n")
        self.stream.flush()
        self._printed_line = line
        self._last_printed = time.monotonic()
