"""What ``make run`` keeps across restarts in ``var/``: its admin token, and its logs.

A token exported in a shell must still work after a restart, so the one made up on the first
start is written to ``var/admin-token``, readable by this user only, and read again after.
Logs are appended to, never begun afresh: a restart keeps the previous run's lines, and a log
grown past :data:`ROTATE_BYTES` is moved aside to ``<name>.log.1`` (the one before that is dropped).
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

TOKEN_FILE = Path("var/admin-token")
ROTATE_BYTES = 20 * 1024 * 1024  # a log over this at a start is moved aside


def admin_token(path: Path = TOKEN_FILE) -> str:
    """The token kept at ``path`` (made up and kept there, mode 0600, when there is none yet)."""
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if token:
        if path.stat().st_mode & 0o077:  # kept by an older version, or copied: readable by this user only
            path.chmod(0o600)
        return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(18)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as kept:
        kept.write(token + "\n")
    path.chmod(0o600)  # O_CREAT's mode is masked by the umask, and an existing empty file keeps its own
    return token


def open_log(path: Path):
    """``path`` opened to append (binary), moved aside first when over :data:`ROTATE_BYTES`, with
    a line that says when this run began."""
    if path.exists() and path.stat().st_size > ROTATE_BYTES:
        path.replace(path.with_name(path.name + ".1"))
    log = open(path, "ab")  # noqa: SIM115 - the caller closes it once the process has it
    log.write(f"----- started {time.strftime('%Y-%m-%d %H:%M:%S %z')} -----\n".encode())
    log.flush()
    return log
