"""Serve the notes app of this directory and forward its API calls to an orbitstore node.

The app (``index.html`` + ``app.js``) is plain JavaScript that talks only to the node's
HTTP API (``/v1/...``, docs/http-api.md). The node's API sends no CORS headers, on
purpose: a page from any other origin must not read or write a node on your machine. So
this server serves the app's files *and* forwards ``/v1/`` requests to the node, from
one origin; the API token, when the node has one, stays here and never reaches the
browser. Standard library only.

Run (with a node serving its API on 127.0.0.1:4402, e.g. ``make run``)::

    .venv/bin/python examples/app_backend/serve.py --api http://127.0.0.1:4402 --port 8080

then open http://127.0.0.1:8080/ (in two browsers: notes added in one appear in the
other, and in the node's console). ``--token`` (or ``ORBITSTORE_API_TOKEN``) is sent to
the node as ``Authorization: Bearer``. Stops on Ctrl-C.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = {"/": "index.html", "/index.html": "index.html", "/app.js": "app.js"}
# Longer than the longest long-poll the app asks for (25 s).
UPSTREAM_TIMEOUT = 70.0


def make_handler(api: urllib.parse.SplitResult, token: str | None) -> type:
    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(HERE), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the app long-polls

        def do_GET(self) -> None:
            if self.path.startswith("/v1/"):
                self.forward()
            elif self.path.split("?")[0] in FILES:
                self.path = "/" + FILES[self.path.split("?")[0]]
                super().do_GET()
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            self.forward()

        do_PUT = do_PATCH = do_DELETE = do_POST

        def forward(self) -> None:
            if not self.path.startswith("/v1/"):
                self.send_error(404)
                return
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {"content-type": self.headers.get("content-type", "application/json")}
            if token:
                headers["authorization"] = f"Bearer {token}"
            upstream = http.client.HTTPConnection(api.hostname, api.port, timeout=UPSTREAM_TIMEOUT)
            try:
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
            except OSError as exc:
                self.send_error(502, f"the orbitstore node at {api.geturl()} did not answer: {exc}")
                return
            finally:
                upstream.close()
            self.send_response(answer.status)
            self.send_header("content-type", answer.getheader("content-type", "application/json"))
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--api", default="http://127.0.0.1:4402", help="the node's API URL")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve the app on")
    parser.add_argument("--port", type=int, default=8080, help="port (0: any free port)")
    parser.add_argument("--token", default=os.environ.get("ORBITSTORE_API_TOKEN"))
    args = parser.parse_args(argv)
    api = urllib.parse.urlsplit(args.api)
    if api.scheme != "http" or not api.hostname or not api.port:
        parser.error(f"--api is http://HOST:PORT, not {args.api!r}")
    server = ThreadingHTTPServer((args.host, args.port), make_handler(api, args.token))
    server.daemon_threads = True
    host, port = server.server_address[:2]
    print(f"notes app: http://{host}:{port}/ (API calls go to {args.api})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
