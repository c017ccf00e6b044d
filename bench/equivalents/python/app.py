"""bench only: what a team would write in Python for register-options, mfa-options and
mfa-complete — Flask, py_webauthn, boto3 (DynamoDB resource API, KMS), PyJWT.

Not part of the service. bench/compare.py runs one process of this app per endpoint (as Lambda
runs one function per endpoint) and reads each process's CPU from /proc. Every request does the
same work as this project's function, against the same local moto, with its own simple tables
(prefix EQ_TABLE_PREFIX):

  register-options  verify the bearer JWT (ES256, key from KMS GetPublicKey at start); GetItem
                    tenant, GetItem user, Query the user's credentials; PutItem the pending
                    registration (conditional)                              = 4 DynamoDB calls
  mfa-options       GetItem the MFA challenge (consistent); GetItem tenant, Query credentials;
                    UpdateItem: attach the state with a snapshot of tenant and credentials
                    (conditional)                                           = 4 DynamoDB calls
  mfa-complete      DeleteItem the challenge (conditional, ALL_OLD); verify the assertion
                    (py_webauthn); UpdateItem the credential's counter and use (conditional on
                    the live counter); KMS Sign of the token (ES256); PutItem the audit record
                                                                 = 3 DynamoDB calls + 1 KMS call

Reads that the Rust functions run concurrently (tokio::try_join!) run one after the other here,
as a plain Flask + boto3 service would. Served by werkzeug's WSGI server, one thread, patched for
HTTP/1.1 keep-alive with the client (see Handler).

Environment: PORT, AWS_ENDPOINT_URL (+ the usual AWS_* settings), EQ_TABLE_PREFIX,
JWT_KMS_KEY_IDS (comma-separated), JWT_KMS_SIGNING_KEY_ID, JWT_ISSUER, JWT_AUDIENCE.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import socket
import sys
import time
import uuid

import boto3
import jwt
import webauthn
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key
from flask import Flask, Response, request
from jwt.algorithms import ECAlgorithm
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import InvalidAuthenticationResponse
from webauthn.helpers.structs import (
    AuthenticatorAttachment,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    PublicKeyCredentialHint,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from werkzeug import serving
from werkzeug.serving import WSGIRequestHandler, make_server

ISSUER = os.environ["JWT_ISSUER"]
AUDIENCE = os.environ["JWT_AUDIENCE"]
PREFIX = os.environ["EQ_TABLE_PREFIX"]
METHODS = ("webauthn_passkey", "webauthn_fido")
MAX_CREDENTIAL_ID = 768

session = boto3.session.Session()
dynamodb = session.resource("dynamodb")
kms = session.client("kms")
tenants = dynamodb.Table(PREFIX + "tenants")
users = dynamodb.Table(PREFIX + "users")
credentials = dynamodb.Table(PREFIX + "credentials")
challenges = dynamodb.Table(PREFIX + "challenges")
audit = dynamodb.Table(PREFIX + "audit")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(public_key) -> str:
    """RFC 7638 kid, as the service publishes it."""
    jwk = json.loads(ECAlgorithm.to_jwk(public_key))
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


# Once per process, like the Rust functions' cold start: the verification keys and the signing key.
VERIFY_KEYS = {}
for key_id in os.environ["JWT_KMS_KEY_IDS"].split(","):
    public = load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
    VERIFY_KEYS[thumbprint(public)] = public
SIGNING_KEY_ID = os.environ["JWT_KMS_SIGNING_KEY_ID"]
SIGNING_KID = thumbprint(load_der_public_key(kms.get_public_key(KeyId=SIGNING_KEY_ID)["PublicKey"]))

app = Flask(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@app.errorhandler(ApiError)
def api_error(err: ApiError):
    return json_response(err.status, {"code": err.code, "message": err.message})


def json_response(status: int, body) -> Response:
    text = body if isinstance(body, str) else json.dumps(body)
    return Response(text, status=status, mimetype="application/json")


def log(message: str, **fields) -> None:
    """One structured line per request, as the Rust functions log (and a Lambda would ship)."""
    fields.update(message=message, request_id=request.headers.get("x-request-id") or str(uuid.uuid4()))
    print(json.dumps(fields), flush=True)  # one write per line, as the Rust and Node servers do


def uuid_field(value, field: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ApiError(400, "invalid_request", f"{field} must be a UUID") from None


def optional_tenant_header() -> str | None:
    value = request.headers.get("X-Tenant-ID")
    return uuid_field(value, "X-Tenant-ID") if value is not None else None


def tenant_user(tenant_id: str, user_id: str) -> str:
    return f"{tenant_id}#{user_id}"


def list_credentials(tenant_id: str, user_id: str) -> list[dict]:
    items, start = [], {}
    while True:
        out = credentials.query(
            KeyConditionExpression=Key("tenant_user").eq(tenant_user(tenant_id, user_id)),
            ConsistentRead=True,
            **start,
        )
        items.extend(out.get("Items", []))
        if not out.get("LastEvaluatedKey"):
            return items
        start = {"ExclusiveStartKey": out["LastEvaluatedKey"]}


def authenticate(now: int) -> dict:
    """The bearer JWT: ES256 only, key by kid, iss/aud/exp/nbf, no key-location headers."""
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        raise ApiError(401, "unauthenticated", "a bearer token is required")
    token = auth[7:]
    try:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != "JWT" or any(h in header for h in ("jku", "jwk", "x5u", "x5c")):
            raise jwt.InvalidTokenError("header")
        key = VERIFY_KEYS[header.get("kid")]
        claims = jwt.decode(
            token, key, algorithms=["ES256"], audience=AUDIENCE, issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "tenant_id"]},
        )
    except (jwt.InvalidTokenError, KeyError):
        raise ApiError(401, "unauthenticated", "the token is not valid") from None
    if claims.get("scope") not in (None, "mfa_setup"):
        raise ApiError(403, "insufficient_scope", "the token does not allow MFA enrollment")
    return claims


def descriptors(creds: list[dict]) -> list[PublicKeyCredentialDescriptor]:
    return [
        PublicKeyCredentialDescriptor(
            id=base64url_to_bytes(c["credential_id"]),
            transports=[AuthenticatorTransport(t) for t in c.get("transports", [])],
        )
        for c in creds
    ]


@app.post("/v1/users/me/mfa/webauthn/register")
def register_options():
    now = int(time.time())
    method = request.args.get("method_type", "webauthn_passkey")
    if method not in METHODS:
        raise ApiError(400, "invalid_request", "unknown method_type")
    header = request.headers.get("X-Tenant-ID")
    if header is None:
        raise ApiError(400, "invalid_request", "X-Tenant-ID is required")
    header = uuid_field(header, "X-Tenant-ID")
    claims = authenticate(now)
    tenant_id, user_id = claims["tenant_id"], claims["sub"]
    if header != tenant_id:
        raise ApiError(403, "tenant_mismatch", "X-Tenant-ID is not the token's tenant")

    tenant = tenants.get_item(Key={"tenant_id": tenant_id}).get("Item")
    user = users.get_item(Key={"tenant_id": tenant_id, "user_id": user_id}).get("Item")
    existing = list_credentials(tenant_id, user_id)
    if tenant is None:
        raise ApiError(404, "tenant_not_found", "the tenant does not exist")
    if user is None or user.get("deleted_at"):
        raise ApiError(404, "user_not_found", "the user does not exist")
    auth_time = claims.get("auth_time")
    if existing and (auth_time is None or now - int(auth_time) > int(tenant["reauthentication_window_secs"])):
        raise ApiError(401, "reauthentication_required", "log in again to add an authenticator")
    if method not in tenant["methods"]:
        raise ApiError(501, "method_not_enabled", f"{method} is not enabled for this tenant")

    passkey = method == "webauthn_passkey"
    uv = "required" if passkey else tenant["user_verification"]
    selection = AuthenticatorSelectionCriteria(
        resident_key=ResidentKeyRequirement.REQUIRED if passkey else ResidentKeyRequirement.DISCOURAGED,
        require_resident_key=passkey,
        user_verification=UserVerificationRequirement(uv),
        authenticator_attachment=None if passkey else AuthenticatorAttachment.CROSS_PLATFORM,
    )
    timeout = int(tenant["challenge_timeout_secs"])
    options = webauthn.generate_registration_options(
        rp_id=tenant["rp_id"],
        rp_name=tenant["name"],
        user_name=user["email"],
        user_id=uuid.UUID(user_id).bytes,
        user_display_name=user["display_name"],
        timeout=timeout * 1000,
        authenticator_selection=selection,
        exclude_credentials=descriptors(existing),
        supported_pub_key_algs=[COSEAlgorithmIdentifier.ECDSA_SHA_256, COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256],
        hints=None if passkey else [PublicKeyCredentialHint.SECURITY_KEY],
    )
    challenge = bytes_to_base64url(options.challenge)
    state = {"challenge": challenge, "user_verification": uv, "method_type": method,
             "rp_id": tenant["rp_id"], "origins": list(tenant["origins"])}
    challenges.put_item(
        Item={
            "challenge_key": f"registration#{challenge}",
            "kind": "registration",
            "tenant_id": tenant_id,
            "user_id": user_id,
            "tenant_user": tenant_user(tenant_id, user_id),
            "method_type": method,
            "state": json.dumps(state),
            "created_at": now,
            "expires_at": now + timeout,
        },
        ConditionExpression="attribute_not_exists(challenge_key)",
    )
    log("registration options issued", tenant_id=tenant_id, user_id=user_id, method_type=method,
        excluded=len(existing))
    return json_response(200, '{"options": ' + webauthn.options_to_json(options) + "}")


def challenge_not_found() -> ApiError:
    return ApiError(404, "challenge_not_found", "the MFA challenge does not exist, has expired or was already used")


def body_challenge_id(body) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("challenge_id"), str):
        raise ApiError(400, "invalid_request", "challenge_id is required")
    return uuid_field(body["challenge_id"], "challenge_id")


def snapshot(item: dict) -> dict:
    """A DynamoDB item as plain JSON (numbers come back as Decimal)."""
    return json.loads(json.dumps(item, default=lambda v: int(v) if v == int(v) else float(v)))


@app.post("/v1/auth/mfa/webauthn/options")
def mfa_options():
    now = int(time.time())
    challenge_id = body_challenge_id(request.get_json(silent=True))
    key = f"mfa#{challenge_id}"
    challenge = challenges.get_item(Key={"challenge_key": key}, ConsistentRead=True).get("Item")
    if challenge is None or challenge["kind"] != "mfa" or int(challenge["expires_at"]) <= now:
        raise challenge_not_found()
    header = optional_tenant_header()
    tenant_id, user_id = challenge["tenant_id"], challenge["user_id"]
    if header is not None and header != tenant_id:
        raise ApiError(403, "tenant_mismatch", "X-Tenant-ID is not the challenge's tenant")

    tenant = tenants.get_item(Key={"tenant_id": tenant_id}).get("Item")
    creds = list_credentials(tenant_id, user_id)
    if tenant is None:
        raise ApiError(404, "tenant_not_found", "the tenant does not exist")
    if not creds:
        raise ApiError(404, "no_credentials", "the user has no registered authenticator")
    uv = "required" if tenant["user_verification"] == "required" or all(c["user_verified"] for c in creds) \
        else "preferred"
    options = webauthn.generate_authentication_options(
        rp_id=tenant["rp_id"],
        timeout=int(tenant["challenge_timeout_secs"]) * 1000,
        allow_credentials=descriptors(creds),
        user_verification=UserVerificationRequirement(uv),
    )
    state = {"challenge": bytes_to_base64url(options.challenge), "user_verification": uv,
             "tenant": snapshot(tenant), "credentials": snapshot(creds)}
    try:
        challenges.update_item(
            Key={"challenge_key": key},
            UpdateExpression="SET #state = :state",
            ConditionExpression="attribute_exists(challenge_key) AND #kind = :kind AND #exp > :now",
            ExpressionAttributeNames={"#state": "state", "#kind": "kind", "#exp": "expires_at"},
            ExpressionAttributeValues={":state": json.dumps(state), ":kind": "mfa", ":now": now},
        )
    except ClientError as e:
        if e.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise challenge_not_found() from None
        raise
    log("MFA options issued", tenant_id=tenant_id, user_id=user_id, allowed=len(creds))
    return json_response(200, '{"options": ' + webauthn.options_to_json(options) + "}")


def sign_token(claims: dict) -> str:
    """ES256 JWT signed by KMS (RAW message, DER signature → JOSE r||s)."""
    header = {"alg": "ES256", "typ": "JWT", "kid": SIGNING_KID}
    signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + \
        b64url(json.dumps(claims, separators=(",", ":")).encode())
    der = kms.sign(KeyId=SIGNING_KEY_ID, Message=signing_input.encode(), MessageType="RAW",
                   SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    r, s = decode_dss_signature(der)
    return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def write_audit(outcome: str, code: str | None, tenant_id: str, user_id: str, credential_id: str,
                method: str | None, retention_secs: int, now: int) -> None:
    record = {
        "tenant_id": tenant_id,
        "event_key": f"{now:011d}#{uuid.uuid4()}",
        "tenant_user": tenant_user(tenant_id, user_id),
        "event": "mfa_webauthn",
        "outcome": outcome,
        "user_id": user_id,
        "credential_id": credential_id,
        "ip": request.headers.get("X-Forwarded-For", request.remote_addr),
        "user_agent": request.headers.get("User-Agent", ""),
        "at": now,
        "expires_at": now + retention_secs,
    }
    if code:
        record["code"] = code
    if method:
        record["method"] = method
    print(json.dumps({"audit": True, **record}), flush=True)
    try:
        audit.put_item(Item=record)
    except ClientError as e:  # the answer does not depend on the audit trail
        print(json.dumps({"level": "error", "message": "audit record not written", "error": str(e)}))


@app.post("/v1/auth/mfa/webauthn/complete")
def mfa_complete():
    now = int(time.time())
    header = optional_tenant_header()
    body = request.get_json(silent=True)
    challenge_id = body_challenge_id(body)
    credential = body.get("credential")
    if not isinstance(credential, dict) or not isinstance(credential.get("rawId"), str):
        raise ApiError(400, "invalid_request", "credential is required")
    try:
        raw_id = base64url_to_bytes(credential["rawId"])
    except ValueError:
        raise ApiError(400, "invalid_request", "rawId is not base64url") from None
    if len(raw_id) > MAX_CREDENTIAL_ID:
        raise ApiError(400, "invalid_request", "rawId is too long")
    presented = b64url(raw_id)

    key = f"mfa#{challenge_id}"
    condition = "attribute_exists(challenge_key) AND #kind = :kind AND #exp > :now AND attribute_exists(#state)"
    names = {"#kind": "kind", "#exp": "expires_at", "#state": "state"}
    values = {":kind": "mfa", ":now": now}
    if header is not None:
        condition += " AND #tenant = :tenant"
        names["#tenant"], values[":tenant"] = "tenant_id", header
    try:
        challenge = challenges.delete_item(
            Key={"challenge_key": key}, ConditionExpression=condition, ExpressionAttributeNames=names,
            ExpressionAttributeValues=values, ReturnValues="ALL_OLD",
        )["Attributes"]
    except ClientError as e:
        if e.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise challenge_not_found() from None
        raise
    tenant_id, user_id = challenge["tenant_id"], challenge["user_id"]
    state = json.loads(challenge["state"])
    tenant = state["tenant"]
    retention = int(tenant["audit_retention_days"]) * 86400
    record = next((c for c in state["credentials"] if c["credential_id"] == presented), None)

    def refuse(code: str, message: str, method: str | None = None):
        write_audit("failure", code, tenant_id, user_id, presented, method, retention, now)
        return ApiError(401, code, message)

    if record is None:
        raise refuse("invalid_credential", "the credential could not be verified")
    try:
        verified = webauthn.verify_authentication_response(
            credential=credential,
            expected_challenge=base64url_to_bytes(state["challenge"]),
            expected_rp_id=tenant["rp_id"],
            expected_origin=tenant["origins"],
            credential_public_key=base64url_to_bytes(record["public_key"]),
            credential_current_sign_count=record["sign_count"],
            require_user_verification=state["user_verification"] == "required",
        )
    except InvalidAuthenticationResponse:
        raise refuse("invalid_credential", "the credential could not be verified", record["method_type"]) from None
    handle = credential.get("response", {}).get("userHandle")
    if handle and base64url_to_bytes(handle) != uuid.UUID(user_id).bytes:
        raise refuse("invalid_credential", "the credential could not be verified", record["method_type"])
    eligible = verified.credential_device_type == "multi_device"
    if eligible != record["backup_eligible"]:
        raise refuse("possible_cloned_authenticator", "backup eligibility changed", record["method_type"])

    # The counter must advance past the live stored value (a synced passkey may not advance).
    lenient = record["backup_eligible"] or record["registration_sign_count"] == 0
    try:
        credentials.update_item(
            Key={"tenant_user": tenant_user(tenant_id, user_id), "credential_id": presented},
            UpdateExpression="SET sign_count = :count, backup_state = :bs, last_used_at = :now ADD use_count :one",
            ConditionExpression="attribute_exists(credential_id) AND sign_count < :count",
            ExpressionAttributeValues={":count": verified.new_sign_count, ":bs": verified.credential_backed_up,
                                       ":now": now, ":one": 1},
        )
    except ClientError as e:
        if e.response["Error"]["Code"] != "ConditionalCheckFailedException" or not lenient:
            raise refuse("possible_cloned_authenticator", "the counter did not advance", record["method_type"]) \
                from None
        credentials.update_item(
            Key={"tenant_user": tenant_user(tenant_id, user_id), "credential_id": presented},
            UpdateExpression="SET backup_state = :bs, last_used_at = :now ADD use_count :one, counter_regressions :one",
            ConditionExpression="attribute_exists(credential_id)",
            ExpressionAttributeValues={":bs": verified.credential_backed_up, ":now": now, ":one": 1},
        )

    amr = ["swk" if record["backup_eligible"] else "hwk"]
    if verified.user_verified:
        amr.append("user")
    amr.append("mfa")
    exp = now + int(tenant["token_ttl_secs"])
    token = sign_token({
        "sub": user_id, "tenant_id": tenant_id, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": exp,
        "jti": str(uuid.uuid4()), "auth_time": now, "amr": amr,
    })
    write_audit("success", None, tenant_id, user_id, presented, record["method_type"], retention, now)
    log("MFA completed", tenant_id=tenant_id, user_id=user_id, method=record["method_type"])
    expires_at = datetime.datetime.fromtimestamp(exp, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json_response(200, {"token": token, "expires_at": expires_at,
                               "mfa_setup_required": False, "enrollment_required": False})


class _NoDrain:
    """werkzeug.serving uses `selectors` only to drain the socket after a response (10 ms), which
    would eat the next request on a kept connection; the client sends nothing unasked."""

    EVENT_READ = 1

    def DefaultSelector(self):
        return self

    def register(self, *args):
        pass

    def select(self, timeout=None):
        return []

    def close(self):
        pass


class Handler(WSGIRequestHandler):
    """werkzeug's server closes every connection (`Connection: close`); the bench keeps the
    client's connection open, as Node's server and the Lambda Runtime API client do, so that the
    three implementations differ in their application work, not in connection handling (the
    same patch as bench/moto_keepalive.py's)."""

    protocol_version = "HTTP/1.1"

    def setup(self):
        # headers and body go out in separate sends: without this, Nagle's algorithm holds the
        # body until the client's delayed ACK on a kept connection
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send_header(self, key, value):
        if not (key.lower() == "connection" and value.lower() == "close"):
            super().send_header(key, value)

    def log_request(self, *args, **kwargs):  # no access log line (API Gateway's job)
        pass


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    serving.selectors = _NoDrain()
    server = make_server("127.0.0.1", port, app, threaded=False, request_handler=Handler)
    print(json.dumps({"message": "listening", "port": port}), flush=True)
    server.serve_forever()
