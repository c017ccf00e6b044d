"""schemathesis hooks for scripts/contract.sh (loaded through SCHEMATHESIS_HOOKS).

Generated requests get past authentication so the fuzzing reaches the handlers' real work:

- every operation secured by `bearerJwt` gets `Authorization: Bearer $TOKEN`;
- an `X-Tenant-ID` that schemathesis generated as a UUID becomes `$TENANT_ID` (the token's
  tenant); malformed values stay, so the 400 paths are exercised too;
- on the admin routes (`/v1/admin/...`, which the local run accepts unsigned), a `tenant_id`
  path parameter generated as a UUID becomes `$TENANT_ID`, and a `user_id` one `$USER_ID`
  (except when erasing the user), so the operations find a real tenant and user.

A raw body that is not UTF-8 is sent as its lossy UTF-8 decoding (still not JSON): the local
run's `cargo lambda watch` cannot put such a body into an API Gateway event and answers 500
itself, without calling the function (API Gateway hands it over base64-encoded; the integration
tests, garbage.rs, send such bodies to every handler that way).

contract.sh creates that tenant, user and token for the run (never the demo ones).
"""

import os
import uuid

import schemathesis

TOKEN = os.environ["TOKEN"]
TENANT_ID = os.environ["TENANT_ID"]
USER_ID = os.environ["USER_ID"]


def _is_uuid(value):
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _secured_by(operation, scheme):
    security = operation.definition.raw.get("security", operation.schema.raw_schema.get("security", []))
    return any(scheme in requirement for requirement in security)


@schemathesis.hook
def map_case(context, case):
    operation = case.operation
    headers = dict(case.headers or {})
    if _secured_by(operation, "bearerJwt"):
        headers["Authorization"] = f"Bearer {TOKEN}"
    for name, value in list(headers.items()):
        if name.lower() == "x-tenant-id" and _is_uuid(value):
            headers[name] = TENANT_ID
    case.headers = headers
    if isinstance(case.body, (bytes, bytearray)):
        try:
            bytes(case.body).decode("utf-8")
        except UnicodeDecodeError:
            case.body = bytes(case.body).decode("utf-8", "replace").encode("utf-8")
    if operation.path.startswith("/v1/admin/") and case.path_parameters:
        params = dict(case.path_parameters)
        if _is_uuid(params.get("tenant_id", "")):
            params["tenant_id"] = TENANT_ID
        erasing = operation.method.upper() == "DELETE" and operation.path.endswith("/users/{user_id}")
        if _is_uuid(params.get("user_id", "")) and not erasing:
            params["user_id"] = USER_ID
        case.path_parameters = params
    return case
