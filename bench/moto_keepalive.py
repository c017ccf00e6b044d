"""bench only: scripts/moto_server.py (moto's server, one request at a time) with HTTP/1.1
keep-alive, for `bench/compare.py --moto keepalive|both`.

moto's request handler speaks HTTP/1.0, so its server closes the connection after every
response and every SDK call locally opens a new TCP connection; in AWS the SDKs reuse pooled
connections. This wrapper sets the handler's protocol to HTTP/1.1 and then runs
scripts/moto_server.py unchanged (the tests and scripts/dev.sh keep using that one directly).
Arguments are moto.server's.
"""

import runpy
import sys
from pathlib import Path

from moto.moto_server.werkzeug_app import MotoRequestHandler

MotoRequestHandler.protocol_version = "HTTP/1.1"

script = Path(__file__).resolve().parent.parent / "scripts" / "moto_server.py"
sys.argv[0] = str(script)
runpy.run_path(str(script), run_name="__main__")
