#!/usr/bin/env python3
"""Ceremony CPU comparison: this project's release functions against a Python and a Node equivalent.

    python3 bench/compare.py [--ceremonies 200] [--warmup 20] [--moto close|keepalive|both]
                             [--impls rust,python,node]

One command: it installs the equivalents' packages on first use (bench/equivalents/install.sh:
bench/.venv and bench/equivalents/node/node_modules, both git-ignored) and re-runs itself with
bench/.venv's Python (the driver's software authenticator needs `fido2` and `cryptography`).
Needs the release binaries of register-options, register-complete, mfa-options, mfa-complete
and authctl in $CARGO_TARGET_DIR/release (or --bin-dir), and moto in .tools/venv.

What runs, all on this machine against one local moto (scripts/moto_server.py, started by
bench/lambda_stub.py's LocalAws, which also makes the KMS key, the tables, a tenant, a user and
a bearer token with authctl):

- rust: the three function binaries, each exec'd under its own stub Lambda Runtime API (as
  bench/cpu.py does), invoked with API Gateway v2 events built from events/<function>/.
- python: bench/equivalents/python/app.py (Flask on werkzeug, py_webauthn, boto3, PyJWT),
- node: bench/equivalents/node/server.mjs (node:http, @simplewebauthn/server, AWS SDK v3, jose),
  each run as one process per endpoint (as Lambda runs one function per endpoint), over a
  keep-alive HTTP connection, with their own tables (bench-py-*, bench-node-*) holding the same
  tenant, user and settings under the same ids, so one bearer token serves all three.

The client is the same for all three: a software authenticator (P-256 key from `cryptography`,
authenticator data, attestation object and client data from `fido2`'s WebAuthn types, a real
ECDSA signature over authenticatorData || SHA-256(clientDataJSON) for every assertion, the
signature counter advancing). Each implementation gets its own authenticator. Its credential is
registered through this project's own path for rust (register-options, then register-complete
with a `none` attestation), and seeded into the equivalents' credentials table (COSE public key,
counter, flags) because they implement only the three measured endpoints.

One ceremony, per implementation: register-options (security key, the user's one credential in
excludeCredentials), then an MFA challenge is written by the driver (the primary login's hand-off,
a conditional PutItem as README "MFA login" documents; not measured), mfa-options, an assertion,
mfa-complete (a full token, KMS-signed). Warm-up ceremonies first, then `--ceremonies`, the three
implementations interleaved so that background noise spreads over all of them.

CPU per request of an endpoint = utime + stime of its process (/proc/<pid>/stat, all threads)
consumed between the end of the warm-up and the end of the run, over the number of ceremonies;
read while every process is idle (for rust: after its next `next` arrived). moto's CPU and the
driver's are not included. Results: stdout and bench/results/<date>-compare.md.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import hashlib
import http.client
import json
import os
import queue
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = Path(os.environ.get("BENCH_VENV") or HERE / ".venv")
NODE_DIR = HERE / "equivalents" / "node"


def _ensure_venv() -> None:
    """Install the equivalents on first use and re-exec under bench/.venv's Python."""
    if not (VENV / "bin" / "python").exists() or not (NODE_DIR / "node_modules").is_dir():
        print("[bench] installing the equivalents (bench/equivalents/install.sh)", file=sys.stderr, flush=True)
        subprocess.run(["bash", str(HERE / "equivalents" / "install.sh")], check=True)
    if Path(sys.prefix).resolve() != VENV.resolve():
        os.execv(str(VENV / "bin" / "python"), [str(VENV / "bin" / "python"), *sys.argv])


if __name__ == "__main__":
    _ensure_venv()

import boto3  # noqa: E402
from boto3.dynamodb.types import TypeSerializer  # noqa: E402
import jwt  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.serialization import load_der_public_key  # noqa: E402
from fido2 import cbor, cose  # noqa: E402
from fido2.webauthn import (  # noqa: E402
    AttestationObject,
    AttestedCredentialData,
    AuthenticatorData,
    CollectedClientData,
)

sys.path.insert(0, str(HERE))
from lambda_stub import CLK_TCK, LocalAws, default_bin_dir, free_port, log, proc_cpu_ticks  # noqa: E402

