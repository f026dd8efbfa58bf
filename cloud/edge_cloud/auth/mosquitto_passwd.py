"""Mosquitto password-file lines in the ``$7$`` format of ``mosquitto_passwd`` (2.0):

``username:$7$<iterations>$<base64 salt>$<base64 hash>`` with PBKDF2-HMAC-SHA512, a
12-byte random salt, 101 iterations and a 64-byte hash, standard base64 with padding —
what ``mosquitto_passwd -b`` writes (checked against it, and against a real broker, in
tests/cloud).  The per-device secrets are 256-bit random values, so the low iteration
count Mosquitto uses costs nothing in safety.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

ITERATIONS = 101
SALT_BYTES = 12
HASH_BYTES = 64


def hash_secret(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, HASH_BYTES)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_secret(stored: str, password: str) -> bool:
    try:
        _, kind, iterations, salt, digest = stored.split("$")
        if kind != "7":
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(salt, validate=True), int(iterations), len(expected)
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def line(username: str, stored: str) -> str:
    if ":" in username or "\n" in username:
        raise ValueError(f"user name {username!r} cannot appear in a password file")
    return f"{username}:{stored}"
