"""Fixtures of the service tier: a running service (own Redis, a Celery worker, gunicorn) per module.

The ways to start one (running_stack, web_only) and the HTTP helpers are in tests/service/helpers.py.
"""

from __future__ import annotations

import pytest

from tests.conftest import OUTPUT
from tests.service.helpers import running_stack


@pytest.fixture(scope="module")
def stack(request):
    """A running service for a test module: own Redis, one worker, gunicorn; with the module's
    ``STACK_ENV`` (a dict of settings) if it has one."""
    env = getattr(request.module, "STACK_ENV", None)
    with running_stack(OUTPUT / request.module.__name__, env=env) as running:
        yield running