ORIGIN = "http://localhost:3000"
ENDPOINTS = ["register-options", "mfa-options", "mfa-complete"]
LABELS = {"rust": "this project (Rust)", "python": "Python (Flask)", "node": "Node (node:http)"}


def b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- the client's authenticator ---------------------------------------------------------------


class SoftAuthenticator:
    """A security key in software: one ES256 credential, real signatures, a counter that
    advances with every assertion, user presence and verification (a PIN) always given."""

    AAGUID = bytes(16)

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = secrets.token_bytes(32)
        self.counter = 0
        self.cose_public_key = cbor.encode(cose.ES256.from_cryptography_key(self.key.public_key()))

    def _client_data(self, kind: str, challenge: str) -> CollectedClientData:
        return CollectedClientData.create(type=kind, challenge=unb64url(challenge), origin=ORIGIN)

    def create(self, options: dict) -> dict:
        """navigator.credentials.create() with a `none` attestation, as toJSON() gives it."""
        assert any(p["alg"] == -7 for p in options["pubKeyCredParams"]), "ES256 not offered"
        client_data = self._client_data("webauthn.create", options["challenge"])
        self.counter = 1
        flags = AuthenticatorData.FLAG.UP | AuthenticatorData.FLAG.UV | AuthenticatorData.FLAG.AT
        credential = AttestedCredentialData.create(
            self.AAGUID, self.credential_id, cose.ES256.from_cryptography_key(self.key.public_key())
        )
        auth_data = AuthenticatorData.create(
            hashlib.sha256(options["rp"]["id"].encode()).digest(), flags, self.counter, bytes(credential)
        )
        attestation = AttestationObject.create("none", auth_data, {})
        cid = b64url(self.credential_id)
        return {
            "id": cid, "rawId": cid, "type": "public-key", "authenticatorAttachment": "cross-platform",
            "response": {
                "clientDataJSON": b64url(bytes(client_data)),
                "attestationObject": b64url(bytes(attestation)),
                "transports": ["usb"],
            },
            "clientExtensionResults": {},
        }

    def get(self, options: dict) -> dict:
        """navigator.credentials.get(): checks the allow list, signs, as toJSON() gives it."""
        allowed = {c["id"] for c in options.get("allowCredentials", [])}
        cid = b64url(self.credential_id)
        if cid not in allowed:
            raise RuntimeError(f"credential not in allowCredentials: {sorted(allowed)}")
        client_data = self._client_data("webauthn.get", options["challenge"])
        self.counter += 1
        flags = AuthenticatorData.FLAG.UP | AuthenticatorData.FLAG.UV
        auth_data = bytes(AuthenticatorData.create(
            hashlib.sha256(options["rpId"].encode()).digest(), flags, self.counter
        ))
        signature = self.key.sign(auth_data + hashlib.sha256(bytes(client_data)).digest(), ec.ECDSA(hashes.SHA256()))
        return {
            "id": cid, "rawId": cid, "type": "public-key", "authenticatorAttachment": "cross-platform",
            "response": {
                "clientDataJSON": b64url(bytes(client_data)),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
            },
            "clientExtensionResults": {},
        }


# --- one request, two transports --------------------------------------------------------------


class Request:
    def __init__(self, path: str, query: dict[str, str], headers: dict[str, str], body: dict | None):
        self.path, self.query, self.headers, self.body = path, query, headers, body

    def body_text(self) -> str | None:
        return None if self.body is None else json.dumps(self.body)


def template(function: str) -> dict:
    """The function's first 2xx sample event: the shape API Gateway gives it."""
    for path in sorted((ROOT / "events" / function).glob("2*.json")):
        return json.loads(path.read_text())
    raise SystemExit(f"no 2xx sample event in events/{function}/")


