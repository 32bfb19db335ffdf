"""Model file formats, recognised from their bytes without loading them (the web uses this)."""

from __future__ import annotations

import io
import zipfile

# format -> file suffix
SUFFIXES = {"keras": ".keras", "skops": ".skops"}


def detect_format(data: bytes) -> str | None:
    """'keras' or 'skops' if ``data`` has the shape of such a file (a zip with their manifest), else None."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError):
        return None
    if {"config.json", "metadata.json"} <= names:
        return "keras"
    if "schema.json" in names:
        return "skops"
    return None
