"""A local HTTPS server for MTA-STS policies (and anything else served by Host name).

Runs in a background thread so both the in-process unit tests and the
integration tests (exporter in a subprocess) can use it. Each Host name can
have its own certificate (selected by SNI) and its own responses.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.integration.pki import Leaf


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"
    headers: dict[str, str] = field(default_factory=dict)


def policy(mode: str, *mx: str, max_age: int = 604800, version: str = "STSv1") -> Response:
    lines = [f"version: {version}", f"mode: {mode}", *(f"mx: {m}" for m in mx),
             f"max_age: {max_age}"]
    return Response(body=("\r\n".join(lines) + "\r\n").encode())


class HttpsServer:
    """``HttpsServer(address, port, tmpdir)``; ``.host(name, leaf)``; ``.route(name, path, r)``."""

    def __init__(self, address: str, port: int, tmpdir: Path) -> None:
        self.address = address
        self.port = port
        self.tmpdir = tmpdir
        self.routes: dict[tuple[str, str], Response] = {}
        self.requests: list[tuple[str, str]] = []
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._default: ssl.SSLContext | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def host(self, name: str, leaf: Leaf) -> None:
        """Serve ``name`` with ``leaf`` (chosen by SNI; the first one is the default)."""
        chain, key = leaf.write(self.tmpdir, f"https-{name}-{len(self._contexts)}")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(chain, key)
        self._contexts[name] = ctx
        if self._default is None:
            self._default = ctx

    def route(self, host: str, path: str, response: Response) -> None:
        self.routes[(host.lower(), path)] = response

    def start(self) -> HttpsServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host = (self.headers.get("Host") or "").split(":")[0].lower()
                server.requests.append((host, self.path))
                resp = server.routes.get((host, self.path), Response(404, b"not found\n"))
                self.send_response(resp.status)
                self.send_header("Content-Type", resp.content_type)
                self.send_header("Content-Length", str(len(resp.body)))
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(resp.body)

            def log_message(self, format: str, *args: object) -> None:
                return

        if self._default is None:
            raise RuntimeError("add a host (certificate) before start()")
        default = self._default

        def sni(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None,
                _ctx: ssl.SSLContext) -> None:
            if name and name.lower() in self._contexts:
                sock.context = self._contexts[name.lower()]

        default.sni_callback = sni
        httpd = ThreadingHTTPServer((self.address, self.port), Handler)
        httpd.daemon_threads = True
        httpd.socket = default.wrap_socket(httpd.socket, server_side=True)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