class FunctionProcess:
    """A Rust function binary under its own stub Runtime API, invoked one event at a time."""

    def __init__(self, binary: Path, name: str, env: dict[str, str], log_dir: Path, timeout: float):
        self.name, self.timeout = name, timeout
        self.template = template(name)
        self.inbox: queue.Queue[bytes | None] = queue.Queue()
        self.outbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.nexts = 0
        self.arrived = threading.Condition()
        fp = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
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
                with fp.arrived:
                    fp.nexts += 1
                    fp.arrived.notify_all()
                event = fp.inbox.get()
                if event is None:  # stopping
                    self.close_connection = True
                    return
                self._reply(200, event, {
                    "Lambda-Runtime-Aws-Request-Id": str(uuid.uuid4()),
                    "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 30_000),
                    "Lambda-Runtime-Invoked-Function-Arn": f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                })

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                self._reply(202, b'{"status":"OK"}')
                fp.outbox.put((self.path.rsplit("/", 1)[-1], body))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{self.server.server_address[1]}",
                   AWS_LAMBDA_FUNCTION_NAME=name)
        self.stderr_path = log_dir / f"rust-{name}.stderr"
        self.proc = subprocess.Popen(
            [str(binary)], env=env, stdin=subprocess.DEVNULL,
            stdout=open(log_dir / f"rust-{name}.stdout", "wb"), stderr=open(self.stderr_path, "wb"),
        )
        self.pid = self.proc.pid
        self._wait_nexts(1)

    def _wait_nexts(self, count: int) -> None:
        deadline = time.monotonic() + self.timeout
        with self.arrived:
            while self.nexts < count:
                if self.proc.poll() is not None:
                    raise SystemExit(f"{self.name} exited; stderr:\n{self.stderr_path.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    raise SystemExit(f"{self.name}: no `next` within {self.timeout} s")
                self.arrived.wait(0.05)

    def call(self, req: Request) -> tuple[int, dict]:
        event = copy.deepcopy(self.template)
        event["rawPath"] = req.path
        event["requestContext"]["http"]["path"] = req.path
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in req.query.items())
        if req.query:
            event["queryStringParameters"] = dict(req.query)
        else:
            event.pop("queryStringParameters", None)
        event["headers"] = {k: v for k, v in event["headers"].items() if k in ("accept", "host", "origin",
                            "user-agent", "x-forwarded-for", "x-forwarded-port", "x-forwarded-proto")}
        event["headers"].update({k.lower(): v for k, v in req.headers.items()})
        text = req.body_text()
        if text is None:
            event.pop("body", None)
        else:
            event["body"] = text
            event["headers"]["content-type"] = "application/json"
        event["isBase64Encoded"] = False
        event["requestContext"]["requestId"] = str(uuid.uuid4())
        event["requestContext"]["timeEpoch"] = int(time.time() * 1000)
        target = self.nexts + 1
        self.inbox.put(json.dumps(event).encode())
        try:
            kind, body = self.outbox.get(timeout=self.timeout)
        except queue.Empty:
            raise SystemExit(f"{self.name}: no response within {self.timeout} s") from None
        self._wait_nexts(target)  # idle again: CPU reads see the whole request
        if kind != "response":
            raise SystemExit(f"{self.name} posted {kind}: {body[:500]!r}")
        response = json.loads(body)
        payload = response.get("body") or ""
        if response.get("isBase64Encoded"):
            import base64

            payload = base64.b64decode(payload).decode()
        return int(response["statusCode"]), json.loads(payload) if payload else {}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.inbox.put(None)
        self.server.shutdown()


