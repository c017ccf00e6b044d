"""An independent verifier of the service's tokens (PyJWT, not our code).

    python oidc_verify.py ISSUER AUDIENCE TOKEN

Starts from the issuer alone: fetches ISSUER/.well-known/openid-configuration, follows its
jwks_uri with PyJWKClient, and verifies TOKEN (signature, iss, aud, exp) with the algorithms the
document lists. Prints a JSON report; exits 0 if the token is valid, 1 if not.
"""

import json
import sys
import urllib.request

import jwt


def main(issuer: str, audience: str, token: str) -> int:
    with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration", timeout=10) as r:
        discovery = json.load(r)
    if discovery.get("issuer") != issuer:
        print(json.dumps({"valid": False, "error": "discovery names another issuer"}))
        return 1
    client = jwt.PyJWKClient(discovery["jwks_uri"], cache_jwk_set=False, cache_keys=False)
    try:
        key = client.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=discovery["id_token_signing_alg_values_supported"],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as e:
        print(json.dumps({"valid": False, "error": f"{type(e).__name__}: {e}"}))
        return 1
    alg = jwt.get_unverified_header(token)["alg"]
    print(json.dumps({"valid": True, "sub": claims["sub"], "alg": alg}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
