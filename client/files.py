"""Which files a command line names: files as given, directories walked in a stable order."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path


def files_in(paths: Iterable[Path]) -> Iterator[Path]:
    """Each path that is a file, then every file under each directory, sorted, hidden ones skipped.

    Nothing is filtered by extension: a file that is not an image is reported as such rather
    than silently left out.
    """
    for path in paths:
        if not path.is_dir():
            yield path
            continue
        for root, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                if not name.startswith("."):
                    yield Path(root) / name