class ServerProcess:
    """An equivalent's HTTP server serving one endpoint, reached over one keep-alive connection."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], name: str, log_dir: Path, timeout: float):
        self.name, self.timeout = name, timeout
        self.port = free_port()
        self.stderr_path = log_dir / f"{name}.stderr"
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env=dict(env, PORT=str(self.port)), stdin=subprocess.DEVNULL,
            stdout=open(log_dir / f"{name}.stdout", "wb"), stderr=open(self.stderr_path, "wb"),
        )
        self.pid = self.proc.pid
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{name} exited; stderr:\n{self.stderr_path.read_text()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name} did not listen within {timeout} s") from None
                time.sleep(0.05)
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def call(self, req: Request) -> tuple[int, dict]:
        path = req.path + ("?" + "&".join(f"{k}={v}" for k, v in req.query.items()) if req.query else "")
        headers = dict(req.headers)
        headers.update({"Origin": ORIGIN, "User-Agent": "bench/compare.py", "X-Forwarded-For": "203.0.113.10",
                        "Accept": "application/json"})
        text = req.body_text()
        if text is not None:
            headers["Content-Type"] = "application/json"
        self.conn.request("POST", path, body=text, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        if r.will_close:
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        return r.status, json.loads(data) if data else {}

    def stop(self) -> None:
        self.conn.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- the three implementations ----------------------------------------------------------------

EQ_TABLES = {
    "tenants": [("tenant_id", "HASH")],
    "users": [("tenant_id", "HASH"), ("user_id", "RANGE")],
    "credentials": [("tenant_user", "HASH"), ("credential_id", "RANGE")],
    "challenges": [("challenge_key", "HASH")],
    "audit": [("tenant_id", "HASH"), ("event_key", "RANGE")],
}


class Impl:
    def __init__(self, name: str, procs: dict, challenges_table: str, authenticator: SoftAuthenticator):
        self.name, self.procs, self.challenges_table, self.authenticator = name, procs, challenges_table, authenticator
        self.wall: dict[str, list[float]] = {e: [] for e in ENDPOINTS}
        self.last_token = ""

    def stop(self) -> None:
        for p in self.procs.values():
            p.stop()


class Bench:
    def __init__(self, args, aws: LocalAws, log_dir: Path):
        self.args, self.aws, self.log_dir = args, aws, log_dir
        endpoint = aws.env["AWS_ENDPOINT_URL"]
        session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local",
                                        region_name="us-east-1")
        self.ddb = session.client("dynamodb", endpoint_url=endpoint)
        self.kms = session.client("kms", endpoint_url=endpoint)
        self.tenant_settings = aws._authctl("tenant", "get", "--tenant", aws.tenant)
        self.token_at = 0.0
        self.token = ""

    def fresh_token(self) -> str:
        """An operator token (auth_time now): register-options needs a recent login once the
        user has an authenticator (reauthentication_window_secs, 600 s by default)."""
        if time.monotonic() - self.token_at > 240:
            self.token = self.aws._authctl("token", "issue", "--tenant", self.aws.tenant, "--user", self.aws.user,
                                           "--ttl", "3600")["token"]
            self.token_at = time.monotonic()
        return self.token

    # requests
    def register_options(self) -> Request:
        return Request("/v1/users/me/mfa/webauthn/register", {"method_type": "webauthn_fido"},
                       {"Authorization": f"Bearer {self.fresh_token()}", "X-Tenant-ID": self.aws.tenant}, None)

    def mfa_challenge(self, table: str) -> str:
        """The primary login's hand-off (README, MFA login): a conditional PutItem."""
        challenge_id = str(uuid.uuid4())
        now = int(time.time())
        self.ddb.put_item(
            TableName=table,
            Item={
                "challenge_key": {"S": f"mfa#{challenge_id}"}, "kind": {"S": "mfa"},
                "tenant_id": {"S": self.aws.tenant}, "user_id": {"S": self.aws.user},
                "created_at": {"N": str(now)}, "expires_at": {"N": str(now + 300)},
            },
            ConditionExpression="attribute_not_exists(challenge_key)",
        )
        return challenge_id

    # setup
    def create_eq_tables(self, prefix: str) -> None:
        for name, keys in EQ_TABLES.items():
            self.ddb.create_table(
                TableName=prefix + name,
                KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys],
                AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
                BillingMode="PAY_PER_REQUEST",
            )
        s = self.tenant_settings
        t = {
            "tenant_id": self.aws.tenant, "name": s.get("name", "Bench"), "rp_id": s.get("rp_id", "localhost"),
            "origins": s.get("origins", [ORIGIN]),
            "methods": s.get("methods", ["webauthn_passkey", "webauthn_fido"]),
            "user_verification": s.get("user_verification", "preferred"),
            "challenge_timeout_secs": s.get("challenge_timeout_secs", 300),
            "token_ttl_secs": s.get("token_ttl_secs", 900),
            "min_authenticators": s.get("min_authenticators", 1),
            "reauthentication_window_secs": s.get("reauthentication_window_secs", 600),
            "audit_retention_days": s.get("audit_retention_days", 365),
            "created_at": int(time.time()),
        }
        ser = TypeSerializer()
        self.ddb.put_item(TableName=prefix + "tenants", Item={k: ser.serialize(v) for k, v in t.items()})
        self.ddb.put_item(TableName=prefix + "users", Item={
            "tenant_id": {"S": self.aws.tenant}, "user_id": {"S": self.aws.user},
            "email": {"S": self.aws.email}, "display_name": {"S": "Bench User"},
            "created_at": {"N": str(int(time.time()))},
        })

    def seed_credential(self, prefix: str, auth: SoftAuthenticator) -> None:
        """The equivalents implement only the measured endpoints: their credential is written
        as a registration would have stored it."""
        auth.counter = 1
        now = int(time.time())
        self.ddb.put_item(TableName=prefix + "credentials", Item={
            "tenant_user": {"S": f"{self.aws.tenant}#{self.aws.user}"},
            "credential_id": {"S": b64url(auth.credential_id)},
            "public_key": {"S": b64url(auth.cose_public_key)},
            "sign_count": {"N": "1"}, "registration_sign_count": {"N": "1"},
            "user_verified": {"BOOL": True}, "backup_eligible": {"BOOL": False}, "backup_state": {"BOOL": False},
            "transports": {"L": [{"S": "usb"}]}, "method_type": {"S": "webauthn_fido"},
            "device_name": {"S": "bench key"}, "aaguid": {"S": str(uuid.UUID(bytes=auth.AAGUID))},
            "created_at": {"N": str(now)}, "use_count": {"N": "0"},
        })

    def start_rust(self) -> Impl:
        procs, bin_dir = {}, self.args.bin_dir
        for name in [*ENDPOINTS, "register-complete"]:
            if not (bin_dir / name).is_file():
                raise SystemExit(f"{bin_dir / name} is not built (see bench/README.md)")
        auth = SoftAuthenticator()
        # Register the credential through this project's own path.
        ro = FunctionProcess(bin_dir / "register-options", "register-options", self.aws.env, self.log_dir,
                             self.args.timeout)
        procs["register-options"] = ro
        rc = FunctionProcess(bin_dir / "register-complete", "register-complete", self.aws.env, self.log_dir,
                             self.args.timeout)
        try:
            status, body = ro.call(self.register_options())
            if status != 200:
                raise SystemExit(f"rust register-options: {status} {body}")
            credential = auth.create(body["options"])
            status, body = rc.call(Request(
                "/v1/users/me/mfa/webauthn/register/complete", {},
                {"Authorization": f"Bearer {self.fresh_token()}", "X-Tenant-ID": self.aws.tenant},
                {"credential": credential, "device_name": "bench key", "method_type": "webauthn_fido"},
            ))
            if status != 200:
                raise SystemExit(f"rust register-complete: {status} {body}")
        finally:
            rc.stop()
        for name in ENDPOINTS[1:]:
            procs[name] = FunctionProcess(bin_dir / name, name, self.aws.env, self.log_dir, self.args.timeout)
        return Impl("rust", procs, self.aws.env["CHALLENGES_TABLE"], auth)

    def start_equivalent(self, name: str) -> Impl:
        prefix = f"bench-{'py' if name == 'python' else 'node'}-"
        self.create_eq_tables(prefix)
        auth = SoftAuthenticator()
        self.seed_credential(prefix, auth)
        env = {k: v for k, v in self.aws.env.items() if not k.startswith("AWS_LAMBDA_")}
        env.update(EQ_TABLE_PREFIX=prefix)
        if name == "python":
            argv, cwd = [str(VENV / "bin" / "python"), "app.py"], HERE / "equivalents" / "python"
        else:
            argv, cwd = ["node", "server.mjs"], NODE_DIR
        procs = {e: ServerProcess(argv, cwd, env, f"{name}-{e}", self.log_dir, self.args.timeout) for e in ENDPOINTS}
        return Impl(name, procs, prefix + "challenges", auth)

    # one ceremony
    def ceremony(self, impl: Impl) -> None:
        def timed(endpoint: str, req: Request) -> dict:
            t = time.perf_counter()
            status, body = impl.procs[endpoint].call(req)
            impl.wall[endpoint].append((time.perf_counter() - t) * 1000)
            if status != 200:
                raise SystemExit(f"{impl.name} {endpoint}: {status} {json.dumps(body)[:500]}")
            return body

        body = timed("register-options", self.register_options())
        excluded = body["options"].get("excludeCredentials", [])
        if len(excluded) != 1:
            raise SystemExit(f"{impl.name} register-options: excludeCredentials {excluded}")
        challenge_id = self.mfa_challenge(impl.challenges_table)
        body = timed("mfa-options", Request("/v1/auth/mfa/webauthn/options", {}, {}, {"challenge_id": challenge_id}))
        assertion = impl.authenticator.get(body["options"])
        body = timed("mfa-complete", Request("/v1/auth/mfa/webauthn/complete", {}, {},
                                             {"challenge_id": challenge_id, "credential": assertion}))
        if not body.get("token"):
            raise SystemExit(f"{impl.name} mfa-complete: no token: {body}")
        impl.last_token = body["token"]

    def check_token(self, impl: Impl) -> None:
        """The issued token verifies with the KMS key's public half (KMS Sign did the work)."""
        key_id = self.aws.env["JWT_KMS_SIGNING_KEY_ID"]
        public = load_der_public_key(self.kms.get_public_key(KeyId=key_id)["PublicKey"])
        claims = jwt.decode(impl.last_token, public, algorithms=["ES256"], audience=self.aws.env["JWT_AUDIENCE"])
        assert claims["sub"] == self.aws.user and claims["tenant_id"] == self.aws.tenant, claims
        assert "mfa" in claims["amr"], claims


