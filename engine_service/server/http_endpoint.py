"""The plain HTTP port of an engine (``--metrics-port``): Prometheus metrics and two probes.

    GET /metrics   the engine's Prometheus registry (text format, or OpenMetrics when asked for)
    GET /healthz   200 while the process serves this port at all (liveness)
    GET /readyz    200 while the gRPC health status is SERVING, else 503 with the reason (readiness)

Every other path is 404. The server runs in one daemon thread and stops within
its poll interval.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

#: Seconds ``serve_forever`` waits between checks for a shutdown request.
POLL_INTERVAL_S = 0.1


def _handler(registry: CollectorRegistry, readiness: Callable[[], str | None]) -> type:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept"))
                self._reply(200, encoder(registry), content_type)
            elif path == "/healthz":
                self._reply(200, b"ok\n")
            elif path == "/readyz":
                problem = readiness()
                self._reply(503, f"not ready: {problem}\n".encode()) if problem else self._reply(200, b"ready\n")
            else:
                self._reply(404, b"not found: this port serves /metrics, /healthz and /readyz\n")

        def _reply(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
            return  # scrapes every few seconds would flood the log

    return Handler


def _server_class(host: str, port: int) -> type[http.server.ThreadingHTTPServer]:
    """ThreadingHTTPServer of the address family ``host`` resolves to (IPv4 or IPv6); ``::`` is dual
    stack. Raises OSError when ``host`` does not resolve."""
    family = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]

    class Server(http.server.ThreadingHTTPServer):
        address_family = family

        def server_bind(self) -> None:
            if family == socket.AF_INET6 and host == "::":
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            super().server_bind()

    return Server


class HttpEndpoint:
    """``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` (0 picks a free port)."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry, readiness: Callable[[], str | None]):
        """``readiness()`` returns None when ready, else why not (shown in the 503 reply)."""
        self._server = _server_class(host, port)((host, port), _handler(registry, readiness))
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL_INTERVAL_S,), name="ditserve-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
