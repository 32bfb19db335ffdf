"""`make run` (``python -m stack``) as a person restarts it: the admin token and the logs survive (issue 34, item 4)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from stack.redis_server import free_port


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
