"""Password and PIN hashing with argon2. Secrets are never logged or returned."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher()


def hash_secret(secret: str) -> str:
    if not secret:
        raise ValueError("empty secret")
    return _hasher().hash(secret)


def verify_secret(stored_hash: str, secret: str) -> bool:
    if not stored_hash or not secret:
        return False
    try:
        return _hasher().verify(stored_hash, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# A hash to verify against when the user does not exist, so that timing does not reveal which usernames exist.
@lru_cache(maxsize=1)
def dummy_hash() -> str:
    return _hasher().hash("not-a-real-password")
