"""A real HTTP server on loopback that plays back scripted answers, for failures a healthy stack never shows.

Each request to ``(method, path prefix)`` takes the next answer of that route's script (the last
one repeats); every request is logged with its arrival time so tests can check the client's pauses.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Answer:
    def __init__(self, status: int, body: dict, headers: dict | None = None):
        self.status, self.body, self.headers = status, body, headers or {}


class ScriptedServer:
    """Serves ``routes`` {(method, path prefix): [Answer, ...]} on 127.0.0.1; use as a context manager."""

    def __init__(self, routes: dict[tuple[str, str], list[Answer]]):
        self.routes = {route: list(answers) for route, answers in routes.items()}
        self.log: list[tuple[float, str, str, int]] = []  # (time, method, path, status)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ScriptedServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_) -> None:
        self._server.shutdown()
        self._server.server_close()

    def requests(self, method: str, prefix: str) -> list[tuple[float, int]]:
        """(arrival time, status answered) of each request to that route, in order."""
        return [(at, status) for at, m, path, status in self.log if m == method and path.startswith(prefix)]

    def _next_answer(self, method: str, path: str) -> Answer:
        with self._lock:
            for (m, prefix), answers in self.routes.items():
                if m == method and path.startswith(prefix):
                    return answers.pop(0) if len(answers) > 1 else answers[0]
        return Answer(404, {"error": {"code": "not_found", "message": f"no route {method} {path}"}})

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                answer = server._next_answer(self.command, self.path)
                body = json.dumps(answer.body).encode()
                with server._lock:
                    server.log.append((time.monotonic(), self.command, self.path, answer.status))
                self.send_response(answer.status)
                for name, value in {"Content-Type": "application/json", **answer.headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args):  # keep test output clean
                pass

        return Handler
