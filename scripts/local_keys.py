"""Creates the local run's token key in KMS and its two secrets in Secrets Manager (moto), as
template.yaml creates them in AWS, and prints the environment the functions read them from.

    python scripts/local_keys.py ENDPOINT [ES256|RS256]

Prints `export NAME=value` lines for JWT_KMS_KEY_IDS, JWT_KMS_SIGNING_KEY_ID,
BACKUP_CODE_PEPPER_SECRET_ID and CONCEALMENT_SECRET_ID. moto keeps them in memory, so every
start of scripts/dev.sh makes new ones.
"""

import shlex
import sys

import boto3

KEY_SPECS = {"ES256": "ECC_NIST_P256", "RS256": "RSA_2048"}


def main(endpoint: str, algorithm: str = "ES256") -> None:
    session = boto3.session.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1"
    )
    kms = session.client("kms", endpoint_url=endpoint)
    secrets = session.client("secretsmanager", endpoint_url=endpoint)
    key = kms.create_key(
        KeySpec=KEY_SPECS[algorithm],
        KeyUsage="SIGN_VERIFY",
        Description=f"passkey-local token signing key ({algorithm})",
    )["KeyMetadata"]["Arn"]
    env = {"JWT_KMS_KEY_IDS": key, "JWT_KMS_SIGNING_KEY_ID": key}
    for var, name in [
        ("BACKUP_CODE_PEPPER_SECRET_ID", "backup-code-pepper"),
        ("CONCEALMENT_SECRET_ID", "concealment-secret"),
    ]:
        # GenerateSecretString's equivalent: 64 random characters, no punctuation.
        value = secrets.get_random_password(PasswordLength=64, ExcludePunctuation=True)[
            "RandomPassword"
        ]
        env[var] = secrets.create_secret(Name=f"passkey-local/{name}/{key[-12:]}", SecretString=value)[
            "ARN"
        ]
    for name, value in env.items():
        print(f"export {name}={shlex.quote(value)}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
