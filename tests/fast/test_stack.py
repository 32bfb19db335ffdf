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


# --- What make run keeps across restarts (issue 34, item 4) ----------------------------------------


def test_the_admin_token_is_made_once_kept_for_this_user_only_and_read_again(tmp_path):
    from stack.kept import admin_token

    path = tmp_path / "var" / "admin-token"
    first = admin_token(path)
    assert len(first) >= 20 and path.read_text().strip() == first
    assert path.stat().st_mode & 0o777 == 0o600
    assert admin_token(path) == first  # a restart: the same token
    path.chmod(0o644)  # a copy, or an older file: made private again
    assert admin_token(path) == first and path.stat().st_mode & 0o777 == 0o600


def test_logs_are_appended_across_restarts_and_rotated_when_large(tmp_path, monkeypatch):
    from stack import kept
    from stack.processes import Stack

    for run in ("first", "second"):
        stack = Stack("redis://127.0.0.1:1/0", tmp_path, keep_logs=True)
        stack._spawn("echo", ["/bin/echo", f"{run} run"]).wait()
    text = (tmp_path / "echo.log").read_text()
    assert "first run" in text and "second run" in text and text.count("----- started") == 2
    monkeypatch.setattr(kept, "ROTATE_BYTES", 10)
    stack = Stack("redis://127.0.0.1:1/0", tmp_path, keep_logs=True)
    stack._spawn("echo", ["/bin/echo", "third run"]).wait()
    assert "second run" in (tmp_path / "echo.log.1").read_text()
    assert "third run" in (tmp_path / "echo.log").read_text()
    assert "second run" not in (tmp_path / "echo.log").read_text()
