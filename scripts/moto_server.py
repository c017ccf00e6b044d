"""moto's DynamoDB-compatible server, applying one request at a time.

moto evaluates a condition expression and then applies the write without holding a lock, so two
concurrent conditional writes to one item can both pass. DynamoDB applies conditional writes to
an item atomically, and this service's single-use challenges and refresh-token rotation rely on
that. Serialising requests gives the local run and the tests the same guarantee, so concurrency
tests exercise the code's conditions rather than moto's races. Arguments are moto.server's.
"""

import threading

import moto.server as server

_lock = threading.Lock()
_run_simple = server.run_simple


def _serialised(app):
    def handle(environ, start_response):
        with _lock:
            return list(app(environ, start_response))

    return handle


def run_simple(host, port, app, **options):
    return _run_simple(host, port, _serialised(app), **options)


server.run_simple = run_simple

if __name__ == "__main__":
    server.main()
