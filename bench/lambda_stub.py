"""Shared harness for bench/cold_start.py and bench/cpu.py (Python standard library only).

- `LocalAws`: moto's server (scripts/moto_server.py), the KMS key and secrets
  (scripts/local_keys.py), the tables, a tenant, a user and a token (authctl), and the
  environment scripts/dev.sh gives the functions.
- `RuntimeApi`: a stub of the Lambda Runtime API on 127.0.0.1. It records when each
  `GET /2018-06-01/runtime/invocation/next` arrives (with the process's CPU ticks and VmHWM at
  that moment), answers it with the next queued event, and holds it unanswered once the queue
  is empty, as Lambda does between invocations. Responses and errors are recorded.
- `events_for`: an API Gateway v2 event from events/<function>/ with its placeholders filled.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def all_functions() -> list[str]:
    return sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "Cargo.toml").is_file())


def default_bin_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / "release"


# --- /proc ------------------------------------------------------------------------------------


def proc_cpu_ticks(pid: int) -> int | None:
    """utime + stime of the process (all its threads), in clock ticks."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def proc_status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


# --- the stub Runtime API ---------------------------------------------------------------------


@dataclass
class Next:
    """One `next` request: when it arrived and the process's counters at that moment."""

    t: float  # time.monotonic()
    cpu_ticks: int | None
    hwm_kb: int | None
    rss_kb: int | None


@dataclass
class Run:
    pid: int | None = None
    events: list[bytes] = field(default_factory=list)
    nexts: list[Next] = field(default_factory=list)
    responses: list[tuple[float, str, bytes]] = field(default_factory=list)  # (t, kind, body)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    release: threading.Event = field(default_factory=threading.Event)


