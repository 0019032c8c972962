"""Password and PIN hashing with argon2. Secrets are never logged or returned."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


# argon2id parameters of new hashes (settings argon2_time_cost, argon2_memory_kib, argon2_parallelism, applied by
# bootstrap); verifying always uses the parameters stored in the hash itself
_PARAMETERS = {"time_cost": 3, "memory_cost": 65536, "parallelism": 4}


def set_parameters(time_cost: int, memory_kib: int, parallelism: int) -> None:
    new = {"time_cost": time_cost, "memory_cost": memory_kib, "parallelism": parallelism}
    if new != _PARAMETERS:
        _PARAMETERS.update(new)
        _hasher.cache_clear()
        dummy_hash.cache_clear()


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    p = _PARAMETERS
    return PasswordHasher(time_cost=p["time_cost"], memory_cost=p["memory_cost"], parallelism=p["parallelism"])


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
