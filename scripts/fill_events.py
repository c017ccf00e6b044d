#!/usr/bin/env python3
"""Fills the placeholders of events/<function>/*.json from the local run (scripts/dev.sh) and
writes the filled copies to target/events/<function>/<file>.json; run through
scripts/fill-events.sh, which passes the API address and authctl.

Every event that has placeholders gets a world of its own, as in the integration tests
(integration-tests/tests/api/events.rs): a fresh tenant (RP id and origin of the local run) and
user made with authctl, a token from `authctl token issue`, and one passkey enrolled through the
API with the software passkey below (so the user has backup codes too). The placeholders an
event uses decide what else is made; events/README.md lists them. Values that are single use
(challenges, ceremonies, refresh tokens) are fresh per event, so each filled event replays once,
in any order. Nothing here is a real authenticator: the passkey is an ES256 key in memory.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
except ImportError:  # pragma: no cover - a message instead of a trace
    sys.exit("fill-events: the Python package 'cryptography' is required "
             "(scripts/install-tools.sh dev installs it with moto)")

PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")
KNOWN = {
    "tenant_id", "user_id", "email", "token", "credential_id", "challenge_id", "backup_code",
    "session_id", "refresh_token", "registration_credential", "mfa_assertion", "login_assertion",
}
# How long filled values stay usable: the longest challenge timeout and MFA challenge a tenant
# allows, a re-authentication window and token of a day.
CHALLENGE_SECS = 3600
TOKEN_SECS = 86400


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cbor(value) -> bytes:
    """The CBOR subset an attestation object needs: ints, byte and text strings, maps."""
    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
            if n < 1 << (8 * size):
                return bytes([major << 5 | extra]) + n.to_bytes(size, "big")
        raise ValueError("integer too large")

    if isinstance(value, bool) or value is None:
        raise TypeError("not needed")
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return head(3, len(raw)) + raw
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(type(value))


def compact(value) -> str:
    return json.dumps(value, separators=(",", ":"))


class Passkey:
    """A device-bound, user-verifying passkey: ES256, "none" attestation, a counter."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(16)
        self.counter = 0

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return compact({"type": kind, "challenge": challenge, "origin": origin,
                        "crossOrigin": False}).encode()

    def register(self, options: dict, origin: str) -> dict:
        """navigator.credentials.create() for the options, as PublicKeyCredential.toJSON()."""
        numbers = self.key.public_key().public_numbers()
        cose_key = cbor({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                         -3: numbers.y.to_bytes(32, "big")})
        flags = 0x01 | 0x04 | 0x40  # user present, user verified, attested credential data
        auth_data = (hashlib.sha256(options["rp"]["id"].encode()).digest() + bytes([flags])
                     + self.counter.to_bytes(4, "big") + bytes(16)
                     + len(self.credential_id).to_bytes(2, "big") + self.credential_id + cose_key)
        attestation = cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        return {
            "id": b64u(self.credential_id), "rawId": b64u(self.credential_id),
            "type": "public-key", "authenticatorAttachment": "platform",
            "response": {"attestationObject": b64u(attestation),
                         "clientDataJSON": b64u(client_data), "transports": ["internal"]},
            "clientExtensionResults": {},
        }

    def authenticate(self, options: dict, origin: str) -> dict:
        """navigator.credentials.get() for the options, as PublicKeyCredential.toJSON()."""
        self.counter += 1
        auth_data = (hashlib.sha256(options["rpId"].encode()).digest() + bytes([0x01 | 0x04])
                     + self.counter.to_bytes(4, "big"))
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                  ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64u(self.credential_id), "rawId": b64u(self.credential_id),
            "type": "public-key", "authenticatorAttachment": "platform",
            "response": {"authenticatorData": b64u(auth_data),
                         "clientDataJSON": b64u(client_data), "signature": b64u(signature),
                         "userHandle": None},
            "clientExtensionResults": {},
        }


class Failure(Exception):
    pass


