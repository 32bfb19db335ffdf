"""Flask's and werkzeug's own configuration, derived from the service's settings (settings.py)."""

from __future__ import annotations

from settings import Settings

# Multipart parts beyond the images (e.g. a model upload's card), so a request with
# MAX_IMAGES_PER_REQUEST images passes werkzeug's part limit and one with thousands fails fast.
EXTRA_FORM_PARTS = 16


def flask_config(settings: Settings) -> dict:
    """The Flask configuration keys that follow from ``settings``."""
    return {
        "MAX_CONTENT_LENGTH": settings.max_content_length,
        "MAX_FORM_PARTS": settings.max_images_per_request + EXTRA_FORM_PARTS,
        "SECRET_KEY": settings.secret_key or None,
    }
