"""What a benchmark's figures were measured on: when, which commit, how many CPUs."""

from __future__ import annotations

import datetime as dt
import os
import subprocess


def provenance() -> dict:
    """The date (UTC), the checkout's short commit and the machine's CPU count."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit.strip(),
        "cpus": os.cpu_count(),
    }
