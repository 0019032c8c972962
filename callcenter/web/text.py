"""The text types of every request model and form in ``callcenter.web``: no control characters.

A NUL byte cannot be stored in a PostgreSQL text column (the driver raises ``DataError``), and the other
control characters (Unicode category Cc) have no business in a name, a login or a complaint either. Every text
field of a request is declared ``Text`` (one line) or ``MultilineText`` (a note, a complaint: tab, line feed
and carriage return allowed), so such input is refused with a 422 and the sentence ``api.control_characters``
before it reaches a service. ``tests/e2e/test_control_characters.py`` checks that every route uses them.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

ERROR_TYPE = "control_characters"

# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F.
_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def has_control(value: str, *, multiline: bool = False) -> bool:
    return (_CONTROL_BUT_LINES if multiline else _ANY_CONTROL).search(value) is not None


def _single(value: str) -> str:
    if has_control(value):
        raise PydanticCustomError(ERROR_TYPE, "text contains a control character")
    return value


def _multi(value: str) -> str:
    if has_control(value, multiline=True):
        raise PydanticCustomError(ERROR_TYPE, "text contains a control character other than tab or line break")
    return value


Text = Annotated[str, AfterValidator(_single)]
MultilineText = Annotated[str, AfterValidator(_multi)]
TEXT_VALIDATORS = (_single, _multi)  # for the test that every request field uses one
