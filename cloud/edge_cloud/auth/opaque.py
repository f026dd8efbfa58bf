"""Random opaque secrets (enrollment tokens, refresh tokens, API keys) and their stored form.

Each has 256 random bits; the database keeps only the SHA-256 hex digest, so a leaked
database yields nothing usable.  A prefix says what a secret is when it turns up in a
log or a shell history (``eet_`` enrollment, ``ect_`` claim, ``ert_`` refresh, ``eak_``
API key).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

ENROLLMENT = "eet_"
CLAIM = "ect_"
REFRESH = "ert_"
API_KEY = "eak_"


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def same_digest(secret: str, stored: str) -> bool:
    return hmac.compare_digest(digest(secret), stored)