def run_pass(args, moto: str, log_dir: Path) -> dict:
    script = HERE / "moto_keepalive.py" if moto == "keepalive" else None
    with LocalAws(args.python, args.bin_dir, log_dir, moto_script=script) as aws:
        bench = Bench(args, aws, log_dir)
        impls: list[Impl] = []
        try:
            for name in args.impls:
                log(f"[{moto}] starting {name}")
                impls.append(bench.start_rust() if name == "rust" else bench.start_equivalent(name))
            log(f"[{moto}] {args.warmup} warm-up ceremonies each")
            for _ in range(args.warmup):
                for impl in impls:
                    bench.ceremony(impl)
            for impl in impls:
                impl.wall = {e: [] for e in ENDPOINTS}
            time.sleep(0.3)
            before = {(i.name, e): proc_cpu_ticks(p.pid) for i in impls for e, p in i.procs.items()}
            moto_before = proc_cpu_ticks(aws.proc.pid)
            t0 = time.monotonic()
            log(f"[{moto}] {args.ceremonies} measured ceremonies each, interleaved")
            for n in range(args.ceremonies):
                for impl in impls:
                    bench.ceremony(impl)
                if (n + 1) % 50 == 0:
                    log(f"[{moto}] {n + 1}/{args.ceremonies}")
            elapsed = time.monotonic() - t0
            time.sleep(0.3)
            after = {(i.name, e): proc_cpu_ticks(p.pid) for i in impls for e, p in i.procs.items()}
            moto_ticks = proc_cpu_ticks(aws.proc.pid) - moto_before
            for impl in impls:
                bench.check_token(impl)
        finally:
            for impl in impls:
                impl.stop()
    cpu = {k: (after[k] - before[k]) / CLK_TCK * 1000 / args.ceremonies for k in before}
    wall = {(i.name, e): statistics.median(i.wall[e]) for i in impls for e in ENDPOINTS}
    return {"cpu": cpu, "wall": wall, "elapsed": elapsed,
            "moto_ms_per_ceremony": moto_ticks / CLK_TCK * 1000 / args.ceremonies / len(impls)}


