"""The sandboxed Jinja2 environments talk-script wording is rendered in.

ImmutableSandboxedEnvironment (no attribute access to internals, no mutation of lists/dicts),
StrictUndefined (a missing variable is an error, never silent blank text), ``None`` rendered as "".
The HTML environment autoescapes; the plain one is for transcripts and text-to-speech.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template
from jinja2.sandbox import ImmutableSandboxedEnvironment


def _finalize(value: Any) -> Any:
    return "" if value is None else value


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):  # never expected; keep its printed value rather than binary noise
        return Decimal(repr(value))
    return Decimal(value)


def money(value: Any) -> str:
    d = _dec(value)
    return "" if d is None else f"{d.quantize(Decimal('0.01')):,}"


def signed_money(value: Any) -> str:
    d = _dec(value)
    if d is None:
        return ""
    return ("+" if d > 0 else "") + f"{d.quantize(Decimal('0.01')):,}"


def pct(value: Any) -> str:
    d = _dec(value)
    return "" if d is None else f"{(d * 100).quantize(Decimal('0.01'))}%"


def fdate(value: dt.date | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d")


def zhdate(value: dt.date | None) -> str:
    return "" if value is None else f"{value.year}年{value.month}月{value.day}日"


def endate(value: dt.date | None) -> str:
    return "" if value is None else f"{value.day} {value.strftime('%B')} {value.year}"


def fdatetime(value: dt.datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M")


FILTERS = {
    "money": money,
    "signed_money": signed_money,
    "pct": pct,
    "fdate": fdate,
    "zhdate": zhdate,
    "endate": endate,
    "fdatetime": fdatetime,
}


def _make_env(autoescape: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=autoescape,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    # only harmless globals: no range() loops in talk scripts, no namespace/cycler/joiner/lipsum
    env.globals.clear()
    return env


BLANK = "\u2592"  # what an empty interpolation renders as in the checker's live-call rendering


def _mark_blank(value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return BLANK
    return value


def blank_probe(source: str, html: bool = False) -> Template:
    """The template compiled in an environment where every ``{{ }}`` whose value is empty renders as :data:`BLANK`
    (the checker's live-call rendering: a gap an agent would read out)."""
    env = _make_env(autoescape=html)
    env.finalize = _mark_blank
    return env.from_string(source)


@lru_cache(maxsize=2)
def environment(html: bool = True) -> ImmutableSandboxedEnvironment:
    return _make_env(autoescape=html)


@lru_cache(maxsize=4096)
def compile_template(source: str, html: bool = True) -> Template:
    return environment(html).from_string(source)
