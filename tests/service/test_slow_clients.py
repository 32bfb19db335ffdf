"""A client that trickles its request cannot hold a connection: headers and body have a deadline
(REQUEST_READ_TIMEOUT, stack/web_worker.py), and a polite client is served meanwhile."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import requests

from tests.service.helpers import web_only

ALLOWANCE_S = 1.5


def connect(base_url: str) -> socket.socket:
    address = urlsplit(base_url)
    return socket.create_connection((address.hostname, address.port), timeout=10)


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed the connection within ``seconds``, and what it said before."""
    sock.settimeout(seconds)
    said = b""
    try:
        while chunk := sock.recv(4096):
            said += chunk
        return True, said
    except TimeoutError:
        return False, said
    except ConnectionResetError:
        return True, said


def test_trickled_headers_and_bodies_are_cut_off_and_others_are_served():
    env = {"REQUEST_READ_TIMEOUT": str(ALLOWANCE_S)}
    with web_only("test_slow_clients", env=env, workers=1) as (stack, _):
        slow_headers, slow_body = connect(stack.web_url), connect(stack.web_url)
        slow_headers.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        slow_body.sendall(
            b"POST /api/v1/predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100000\r\n\r\n{"images": ['
        )
        started = time.monotonic()
        trickling = True
        while time.monotonic() - started < ALLOWANCE_S + 1:  # a byte every 0.2 s: alive, but far too slow
            try:
                slow_body.sendall(b" ")
            except (BrokenPipeError, ConnectionResetError):
                trickling = False
                break
            polite = requests.get(f"{stack.web_url}/healthz", timeout=5)
            assert polite.status_code == 200
            time.sleep(0.2)
        headers_closed, _ = closed_within(slow_headers, 3)
        body_closed, said = closed_within(slow_body, 3)
        log = (stack.log_dir / "web.log").read_text()

    assert headers_closed, "a request whose headers never end must not hold the connection"
    assert body_closed or not trickling, "a body sent a byte at a time must not hold the connection"
    assert not said or said.startswith(b"HTTP/1.1 408"), said[:200]
    assert "Socket error processing request" not in log  # cut off quietly, not as a server fault


def test_a_large_body_at_a_steady_pace_passes():
    env = {"REQUEST_READ_TIMEOUT": "1"}
    with web_only("test_slow_clients_steady", env=env, workers=1) as (stack, _):
        sock = connect(stack.web_url)
        body = b'{"images": ["' + b"A" * 600_000 + b'"]}'  # ~3 s at 200 KB/s: past the first second
        sock.sendall(
            b"POST /api/v1/predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        )
        for start in range(0, len(body), 20_000):
            sock.sendall(body[start : start + 20_000])
            time.sleep(0.1)
        _, said = closed_within(sock, 10)
    assert said.startswith(b"HTTP/1.1 4") and b" 408 " not in said[:20], said[:200]  # judged on its merits


def test_overlong_request_lines_and_headers_are_refused_by_gunicorn_before_the_app():
    """What gunicorn refuses itself, in HTML, before the app sees anything: a request line over 4094
    bytes, a header field over 8190, more than 100 header fields (the app's own checks of what gets
    through are in tests/fast/test_api_validation.py)."""
    with web_only("test_slow_clients_limits", workers=1) as (stack, _):
        base = stack.web_url
        assert requests.get(f"{base}/api/v1/jobs/{'a' * 10_000}", timeout=10).status_code == 414
        assert requests.get(f"{base}/healthz", headers={"X-Padding": "a" * 20_000}, timeout=10).status_code == 431
        many = {f"X-{i}": "a" for i in range(150)}
        assert requests.get(f"{base}/healthz", headers=many, timeout=10).status_code in (400, 431)
        assert requests.get(f"{base}/healthz", timeout=10).ok