def table(args, moto: str, result: dict) -> list[str]:
    cpu, wall, impls = result["cpu"], result["wall"], args.impls
    tick = 1000 / CLK_TCK / args.ceremonies
    conn = ("HTTP/1.1 keep-alive (bench/moto_keepalive.py)" if moto == "keepalive"
            else "a new connection per call (moto closes them)")
    lines = [
        f"#### moto: {conn}",
        "",
        f"CPU per request, ms (utime+stime of the endpoint's process over {args.ceremonies} ceremonies; "
        f"resolution ±{tick:.3f} ms); median wall per request in brackets, moto included.",
        "",
        "| endpoint | " + " | ".join(LABELS[i] for i in impls) + " |",
        "| --- |" + " ---: |" * len(impls),
    ]
    for e in ENDPOINTS:
        lines.append(f"| {e} | " + " | ".join(f"{cpu[(i, e)]:.2f} ({wall[(i, e)]:.1f})" for i in impls) + " |")
    lines.append("| **MFA ceremony** (options + complete) | "
                 + " | ".join(f"**{cpu[(i, 'mfa-options')] + cpu[(i, 'mfa-complete')]:.2f}**" for i in impls) + " |")
    if "rust" in impls:
        rust = cpu[("rust", "mfa-options")] + cpu[("rust", "mfa-complete")]
        lines.append("| MFA ceremony vs this project | " + " | ".join(
            f"{(cpu[(i, 'mfa-options')] + cpu[(i, 'mfa-complete')]) / rust:.1f}×" for i in impls) + " |")
    lines += ["", f"{result['elapsed']:.0f} s for the measured ceremonies; moto's CPU "
              f"{result['moto_ms_per_ceremony']:.1f} ms per ceremony (not included above).", ""]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ceremonies", type=int, default=200, help="measured ceremonies per implementation (200)")
    ap.add_argument("--warmup", type=int, default=20, help="warm-up ceremonies per implementation (20)")
    ap.add_argument("--moto", choices=["close", "keepalive", "both"], default="close",
                    help="moto as the tests run it (close), with HTTP/1.1 keep-alive, or one pass of each")
    ap.add_argument("--impls", default="rust,python,node", help="comma-separated subset of rust,python,node")
    ap.add_argument("--bin-dir", type=Path, default=default_bin_dir())
    ap.add_argument("--python", type=Path, default=ROOT / ".tools" / "venv" / "bin" / "python",
                    help="a Python with moto (default .tools/venv)")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--out", type=Path, default=None,
                    help="Markdown output (default bench/results/<UTC date and time>-compare.md)")
    args = ap.parse_args()
    args.impls = [i for i in args.impls.split(",") if i]
    if bad := set(args.impls) - set(LABELS):
        raise SystemExit(f"unknown implementations: {bad}")

    log_dir = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    log(f"logs: {log_dir}")
    passes = ["close", "keepalive"] if args.moto == "both" else [args.moto]
    now = datetime.datetime.now(datetime.timezone.utc)
    cpu_model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "?")
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    loadavg_start = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    binaries = []
    if "rust" in args.impls:  # a shared target dir may be rebuilt by someone else: say which binaries
        for name in [*ENDPOINTS, "register-complete"]:
            path = args.bin_dir / name
            if path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
                built = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
                binaries.append(f"`{name}` {path.stat().st_size / 2**20:.1f} MiB sha256 {digest}… built {built:%Y-%m-%d %H:%M} UTC")
    lines = [
        f"# Ceremony CPU: this project vs Python and Node equivalents, {now:%Y-%m-%d %H:%M} UTC",
        "",
        f"{os.cpu_count()} CPUs ({cpu_model}); Python {sys.version.split()[0]}, Node {node}; "
        f"binaries from `{args.bin_dir}`; {args.warmup} warm-up + {args.ceremonies} measured ceremonies "
        "per implementation, interleaved; clock tick "
        f"{1000 / CLK_TCK:.0f} ms. A ceremony: register-options (security key, one credential to exclude), "
        "mfa-options, mfa-complete (KMS-signed token). See bench/README.md.",
        "",
        *([f"Binaries: {'; '.join(binaries)}.", ""] if binaries else []),
        f"Load average at the start: {loadavg_start}.",
        "",
    ]
    for moto in passes:
        result = run_pass(args, moto, log_dir)
        lines += table(args, moto, result)
        print("\n".join(table(args, moto, result)), flush=True)
    loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    lines.append(f"Load average at the end: {loadavg}.")
    text = "\n".join(lines) + "\n"
    print(text)
    out = args.out or HERE / "results" / f"{now:%Y-%m-%d-%H%M}-compare.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    log(f"written to {out}; process logs: {log_dir}")


if __name__ == "__main__":
    main()
