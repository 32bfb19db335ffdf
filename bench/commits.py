"""Another commit's code beside this checkout's, for benchmarks that compare the two in one run."""

from __future__ import annotations

import subprocess
from pathlib import Path

from stack import processes


def exported(ref: str, into: Path) -> Path:
    """Commit ``ref``'s files (git archive: no checkout, no worktree) in ``into``."""
    archive = subprocess.run(["git", "archive", ref], cwd=processes.ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into
