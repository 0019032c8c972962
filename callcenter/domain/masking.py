"""Masking of personal data for screens and logs: account numbers, phone numbers, ID numbers."""

from __future__ import annotations

import re

# A phone or account number: digit groups of 3+ (the first may be 2, e.g. +86) joined by single spaces or
# dashes. Dates (2026-11-25) and times are not: their groups are 2 digits.
_LONG_DIGITS = re.compile(r"(?<![\w])(\+?\d{2,}(?:[\- ]\d{3,})*)(?![\w])")


def mask_account(number: str) -> str:
    """'310000000001' -> '3100****0001'."""
    n = number.strip()
    if len(n) <= 8:
        return "*" * max(len(n) - 2, 0) + n[-2:]
    return f"{n[:4]}****{n[-4:]}"


def mask_phone(number: str) -> str:
    """'+8613912345678' -> '139****5678'; landlines keep their area code."""
    digits = re.sub(r"\D", "", number)
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def mask_digits_in_text(text: str) -> str:
    """Mask every run of 7 or more digits (phone or account numbers) inside free text, e.g. a log line."""
    return _LONG_DIGITS.sub(lambda m: mask_phone(m.group(1)) if len(re.sub(r"\D", "", m.group(1))) >= 7 else m.group(1), text)
