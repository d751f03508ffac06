"""A real HTTP server on 127.0.0.1 that serves images and misbehaves on purpose, for the download
tests and benchmarks/feed_scale.py: no mocked HTTP client anywhere."""
from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # a client that timed out and hung up is what the slow route is for


class ImageServer:
    """`files` maps a path ("/a.jpg") to bytes served as image/jpeg. Other routes:
    /slow/* waits `slow_seconds` before answering, /missing/* is 404, /redirect/X answers 302 to /X,
    /truncated/* announces more bytes than it sends, /unsized/X sends X without a length,
    /html/* is a web page, /flaky/X fails with 503 (with `Retry-After: retry_after` when given)
    the first `flaky_failures` times, then serves /X. `connections` holds each client's (host, port)."""

    def __init__(self, files: dict[str, bytes], slow_seconds: float = 3.0, flaky_failures: int = 1,
                 retry_after: str | None = None):
        self.files = files
        self.slow_seconds = slow_seconds
        self.flaky_failures = flaky_failures
        self.retry_after = retry_after
        self.hits: Counter[str] = Counter()
        self.connections: set[tuple[str, int]] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - the http.server spelling
                server.hits[self.path] += 1
                server.connections.add(self.client_address)
                route, _, rest = self.path.lstrip("/").partition("/")
                body = server.files.get("/" + rest, b"")
                if route == "slow":
                    time.sleep(server.slow_seconds)
                    return self.send(200, "image/jpeg", body)
                if route == "missing":
                    return self.send(404, "text/plain", b"not found")
                if route == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "/" + rest)
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                if route == "truncated":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(body) + 5000))
                    self.end_headers()
                    self.wfile.write(body)
                    self.close_connection = True
                    return None
                if route == "unsized":  # no Content-Length: the body ends when the connection closes
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.end_headers()
                    self.wfile.write(body)
                    self.close_connection = True
                    return None
                if route == "html":
                    return self.send(200, "text/html; charset=utf-8", b"<html>sign in</html>")
                if route == "flaky" and server.hits[self.path] <= server.flaky_failures:
                    return self.send(503, "text/plain", b"busy", server.retry_after)
                if route == "flaky":
                    return self.send(200, "image/jpeg", body)
                if self.path in server.files:
                    return self.send(200, "image/jpeg", server.files[self.path])
                return self.send(404, "text/plain", b"not found")

            def send(self, status: int, kind: str, body: bytes, retry_after: str | None = None) -> None:
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> "ImageServer":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
