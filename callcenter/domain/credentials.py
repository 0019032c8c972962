"""Strength of the client's six-digit secrets (IVR PIN, 交易密码 trading password) — pure, standard library only.

A new secret must be six digits, not six equal digits (``111111``), not a run of digits going up or down by one
(``123456``, ``987654``), and not the client's birthday in any six-digit form (``YYMMDD``, ``MMDDYY``,
``DDMMYY``). ``weakness`` names the first rule broken (sentence ``ivr.secret_weak.<code>`` on the hotline);
``check_new_secret`` also compares the two entries and the old secret.
"""

from __future__ import annotations

from datetime import date

LENGTH = 6
WEAK_CODES = ("not_six_digits", "all_same", "sequential", "birthday")


def birthday_forms(birthday: date | None) -> frozenset[str]:
    if birthday is None:
        return frozenset()
    yy, mm, dd = f"{birthday.year % 100:02d}", f"{birthday.month:02d}", f"{birthday.day:02d}"
    return frozenset({yy + mm + dd, mm + dd + yy, dd + mm + yy})


def weakness(secret: str, birthday: date | None = None) -> str | None:
    """The code of the first strength rule ``secret`` breaks, or None when it is acceptable."""
    if len(secret) != LENGTH or not secret.isdigit():
        return "not_six_digits"
    if len(set(secret)) == 1:
        return "all_same"
    steps = {int(b) - int(a) for a, b in zip(secret, secret[1:])}
    if steps in ({1}, {-1}):
        return "sequential"
    if secret in birthday_forms(birthday):
        return "birthday"
    return None


def check_new_secret(new: str, again: str, birthday: date | None = None, old: str | None = None) -> str | None:
    """None when ``new`` may replace the secret; else ``mismatch`` (the two entries differ), ``same_as_old`` or a
    :data:`WEAK_CODES` code."""
    if new != again:
        return "mismatch"
    weak = weakness(new, birthday)
    if weak is not None:
        return weak
    if old is not None and new == old:
        return "same_as_old"
    return None
