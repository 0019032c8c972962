"""Money is integer fen (分). Parsing refuses floats, more than two decimals, and anything but plain digits."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation


class MoneyError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def yuan_to_fen(value: str | int | Decimal) -> int:
    """'12345.6' -> 1234560. Raises MoneyError('amount_precision'|'amount_invalid')."""
    if isinstance(value, bool) or isinstance(value, float):
        raise MoneyError("amount_invalid", "amounts must be given as a string or Decimal, never a float")
    try:
        dec = Decimal(str(value).strip())
    except InvalidOperation:
        raise MoneyError("amount_invalid", f"not an amount: {str(value)[:20]!r}") from None
    if not dec.is_finite():
        raise MoneyError("amount_invalid", "not a finite amount")
    exponent = dec.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent < -2 and dec != dec.quantize(Decimal("0.01")):
        raise MoneyError("amount_precision", "at most two decimals (fen) are allowed")
    fen = dec * 100
    if abs(fen) > 10**15:
        raise MoneyError("amount_invalid", "amount out of range")
    return int(fen)


def fen_to_yuan(fen: int) -> Decimal:
    return (Decimal(fen) / 100).quantize(Decimal("0.01"))


def format_yuan(fen: int) -> str:
    """1234560 -> '12,345.60'."""
    return f"{fen_to_yuan(fen):,.2f}"
