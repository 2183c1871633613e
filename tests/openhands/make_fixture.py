#!/usr/bin/env python3
"""Builds an OpenHands-shaped database fixture for tokenstore's import tests.

The rows are encrypted exactly as the OpenHands enterprise server encrypts
them, with Python's `cryptography` Fernet:

  * enterprise/server/auth/token_manager.py, create_encryption_utility():
    Fernet(b64encode(sha256(jwt_secret.encode()).digest())); encrypt_text()
    is fernet.encrypt(text.encode()).decode(); encrypt_payload() is
    encrypt_text(json.dumps(payload)). Auth tokens go through encrypt_text;
    an offline token is stored as json.dumps({'tokens':
    encrypt_payload({'refresh_token': token})}) (store_offline_token).
  * enterprise/storage/encrypt_utils.py, encrypt_value(): the same Fernet
    token wrapped in one more layer of standard base64 -- the "wrapped"
    rows below.

Fernet picks a random IV and stamps the current time, so every run writes
different (equally valid) ciphertexts. The outputs are committed, and the Go
tests need no Python. To regenerate, from the repository root:

    python3 tests/openhands/make_fixture.py

It writes
  tests/openhands/testdata/openhands_fixture.sql   schema + rows (psql or pgx Exec)
  tests/openhands/testdata/openhands_fixture.json  secrets, stored values and
                                                    the outcome each row must have
"""

import base64
import hashlib
import json
import os
import sys

from cryptography.fernet import Fernet

JWT_SECRET = "oh-fixture-jwt-secret-Vq7Zk2Lm9Xw4"
OTHER_SECRET = "another-deployment-jwt-secret-Rr3Tt8"

FUTURE = 4102444800         # 2100-01-01T00:00:00Z
FUTURE_REFRESH = 4133980800 # 2101-01-01T00:00:00Z
PAST = 1577836800           # 2020-01-01T00:00:00Z
PAST_REFRESH = 1580515200   # 2020-02-01T00:00:00Z


def fernet_for(secret: str) -> Fernet:
    # token_manager.create_encryption_utility / encrypt_utils.get_fernet
    return Fernet(base64.b64encode(hashlib.sha256(secret.encode()).digest()))


OH = fernet_for(JWT_SECRET)
OTHER = fernet_for(OTHER_SECRET)


def encrypt_text(text: str, f: Fernet = OH) -> str:
    return f.encrypt(text.encode()).decode()


def encrypt_value(text: str, f: Fernet = OH) -> str:
    # encrypt_utils.encrypt_value: the extra base64 layer
    return base64.b64encode(f.encrypt(text.encode())).decode()


def encrypt_payload(payload: dict, f: Fernet = OH) -> str:
    return encrypt_text(json.dumps(payload), f)


def offline_envelope(token: str, f: Fernet = OH) -> str:
    # token_manager.store_offline_token
    return json.dumps({"tokens": encrypt_payload({"refresh_token": token}, f)})


def truncated(token: str) -> str:
    # Still base64, no longer a whole Fernet token.
    return token[:-4]


