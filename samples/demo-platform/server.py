#!/usr/bin/env python3
"""A tiny static-hosting "platform" for the demo: what Vercel or Netlify are to the seed.

    python3 samples/demo-platform/server.py [--port 8787] [--dir .run/demo-platform]

`PUT /sites/<site>/<file>` with `Authorization: Bearer <token>` stores a file (the token is
DEMO_PLATFORM_TOKEN, default `demo-deploy-token`); `GET /sites/<site>/<file>` serves it;
`GET /deployments` lists what was uploaded, newest last. It runs on the host; the worker's
deploy sandbox reaches it only through the egress proxy, as `demo-platform.local`, because the
approved plan lists that host (scripts/up.sh maps the name to 127.0.0.1 for the worker).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8787)
    ap.add_argument("--dir", default=".run/demo-platform")
    args = ap.parse_args()
    root = os.path.abspath(args.dir)
    os.makedirs(root, exist_ok=True)
    token = os.environ.get("DEMO_PLATFORM_TOKEN", "demo-deploy-token")
    log = os.path.join(root, "deployments.jsonl")

    class Handler(BaseHTTPRequestHandler):
        def _target(self):
            parts = self.path.split("?")[0].strip("/").split("/")
            if len(parts) == 3 and parts[0] == "sites" and all(NAME.match(p) for p in parts[1:]):
                if parts[2] not in (".", ".."):
                    return os.path.join(root, "sites", parts[1], parts[2]), parts[1], parts[2]
            return None

        def _reply(self, code: int, body: bytes, kind: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self) -> None:  # noqa: N802
            if self.headers.get("Authorization") != f"Bearer {token}":
                return self._reply(401, b"bad token\n")
            target = self._target()
            length = int(self.headers.get("Content-Length") or 0)
            if target is None or length > 5 * 1024 * 1024:
                return self._reply(400, b"PUT /sites/<site>/<file>, at most 5 MiB\n")
            path, site, name = target
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(self.rfile.read(length))
            with open(log, "a") as f:
                f.write(json.dumps({"site": site, "file": name, "bytes": length, "at": time.time()}) + "\n")
            self._reply(201, b"stored\n")

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/deployments":
                body = open(log, "rb").read() if os.path.exists(log) else b""
                return self._reply(200, body, "application/x-ndjson")
            target = self._target()
            if target is None or not os.path.isfile(target[0]):
                return self._reply(404, b"not found\n")
            kind = "text/html" if target[0].endswith(".html") else "application/octet-stream"
            with open(target[0], "rb") as f:
                self._reply(200, f.read(), kind)

        def log_message(self, fmt: str, *a) -> None:
            print(f"demo-platform: {self.command} {self.path} -> {fmt % a}", flush=True)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"demo-platform: serving {root} on http://127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
