"""The launcher (`make run`): what it prints is safe to show (it prints REDIS_URL through jobs.connection.redacted)."""

from __future__ import annotations

import pytest

from jobs.connection import redacted


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@redis-host:6379/0", "redis://:***@redis-host:6379/0"),
        ("rediss://digits:s3cret@redis-host/1", "rediss://digits:***@redis-host/1"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis+sentinel://:s3cret@s1:26379,s2:26379/digits/0", "redis+sentinel://:***@s1:26379,s2:26379/digits/0"),
        ("redis+sentinel://s1/digits/0?sentinel_password=s3cret", "redis+sentinel://s1/digits/0?sentinel_password=***"),
    ],
)
def test_a_password_in_the_redis_url_is_never_printed(url, shown):
    assert redacted(url) == shown
