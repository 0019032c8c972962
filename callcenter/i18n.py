"""All user-facing text lives in callcenter/locales/<lang>/<area>.yaml; this module looks it up.

Keys are "<area>.<name>" (e.g. "custody.amount_not_positive"); Chinese (zh-CN) is the first language,
English (en) the second. A key missing in English falls back to Chinese, a key missing everywhere raises
KeyError so tests catch it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
DEFAULT_LANG = "zh-CN"
LANGUAGES = ("zh-CN", "en")


@lru_cache(maxsize=None)
def catalogue(lang: str) -> dict[str, str]:
    """Flattened "<area>.<key>" -> text for one language."""
    folder = LOCALES_DIR / lang
    if not folder.is_dir():
        raise KeyError(f"unknown language {lang!r}")
    result: dict[str, str] = {}
    for path in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        _flatten(path.stem, data, result)
    return result


def _flatten(prefix: str, data: Any, out: dict[str, str]) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            _flatten(f"{prefix}.{key}", value, out)
    else:
        out[prefix] = str(data)


def has(key: str, lang: str = DEFAULT_LANG) -> bool:
    return key in catalogue(lang) or key in catalogue(DEFAULT_LANG)


def t(key: str, lang: str = DEFAULT_LANG, /, **params: Any) -> str:
    """Translate ``key`` into ``lang`` and fill ``{name}`` placeholders from ``params``."""
    text = catalogue(lang).get(key)
    if text is None:
        text = catalogue(DEFAULT_LANG)[key]
    return text.format(**params) if params else text