# Each auth row: stored columns and the outcome the import must produce.
# expect: ("imported", access, refresh or None, access_exp, refresh_exp)
#      or ("failed", reason)
AUTH = [
    dict(id=1, user="kc-alice", provider="github",
         access=encrypt_text("gho_alice_access_A1b2C3"), refresh=encrypt_text("ghr_alice_refresh_D4e5F6"),
         access_exp=FUTURE, refresh_exp=FUTURE_REFRESH,
         expect=("imported", "gho_alice_access_A1b2C3", "ghr_alice_refresh_D4e5F6", FUTURE, FUTURE_REFRESH),
         note="plain Fernet tokens (TokenManager.encrypt_text)"),
    dict(id=2, user="kc-alice", provider="gitlab",
         access=encrypt_value("glpat-alice-access-G7h8"), refresh=encrypt_value("glrt-alice-refresh-I9j0"),
         access_exp=FUTURE, refresh_exp=FUTURE_REFRESH, stay_logged_in=True,
         expect=("imported", "glpat-alice-access-G7h8", "glrt-alice-refresh-I9j0", FUTURE, FUTURE_REFRESH),
         note="both values wrapped in extra base64 (encrypt_utils.encrypt_value)"),
    dict(id=4, user="kc-bob", provider="bitbucket",
         access=encrypt_text("bb-tøkén-ünïcödé-€-😀-access"), refresh=encrypt_text("bb-réfresh-✓-日本"),
         access_exp=FUTURE, refresh_exp=FUTURE_REFRESH,
         expect=("imported", "bb-tøkén-ünïcödé-€-😀-access", "bb-réfresh-✓-日本", FUTURE, FUTURE_REFRESH),
         note="non-ASCII tokens"),
    dict(id=7, user="kc-bob", provider="github",
         access=encrypt_text("gho_bob_never_expires_K1l2"), refresh=encrypt_text(""),
         access_exp=0, refresh_exp=0,
         expect=("imported", "gho_bob_never_expires_K1l2", None, 0, 0),
         note="never expires (0); refresh token is an encrypted empty string"),
    dict(id=8, user="kc-carol", provider="azure_devops",
         access=encrypt_text("azdo-carol-expired-M3n4"), refresh=encrypt_value("azdo-carol-refresh-O5p6"),
         access_exp=PAST, refresh_exp=FUTURE_REFRESH,
         expect=("imported", "azdo-carol-expired-M3n4", "azdo-carol-refresh-O5p6", PAST, FUTURE_REFRESH),
         note="access token already expired; refresh token wrapped, access token not"),
    dict(id=9, user="kc-carol", provider="enterprise_sso",
         access=encrypt_text("sso-carol-access-Q7r8"), refresh="",
         access_exp=FUTURE, refresh_exp=FUTURE_REFRESH,
         expect=("imported", "sso-carol-access-Q7r8", None, FUTURE, 0),
         note="refresh token column empty: no refresh token (its expiry is dropped)"),
    dict(id=11, user="kc-carol", provider="GitHub Enterprise",
         access=encrypt_text("ghe-carol-access-S9t0"), refresh=encrypt_text("ghe-carol-refresh-U1v2"),
         access_exp=FUTURE, refresh_exp=FUTURE_REFRESH,
         expect=("failed", "invalid provider name"),
         note="provider name tokenstore does not accept"),
    dict(id=12, user="kc-dave", provider="github",
         access=encrypt_text("gho_dave_other_secret_W3x4", OTHER), refresh=encrypt_text("ghr_dave_other_Y5z6", OTHER),
         access_exp=FUTURE, refresh_exp=FUTURE_REFRESH,
         expect=("failed", "wrong secret"),
         note="encrypted under another JWT secret"),
    dict(id=13, user="kc-dave", provider="gitlab",
         access="not-a-fernet-token", refresh=encrypt_text("glrt-dave-refresh-A7b8"),
         access_exp=FUTURE, refresh_exp=FUTURE_REFRESH,
         expect=("failed", "bad ciphertext"),
         note="garbage access token"),
    dict(id=15, user="kc-erin", provider="keycloak",
         access=encrypt_value("kc-erin-access-C9d0", OTHER), refresh=encrypt_value("kc-erin-refresh-E1f2", OTHER),
         access_exp=FUTURE, refresh_exp=FUTURE_REFRESH,
         expect=("failed", "wrong secret"),
         note="wrapped form, another JWT secret"),
    dict(id=16, user="kc-erin", provider="gitlab",
         access=encrypt_text("glpat-erin-expired-G3h4"), refresh=encrypt_text("glrt-erin-expired-I5j6"),
         access_exp=PAST, refresh_exp=PAST_REFRESH,
         expect=("imported", "glpat-erin-expired-G3h4", "glrt-erin-expired-I5j6", PAST, PAST_REFRESH),
         note="access and refresh token both expired"),
    dict(id=20, user="kc-frank", provider="bitbucket",
         access=encrypt_text("bb-frank-access-K7l8"), refresh=truncated(encrypt_text("bb-frank-refresh-M9n0")),
         access_exp=FUTURE, refresh_exp=FUTURE_REFRESH,
         expect=("failed", "bad ciphertext"),
         note="truncated refresh token"),
    dict(id=21, user="kc-evil\nFORGED LINE", provider="github",
         access=encrypt_text("gho_evil_access_O1p2"), refresh=encrypt_text("ghr_evil_refresh_Q3r4"),
         access_exp=FUTURE, refresh_exp=FUTURE_REFRESH,
         expect=("failed", "invalid user id"),
         note="user id with a line break"),
    dict(id=22, user="kc-grace", provider="github",
         access=encrypt_text(""), refresh=encrypt_text("ghr_grace_refresh_S5t6"),
         access_exp=FUTURE, refresh_exp=FUTURE_REFRESH,
         expect=("failed", "invalid tokens"),
         note="access token is an encrypted empty string"),
]

# expect: ("imported", token) or ("failed", reason)
OFFLINE = [
    dict(user="kc-alice", stored=offline_envelope("eyJhbGciOiJIUzI1NiJ9.alice-offline.U7v8"),
         expect=("imported", "eyJhbGciOiJIUzI1NiJ9.alice-offline.U7v8"), note="OpenHands' JSON envelope"),
    dict(user="kc-bob", stored=offline_envelope("offline-ñandú-✓-😀-bob"),
         expect=("imported", "offline-ñandú-✓-😀-bob"), note="non-ASCII (json.dumps escapes it as \\uXXXX)"),
    dict(user="kc-carol", stored=offline_envelope("eyJhbGciOiJIUzI1NiJ9.carol-offline.W9x0"),
         expect=("imported", "eyJhbGciOiJIUzI1NiJ9.carol-offline.W9x0"), note="OpenHands' JSON envelope"),
    dict(user="kc-dave", stored=offline_envelope("eyJ.dave-offline.other", OTHER),
         expect=("failed", "wrong secret"), note="encrypted under another JWT secret"),
    dict(user="kc-erin", stored=encrypt_payload({"refresh_token": "eyJ.erin-offline.bare"}),
         expect=("failed", "bad ciphertext"), note="a bare Fernet token, not the JSON envelope"),
    dict(user="kc-frank", stored=json.dumps({"tokens": "garbage"}),
         expect=("failed", "bad ciphertext"), note="envelope around garbage"),
    dict(user="kc-grace", stored=json.dumps({"tokens": encrypt_payload({"access_token": "eyJ.grace.access"})}),
         expect=("failed", "bad ciphertext"), note="payload without refresh_token"),
]

