#!/usr/bin/env python3
"""The local run's second origin (scripts/dev.sh): the demo page and the API docs.

    python3 scripts/web_server.py --port 3001 --config .local/web-config.json

  /                   web/ (index.html, app.js, style.css)
  /config.js          window.DEMO_CONFIG = <the --config JSON>: API URL, demo tenant, user,
                      e-mail and bearer token (read on every request; dev.sh writes it)
  /docs/              web/docs/index.html + docs.js: Swagger UI over /docs/openapi.yaml
  /docs/openapi.yaml  api/openapi.yaml
  /docs/vendor/…      web/docs/node_modules/swagger-ui-dist/ (vendored by `npm ci` at setup)

Binds 127.0.0.1 only; the standard library only. Nothing else under web/ is reachable
(no node_modules, no package files) and nothing is cached, so an edited page shows on reload.
"""

import argparse
import http.server
import json
import mimetypes
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
DOCS = WEB / "docs"
VENDOR = DOCS / "node_modules" / "swagger-ui-dist"
SPEC = ROOT / "api" / "openapi.yaml"

PAGES = {
    "/": WEB / "index.html",
    "/index.html": WEB / "index.html",
    "/app.js": WEB / "app.js",
    "/style.css": WEB / "style.css",
    "/docs/": DOCS / "index.html",
    "/docs/index.html": DOCS / "index.html",
    "/docs/docs.js": DOCS / "docs.js",
    "/docs/openapi.yaml": SPEC,
}
TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html",
         ".yaml": "application/yaml", ".png": "image/png", ".map": "application/json"}


class Handler(http.server.BaseHTTPRequestHandler):
    config_path: Path

    def do_HEAD(self):
        self.do_GET(head=True)

    def do_GET(self, head=False):
        path = self.path.split("?", 1)[0]
        if path == "/docs":
            return self.send(301, b"", "text/plain", {"Location": "/docs/"}, head)
        if path == "/config.js":
            try:
                config = json.loads(self.config_path.read_text())
            except (OSError, ValueError) as err:
                return self.send(503, f"// config unavailable: {err}\n".encode(),
                                 "text/javascript", head=head)
            body = f"window.DEMO_CONFIG = {json.dumps(config, indent=2)};\n".encode()
            return self.send(200, body, "text/javascript", head=head)
        file = PAGES.get(path)
        if file is None and path.startswith("/docs/vendor/"):
            name = path[len("/docs/vendor/"):]
            if name and "/" not in name and not name.startswith("."):
                file = VENDOR / name
        if file is None or not file.is_file():
            hint = ""
            if path.startswith("/docs/vendor/"):
                hint = " (run: npm ci --ignore-scripts --prefix web/docs)"
            elif path == "/docs/openapi.yaml":
                hint = " (api/openapi.yaml does not exist in this checkout)"
            return self.send(404, f"not found: {path}{hint}\n".encode(), "text/plain", head=head)
        kind = TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        self.send(200, file.read_bytes(), kind, head=head)

    def send(self, status, body, kind, headers=None, head=False):
        self.send_response(status)
        charset = "; charset=utf-8" if kind.startswith("text/") or kind.endswith(("json", "yaml")) else ""
        self.send_header("Content-Type", kind + charset)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("[web] %s\n" % (fmt % args))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    Handler.config_path = args.config
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"[web] serving http://localhost:{args.port}/ and /docs/", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
