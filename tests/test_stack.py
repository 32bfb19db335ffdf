"""The launcher (`make run`): what it prints is safe to show (it prints REDIS_URL through jobs.connection.redacted)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from jobs.connection import redacted
from stack.redis_server import free_port


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


@pytest.mark.slow
def test_make_run_keeps_its_token_and_its_logs_across_a_restart(tmp_path, redis_server):
    """``python -m stack`` (what make run runs) twice in a fresh directory: the same token both
    times, kept in var/admin-token (0600) and printed with where it is; both runs' logs in var/log."""
    env = {k: v for k, v in os.environ.items() if k not in ("DIGITS_ADMIN_TOKEN", "DIGITS_API_TOKEN")}
    env |= {"REDIS_URL": redis_server.url, "PORT": str(free_port()), "GRPC_PORT": str(free_port())}
    tokens = []
    for _ in range(2):
        launcher = subprocess.Popen(
            [sys.executable, "-m", "stack"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        try:
            lines = []
            for line in launcher.stdout:
                lines.append(line)
                if line.startswith("Ctrl-C"):
                    break
            printed = "".join(lines)
            token = re.search(r"^Admin token (\S+)", printed, re.MULTILINE)
            assert token, printed
            assert "var/admin-token" in printed and "DIGITS_ADMIN_TOKEN=$(cat var/admin-token)" in printed
            tokens.append(token.group(1))
        finally:
            launcher.send_signal(signal.SIGINT)
            launcher.wait(60)
    kept = tmp_path / "var" / "admin-token"
    assert tokens[0] == tokens[1] == kept.read_text().strip()
    assert kept.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "var" / "log" / "web.log").read_text().count("----- started") == 2