SCHEMA = """\
-- OpenHands enterprise tables, as its SQLAlchemy models and migrations make
-- them (enterprise/storage/auth_tokens.py, stored_offline_token.py).
CREATE TABLE auth_tokens (
    id                       integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    keycloak_user_id         varchar NOT NULL,
    identity_provider        varchar NOT NULL,
    access_token             varchar NOT NULL,
    refresh_token            varchar NOT NULL,
    access_token_expires_at  bigint  NOT NULL, -- epoch seconds, 0 = never
    refresh_token_expires_at bigint  NOT NULL, -- epoch seconds, 0 = never
    stay_logged_in           boolean NOT NULL DEFAULT false
);
CREATE INDEX ix_auth_tokens_keycloak_user_id ON auth_tokens (keycloak_user_id);
CREATE UNIQUE INDEX idx_auth_tokens_keycloak_user_identity_provider
    ON auth_tokens (keycloak_user_id, identity_provider);

CREATE TABLE offline_tokens (
    user_id       varchar(255) PRIMARY KEY,
    offline_token varchar   NOT NULL,
    created_at    timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at    timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP
);
"""


def lit(s: str) -> str:
    """A PostgreSQL string literal; E'' with escapes when s holds control characters."""
    if any(ord(c) < 0x20 for c in s):
        body = s.replace("\\", "\\\\").replace("'", "\\'")
        body = "".join(f"\\x{ord(c):02x}" if ord(c) < 0x20 else c for c in body)
        return f"E'{body}'"
    return "'" + s.replace("'", "''") + "'"


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "testdata")
    os.makedirs(out, exist_ok=True)

    lines = ["-- Generated by tests/openhands/make_fixture.py; do not edit by hand.", "", SCHEMA]
    for r in AUTH:
        lines.append(f"-- id {r['id']}: {r['note']}")
        lines.append(
            "INSERT INTO auth_tokens (id, keycloak_user_id, identity_provider, access_token, refresh_token, "
            "access_token_expires_at, refresh_token_expires_at, stay_logged_in) VALUES "
            f"({r['id']}, {lit(r['user'])}, {lit(r['provider'])}, {lit(r['access'])}, {lit(r['refresh'])}, "
            f"{r['access_exp']}, {r['refresh_exp']}, {'true' if r.get('stay_logged_in') else 'false'});")
    lines.append("SELECT setval(pg_get_serial_sequence('auth_tokens', 'id'), (SELECT max(id) FROM auth_tokens));")
    lines.append("")
    for r in OFFLINE:
        lines.append(f"-- {r['user']}: {r['note']}")
        lines.append(f"INSERT INTO offline_tokens (user_id, offline_token) VALUES ({lit(r['user'])}, {lit(r['stored'])});")
    with open(os.path.join(out, "openhands_fixture.sql"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")

    def auth_expect(r):
        e = r["expect"]
        if e[0] == "failed":
            return {"status": "failed", "reason": e[1]}
        return {"status": "imported", "access_token": e[1], "refresh_token": e[2],
                "access_token_expires_at": e[3], "refresh_token_expires_at": e[4]}

    def offline_expect(r):
        e = r["expect"]
        if e[0] == "failed":
            return {"status": "failed", "reason": e[1]}
        return {"status": "imported", "offline_token": e[1]}

    doc = {
        "comment": "Generated by tests/openhands/make_fixture.py with Python cryptography "
                   + __import__("cryptography").__version__ + "; do not edit by hand.",
        "jwt_secret": JWT_SECRET,
        "other_secret": OTHER_SECRET,
        "auth_tokens": [
            {"id": r["id"], "keycloak_user_id": r["user"], "identity_provider": r["provider"],
             "access_token": r["access"], "refresh_token": r["refresh"],
             "access_token_expires_at": r["access_exp"], "refresh_token_expires_at": r["refresh_exp"],
             "note": r["note"], "expect": auth_expect(r)}
            for r in AUTH],
        "offline_tokens": [
            {"user_id": r["user"], "offline_token": r["stored"], "note": r["note"], "expect": offline_expect(r)}
            for r in OFFLINE],
    }
    with open(os.path.join(out, "openhands_fixture.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=2)
        f.write("\n")
    print(f"wrote {len(AUTH)} auth_tokens and {len(OFFLINE)} offline_tokens rows to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