class Local:
    """The local run: its HTTP API and authctl."""

    def __init__(self, api: str, authctl: str):
        self.api = api.rstrip("/")
        self.authctl_path = authctl

    def authctl(self, *args: str) -> dict:
        done = subprocess.run([self.authctl_path, *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise Failure(f"authctl {' '.join(args[:2])}: {done.stderr.strip()}")
        return json.loads(done.stdout)

    def call(self, method: str, path: str, headers: dict, body=None) -> dict:
        data = None if body is None else compact(body).encode()
        request = urllib.request.Request(self.api + path, data=data, method=method)
        for name, value in {"content-type": "application/json", **headers}.items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.load(response)
        except urllib.error.HTTPError as err:
            raise Failure(f"{method} {path}: {err.code} {err.read().decode(errors='replace')}")
        except urllib.error.URLError as err:
            raise Failure(f"{method} {path}: {err.reason} (is ./scripts/dev.sh running?)")


class World:
    """A tenant and an enrolled user of their own, for one event."""

    def __init__(self, local: Local, label: str):
        self.local = local
        self.tenant_id = local.authctl(
            "tenant", "create", "--name", f"events: {label}", "--rp-id", "localhost",
            "--origin", local.api, "--challenge-timeout", str(CHALLENGE_SECS),
            "--reauthentication-window", str(TOKEN_SECS))["tenant_id"]
        self.email = f"alice-{uuid.uuid4().hex[:12]}@example.com"
        self.user_id = local.authctl(
            "user", "create", "--tenant", self.tenant_id, "--email", self.email,
            "--display-name", "Alice")["user_id"]
        self.token = self.issue_token()
        self.passkey = Passkey()
        self.codes = self.enroll(self.passkey, "Laptop")["codes"]

    def issue_token(self) -> str:
        # Tokens come only from authctl, whatever signs them (the local run's KMS key).
        return self.local.authctl("token", "issue", "--tenant", self.tenant_id,
                                  "--user", self.user_id, "--ttl", str(TOKEN_SECS))["token"]

    def auth_headers(self) -> dict:
        return {"authorization": f"Bearer {self.token}", "x-tenant-id": self.tenant_id}

    def registration(self, passkey: Passkey) -> dict:
        options = self.local.call(
            "POST", "/v1/users/me/mfa/webauthn/register?method_type=webauthn_passkey",
            self.auth_headers())["options"]
        return passkey.register(options, self.local.api)

    def enroll(self, passkey: Passkey, device: str) -> dict:
        credential = self.registration(passkey)
        return self.local.call(
            "POST", "/v1/users/me/mfa/webauthn/register/complete", self.auth_headers(),
            {"credential": credential, "device_name": device, "method_type": "webauthn_passkey"})

    def login_assertion(self) -> dict:
        begun = self.local.call("POST", "/api/v1/webauthn/authenticate/begin",
                                {"x-tenant-id": self.tenant_id}, {"email": self.email})
        return self.passkey.authenticate(begun["data"]["options"], self.local.api)

    def login(self) -> dict:
        """A passwordless login: a live session."""
        done = self.local.call("POST", "/api/v1/webauthn/authenticate/complete",
                               {"x-tenant-id": self.tenant_id},
                               {"credential": self.login_assertion(), "email": self.email})
        return done["data"]

    def mfa_challenge(self) -> str:
        return self.local.authctl("mfa-challenge", "create", "--tenant", self.tenant_id,
                                  "--user", self.user_id, "--ttl", str(CHALLENGE_SECS))["challenge_id"]

    def mfa_assertion(self, challenge_id: str) -> dict:
        options = self.local.call("POST", "/v1/auth/mfa/webauthn/options", {},
                                  {"challenge_id": challenge_id})["options"]
        return self.passkey.authenticate(options, self.local.api)

    def values(self, names: set) -> dict:
        """The placeholders' values; the order matters where one builds on another."""
        values = {"tenant_id": self.tenant_id, "user_id": self.user_id, "email": self.email,
                  "token": self.token, "backup_code": self.codes[0]}
        if "credential_id" in names:
            spare = Passkey()
            self.enroll(spare, "Spare key")
            values["credential_id"] = b64u(spare.credential_id)
        if {"session_id", "refresh_token"} & names:
            session = self.login()
            values["refresh_token"] = session["refresh_token"]
            claims = json.loads(unb64u(session["access_token"].split(".")[1]))
            values["session_id"] = claims["sid"]
        if {"challenge_id", "mfa_assertion"} & names:
            values["challenge_id"] = self.mfa_challenge()
        if "mfa_assertion" in names:
            values["mfa_assertion"] = compact(self.mfa_assertion(values["challenge_id"]))
        if "login_assertion" in names:
            values["login_assertion"] = compact(self.login_assertion())
        if "registration_credential" in names:
            values["registration_credential"] = compact(self.registration(Passkey()))
        return values


def substitute(value, values: dict):
    """Replaces placeholders in every string of the event (the body is a JSON string too)."""
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: values[m.group(1)], value)
    if isinstance(value, list):
        return [substitute(v, values) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, values) for k, v in value.items()}
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", required=True)
    parser.add_argument("--authctl", required=True)
    parser.add_argument("--events", default="events")
    parser.add_argument("--out", default="target/events")
    parser.add_argument("functions", nargs="*", help="only these functions' events")
    args = parser.parse_args()

    local = Local(args.api, args.authctl)
    functions = sorted(d for d in os.listdir(args.events)
                       if os.path.isdir(os.path.join(args.events, d)))
    unknown = set(args.functions) - set(functions)
    if unknown:
        print(f"fill-events: no events for {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    written = 0
    for function in args.functions or functions:
        out_dir = os.path.join(args.out, function)
        shutil.rmtree(out_dir, ignore_errors=True)  # no copies of templates since removed
        os.makedirs(out_dir)
        for name in sorted(os.listdir(os.path.join(args.events, function))):
            if not name.endswith(".json"):
                continue
            label = f"{function}/{name}"
            with open(os.path.join(args.events, function, name)) as f:
                text = f.read()
            names = set(PLACEHOLDER.findall(text))
            if names - KNOWN:
                print(f"fill-events: {label}: unknown placeholders {sorted(names - KNOWN)}",
                      file=sys.stderr)
                return 1
            try:
                values = World(local, label).values(names) if names else {}
            except Failure as err:
                print(f"fill-events: {label}: {err}", file=sys.stderr)
                return 1
            with open(os.path.join(out_dir, name), "w") as f:
                json.dump(substitute(json.loads(text), values), f, indent=2)
                f.write("\n")
            written += 1
    print(f"fill-events: {written} events in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
