"""bench only: scripts/moto_server.py (moto's server, one request at a time) with HTTP/1.1
keep-alive, for `bench/compare.py --moto keepalive|both`.

moto's server is werkzeug's, which answers every request with `Connection: close` (and then
drains the socket for 10 ms), so locally every SDK call opens a new TCP connection; in AWS the
SDKs reuse pooled connections. This wrapper makes werkzeug keep the connection open: HTTP/1.1,
no `Connection: close`, no drain (it would eat the next request on a kept connection; moto reads
each body by its Content-Length). Then it runs scripts/moto_server.py unchanged — the tests and
scripts/dev.sh keep using that one directly. Arguments are moto.server's.
"""

import runpy
import socket
import sys
from pathlib import Path

import werkzeug.serving as serving
from moto.moto_server.werkzeug_app import MotoRequestHandler


def keep_alive(handler) -> None:
    """Patches a werkzeug request handler class for HTTP/1.1 keep-alive (the Python equivalent,
    bench/equivalents/python/app.py, does the same to its own server)."""

    class _NoDrain:  # werkzeug.serving uses `selectors` only for the after-request drain
        EVENT_READ = 1

        def DefaultSelector(self):
            return self

        def register(self, *args):
            pass

        def select(self, timeout=None):
            return []

        def close(self):
            pass

    serving.selectors = _NoDrain()
    send_header = handler.send_header

    def without_close(self, key, value):
        if not (key.lower() == "connection" and value.lower() == "close"):
            send_header(self, key, value)

    setup = handler.setup

    def nodelay(self):
        # http.server writes headers and body in separate sends: on a kept connection Nagle's
        # algorithm would hold the body until the client's delayed ACK (40 ms).
        setup(self)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    handler.send_header = without_close
    handler.setup = nodelay
    handler.protocol_version = "HTTP/1.1"


keep_alive(MotoRequestHandler)
script = Path(__file__).resolve().parent.parent / "scripts" / "moto_server.py"
sys.argv[0] = str(script)
runpy.run_path(str(script), run_name="__main__")
