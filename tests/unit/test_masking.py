"""Personal data is masked on screens and in every log line."""

from __future__ import annotations

import logging

from callcenter.domain.masking import mask_account, mask_digits_in_text, mask_phone
from callcenter.logging_setup import MaskingFilter


def test_masks() -> None:
    assert mask_account("310000000001") == "3100****0001"
    assert mask_phone("+8613912345678") == "139****5678"
    assert mask_phone("021-6888 1234") == "021****1234"
    assert mask_digits_in_text("caller 13912345678 account 310000000001 ok") == "caller 139****5678 account 310****0001 ok"
    assert mask_digits_in_text("step 3 of 12, code 600519") == "step 3 of 12, code 600519"  # short numbers stay


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_log_records_are_masked() -> None:
    logger = logging.getLogger("callcenter.test.masking")
    handler = ListHandler()
    handler.addFilter(MaskingFilter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("transfer from %s by %s", "310000000001", "+8613912345678")
    finally:
        logger.removeHandler(handler)
    text = "\n".join(handler.lines)
    assert "310000000001" not in text and "13912345678" not in text
    assert "139****5678" in text


def test_dates_and_times_are_not_masked() -> None:
    line = "reminders 2026-11-25 at 08:58:26 for +86 139 1234 5678"
    assert mask_digits_in_text(line) == "reminders 2026-11-25 at 08:58:26 for 139****5678"


def test_one_masking_policy_for_screens_logs_ivr_and_telephony() -> None:
    from callcenter.domain.ivr import interpreter
    from callcenter.ports import telephony as port

    # the IVR's call records, the telephony adapters' log lines and the screens mask a number the same way
    for number in ("+8613912345678", "13912345678", "021-6888 1234"):
        assert interpreter.mask_phone(number) == mask_phone(number)
    assert mask_phone("+8613912345678") == "139****5678"  # was "+86*********78" in the adapters' own copy
    assert not hasattr(port, "mask_number")  # one name for the one policy
    # the in-memory IVR backend too (tests/unit/test_ivr_hotline.py: "account=1234****3456" in the hand-off)
