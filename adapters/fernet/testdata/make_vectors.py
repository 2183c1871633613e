#!/usr/bin/env python3
"""Make vectors.json: Fernet tokens written the way the replaced Python
system wrote them, so the Go adapter's tests prove it reads that data without
needing Python at test time.

    cd adapters/fernet/testdata && python3 make_vectors.py > vectors.json

Needs the `cryptography` package (tested with 48.0.0). Fernet picks a random
IV and stamps the current time, so every run writes different tokens; any
run's output is a valid set of vectors.

What the old system did (OpenHands enterprise):
  * server/auth/token_manager.py: key = b64encode(sha256(jwt_secret.encode()).digest())
    (standard base64, not URL-safe), token = Fernet(key).encrypt(text.encode()).
  * storage/encrypt_utils.py: same key, but stores b64encode(Fernet(key).encrypt(..)),
    one more layer of standard base64 ("wrapped").
  * encrypt_payload: Fernet(key).encrypt(json.dumps(payload).encode()).
"""

import base64
import hashlib
import json
import sys

import cryptography
from cryptography.fernet import Fernet

# Long enough to cross many AES blocks and the size of real Keycloak tokens.
LONG = "eyJhbGciOiJSUzI1NiJ9." + "".join(chr(ord("a") + i % 26) for i in range(4000)) + ".sig"

PLAINTEXTS = [
    ("ascii", "gho_16C7e42F292c6912E7710c838347Ae178B4a"),
    ("non-ascii", "tökén-✓ 令牌 🔑"),
    ("one-char", "x"),
    ("block-sized", "0123456789abcdef"),
    ("long", LONG),
]

PAYLOAD = {"access_token": "glpat-XXXXxxxxXXXXxxxx", "refresh_token": "rt-✓", "expires_at": 1767225600}

# The first secret's SHA-256 has '+' or '/' in standard base64 (asserted
# below), so the vectors exercise a key that is not URL-safe base64.
JWT_SECRETS = ["tokenstore-test-jwt-secret-0", "jwt-sécret-ü"]


def legacy_key(secret: str) -> bytes:
    return base64.b64encode(hashlib.sha256(secret.encode()).digest())


def main() -> None:
    derived = []
    for secret in JWT_SECRETS:
        key = legacy_key(secret)
        f = Fernet(key)
        vectors = [
            {"name": name, "plaintext": text, "token": f.encrypt(text.encode()).decode()}
            for name, text in PLAINTEXTS
        ]
        vectors.append({
            "name": "wrapped",
            "plaintext": PLAINTEXTS[0][1],
            "token": base64.b64encode(f.encrypt(PLAINTEXTS[0][1].encode())).decode(),
            "wrapped": True,
        })
        derived.append({
            "jwt_secret": secret,
            "fernet_key": key.decode(),
            "vectors": vectors,
            "json_payload": {"value": PAYLOAD, "token": f.encrypt(json.dumps(PAYLOAD).encode()).decode()},
        })
    k0 = derived[0]["fernet_key"]
    assert "+" in k0 or "/" in k0, "pick a JWT secret whose standard-base64 key is not URL-safe"

    # Fernet.generate_key() style: URL-safe base64. Fixed here so the test can
    # pin its id; it protects nothing.
    generated_key = base64.urlsafe_b64encode(hashlib.sha256(b"tokenstore-test-generated-key").digest()).decode()
    g = Fernet(generated_key)
    generated = {
        "fernet_key": generated_key,
        "vectors": [
            {"name": name, "plaintext": text, "token": g.encrypt(text.encode()).decode()}
            for name, text in PLAINTEXTS
        ],
    }

    json.dump({
        "generated_by": "make_vectors.py with cryptography " + cryptography.__version__,
        "derived_from_jwt_secret": derived,
        "generated_key": generated,
    }, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