class RuntimeApi:
    def __init__(self) -> None:
        self.run = Run()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != "/2018-06-01/runtime/invocation/next":
                    return self._reply(404, b"{}")
                run = stub.run
                t = time.monotonic()
                pid = run.pid
                nxt = Next(
                    t,
                    proc_cpu_ticks(pid) if pid else None,
                    proc_status_kb(pid, "VmHWM") if pid else None,
                    proc_status_kb(pid, "VmRSS") if pid else None,
                )
                with run.arrived:
                    index = len(run.nexts)
                    run.nexts.append(nxt)
                    run.arrived.notify_all()
                if index < len(run.events):
                    request_id = str(uuid.uuid4())
                    return self._reply(
                        200,
                        run.events[index],
                        {
                            "Lambda-Runtime-Aws-Request-Id": request_id,
                            "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 30_000),
                            "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:bench",
                            "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                        },
                    )
                # No more events: hold the request, as Lambda does while the function is idle.
                # Released (the connection closed without an answer) once the process is killed.
                run.release.wait()
                self.close_connection = True

            def do_POST(self):
                t = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                kind = self.path.rsplit("/", 1)[-1]  # response | error (invocation or init)
                run = stub.run
                with run.arrived:
                    run.responses.append((t, kind, body))
                    run.arrived.notify_all()
                self._reply(202, b'{"status":"OK"}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.run.release.set()
        self.server.shutdown()


@dataclass
class Result:
    t0: float
    run: Run
    returncode: int | None
    stderr: str


class Launcher:
    """Starts a function binary against the stub, waits for a number of `next` requests."""

    def __init__(self, api: RuntimeApi, env: dict[str, str], log_dir: Path):
        self.api = api
        self.env = env
        self.log_dir = log_dir

    def start(self, binary: Path, name: str, events: list[bytes], nexts: int, timeout: float) -> Result:
        """Execs `binary`, serves `events`, returns once `nexts` `next` requests have arrived (or
        the process exited, or `timeout` passed), then kills the process."""
        run = Run(events=list(events))
        self.api.run = run
        env = dict(self.env, AWS_LAMBDA_RUNTIME_API=self.api.address, AWS_LAMBDA_FUNCTION_NAME=name)
        err_path = self.log_dir / f"{name}.stderr"
        with open(self.log_dir / f"{name}.stdout", "ab") as out, open(err_path, "wb") as err:
            t0 = time.monotonic()
            proc = subprocess.Popen([str(binary)], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            run.pid = proc.pid
            deadline = t0 + timeout
            with run.arrived:
                while len(run.nexts) < nexts and proc.poll() is None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    run.arrived.wait(min(left, 0.05))
            returncode = proc.poll()
            if returncode is None:
                proc.kill()
                proc.wait()
            run.release.set()
        stderr = err_path.read_text(errors="replace")[-2000:]
        return Result(t0, run, returncode, stderr)


# --- local AWS (moto) -------------------------------------------------------------------------


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except Exception:
        return 0


class LocalAws:
    def __init__(self, python: Path, bin_dir: Path, log_dir: Path, moto_script: Path | None = None):
        self.python = python
        # scripts/moto_server.py unless a bench-only wrapper of it is given (bench/moto_keepalive.py)
        self.moto_script = moto_script or ROOT / "scripts/moto_server.py"
        self.authctl = bin_dir / "authctl"
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.env: dict[str, str] = {}
        self.tenant = self.user = self.token = ""
        self.email = "bench@example.com"

    def __enter__(self) -> "LocalAws":
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        log(f"starting moto on {endpoint} (log: {self.log_dir / 'moto.log'})")
        self.proc = subprocess.Popen(
            [str(self.python), str(self.moto_script), "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=open(self.log_dir / "moto.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        for _ in range(150):
            if _get(f"{endpoint}/moto-api/data.json") == 200:
                break
            if self.proc.poll() is not None:
                raise SystemExit(f"moto exited; see {self.log_dir / 'moto.log'}")
            time.sleep(0.2)
        else:
            raise SystemExit("moto did not answer within 30 s")

        # scripts/dev.sh's environment (section 3), plus what the Lambda runtime sets.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RUST_LOG"))}
        env.update(
            AWS_REGION="us-east-1",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
            AWS_ENDPOINT_URL=endpoint,
            TENANTS_TABLE="passkey-local-tenants",
            USERS_TABLE="passkey-local-users",
            CREDENTIALS_TABLE="passkey-local-credentials",
            CHALLENGES_TABLE="passkey-local-challenges",
            BACKUP_CODES_TABLE="passkey-local-backup-codes",
            SESSIONS_TABLE="passkey-local-sessions",
            DEVICES_TABLE="passkey-local-devices",
            AUDIT_TABLE="passkey-local-audit",
            JWT_ISSUER="http://localhost:3000",
            JWT_AUDIENCE="passkey-local",
            RUST_LOG="info",
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024",
            AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
            AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/bench",
            AWS_LAMBDA_LOG_STREAM_NAME="bench",
        )
        keys = subprocess.run(
            [str(self.python), str(ROOT / "scripts/local_keys.py"), endpoint, "ES256"],
            check=True, capture_output=True, text=True,
        ).stdout
        for line in keys.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = shlex.split(value)[0]
        self.env = env

        if not self.authctl.is_file():
            raise SystemExit(f"{self.authctl} is missing: build it (see bench/README.md)")
        self._authctl("tables", "create")
        self.new_principal()
        return self

    def new_principal(self) -> None:
        """A fresh tenant, user and token: some sample events change or erase them."""
        self.tenant = self._authctl(
            "tenant", "create", "--name", "Bench", "--rp-id", "localhost", "--origin", "http://localhost:3000"
        )["tenant_id"]
        self.user = self._authctl(
            "user", "create", "--tenant", self.tenant, "--email", self.email, "--display-name", "Bench User"
        )["user_id"]
        self.token = self._authctl("token", "issue", "--tenant", self.tenant, "--user", self.user, "--ttl", "86400")[
            "token"
        ]

    def _authctl(self, *args: str) -> dict:
        out = subprocess.run([str(self.authctl), *args], env=self.env, check=True, capture_output=True, text=True)
        return json.loads(out.stdout) if out.stdout.strip().startswith("{") else {}

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- events -----------------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
# Values that exist only in a running system and that this harness does not make: any value of
# the right shape gets the function's refusal, which is still a complete request.
DUMMIES = {
    "challenge_id": "00000000-0000-4000-8000-000000000000",
    "session_id": "00000000-0000-4000-8000-000000000000",
    "credential_id": "AAAA",
    "backup_code": "aaaa-bbbb",
    "refresh_token": "A" * 43,
}


def fill(text: str, aws: LocalAws) -> tuple[str, set[str], set[str]]:
    real = {"tenant_id": aws.tenant, "user_id": aws.user, "email": aws.email, "token": aws.token}
    dummies, unknown = set(), set()

    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name in real:
            return real[name]
        if name in DUMMIES:
            dummies.add(name)
            return DUMMIES[name]
        unknown.add(name)
        return m.group(0)

    return PLACEHOLDER.sub(sub, text), dummies, unknown


def event_for(function: str, aws: LocalAws) -> tuple[str, bytes]:
    """The most realistic sample event this harness can fill: a 2xx with every placeholder
    real, then a refusal with every placeholder real (a 404 first: finding nothing takes a
    DynamoDB read), then ones with dummy values."""
    candidates = []
    for path in sorted((ROOT / "events" / function).glob("*.json")):
        text, dummies, unknown = fill(path.read_text(), aws)
        if unknown:
            continue
        rank = 0 if path.name.startswith("2") else 1 if path.name.startswith("404") else 2
        candidates.append(((bool(dummies), rank, path.name), path.name, text))
    if not candidates:
        raise SystemExit(f"no usable event in events/{function}/")
    _, name, text = min(candidates)
    return name, text.encode()


# --- TLS in front of moto ---------------------------------------------------------------------


class TlsFront:
    """A TLS-terminating, keep-alive HTTP/1.1 proxy in front of moto, with a throw-away CA
    (`openssl` CLI): the functions then pay TCP + TLS handshakes as against AWS, locally.
    Gives `endpoint` (https://127.0.0.1:port) and `ca_file` (for `SSL_CERT_FILE`)."""

    def __init__(self, upstream: str, work_dir: Path):
        import http.client
        import ssl
        from urllib.parse import urlsplit

        up = urlsplit(upstream)
        self.ca_file = work_dir / "tls-ca.pem"
        key, cert = work_dir / "tls-key.pem", work_dir / "tls-cert.pem"
        ca_key = work_dir / "tls-ca-key.pem"
        csr, ext = work_dir / "tls.csr", work_dir / "tls.ext"
        run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(ca_key), "-out", str(self.ca_file), "-days", "2", "-subj", "/CN=bench CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
        run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                       "extendedKeyUsage=serverAuth\n")
        run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(self.ca_file), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "content-length", "transfer-encoding", "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.endpoint = f"https://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def env(self, env: dict[str, str]) -> dict[str, str]:
        """`env` with the functions pointed at this proxy and trusting its CA only."""
        out = {k: v for k, v in env.items() if k != "SSL_CERT_DIR"}
        out.update(AWS_ENDPOINT_URL=self.endpoint, SSL_CERT_FILE=str(self.ca_file))
        return out

    def close(self) -> None:
        self.server.shutdown()
