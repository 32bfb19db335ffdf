"""The launcher (`make run`): what it prints is safe to show."""

from __future__ import annotations

import pytest

from stack.__main__ import without_password


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@redis-host:6379/0", "redis://:***@redis-host:6379/0"),
        ("rediss://digits:s3cret@redis-host/1", "rediss://digits:***@redis-host/1"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_a_password_in_the_redis_url_is_never_printed(url, shown):
    assert without_password(url) == shown
