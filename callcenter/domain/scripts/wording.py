"""Forbidden wording: promises of returns and guarantees against losses (the one list, kept here).

The 2012 notice 关于进一步加强证券公司客户服务和证券交易佣金管理工作的通知 forbids promising clients
returns on their trading or compensating their losses (向客户承诺证券买卖收益或赔偿证券买卖损失).

Text is normalised before matching: NFKC (full-width letters and spaces become ordinary ones), a few
traditional characters folded to simplified, lower case, and every space, punctuation mark and invisible
character removed — so "保 本", "保　本", "保·本" and "ＧＵＡＲＡＮＴＥＥＤ ＲＥＴＵＲＮ" are all caught.
A term directly preceded by a negation or prohibition (不, 无法, 严禁, not, never …) is a disclaimer such as
"我们不承诺收益" and is not reported. Standard library only.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

FORBIDDEN_TERMS: tuple[str, ...] = (
    # promises of returns
    "保证收益",
    "保证盈利",
    "保证赚钱",
    "承诺收益",
    "保本",
    "保底",
    "稳赚",
    "稳赚不赔",
    "包赚",
    "只赚不赔",
    "一定赚钱",
    "肯定赚钱",
    "稳定收益保证",
    "零风险",
    "无风险",
    "没有风险",
    "保证不亏",
    "保证不会亏",
    "不会亏损",
    "不会亏钱",
    "不亏本",
    "包赔",
    "赔偿损失",
    "补偿损失",
    "弥补损失",
    "亏损补偿",
    "亏了算我的",
    # English
    "guaranteed return",
    "guaranteed returns",
    "guaranteed profit",
    "guaranteed income",
    "guaranteed gain",
    "guarantee a return",
    "guarantee a profit",
    "guarantee returns",
    "guarantee profit",
    "capital guaranteed",
    "principal guaranteed",
    "capital protected",
    "risk-free",
    "risk free",
    "zero risk",
    "no risk",
    "can't lose",
    "cannot lose",
    "sure win",
    "sure profit",
    "cover your losses",
    "compensate your losses",
    "compensate for your losses",
    "make up your losses",
    "double your money",
)

#: A forbidden term directly preceded by one of these (after normalisation) is a disclaimer.
NEGATIONS: tuple[str, ...] = (
    "不",
    "不能",
    "无法",
    "并不",
    "绝不",
    "决不",
    "从不",
    "不会",
    "并非",
    "不是",
    "没有",
    "不得",
    "不可",
    "不要",
    "切勿",
    "勿",
    "禁止",
    "严禁",
    "不作",
    "不做",
    "not",
    "never",
    "no",
    "nor",
)

#: "不承诺", "严禁保证", "不得作出" …: a negation followed by a promising verb also makes a disclaimer.
_PROMISE_VERBS = ("承诺", "保证", "作出", "做出", "给予", "向客户承诺", "对客户承诺")
NEGATIONS = NEGATIONS + tuple(n + v for n in NEGATIONS if not n.isascii() for v in _PROMISE_VERBS)

_TRADITIONAL = str.maketrans(
    {
        "證": "证",
        "穩": "稳",
        "賺": "赚",
        "無": "无",
        "風": "风",
        "險": "险",
        "虧": "亏",
        "賠": "赔",
        "諾": "诺",
        "損": "损",
        "補": "补",
        "償": "偿",
        "盤": "盘",
        "穫": "获",
        "彌": "弥",
        "們": "们",
        "會": "会",
        "錢": "钱",
        "沒": "没",
        "確": "确",
        "擔": "担",
        "虛": "虚",
    }
)


def _keep(ch: str) -> bool:
    cat = unicodedata.category(ch)
    # letters, digits, CJK (Lo), marks inside words; drop spaces (Z*), punctuation (P*), symbols (S*),
    # controls and format characters (Cc, Cf: zero-width space/joiner, BOM)
    return not (cat[0] in "ZPS" or cat in ("Cc", "Cf"))


def normalise(text: str) -> tuple[str, list[int]]:
    """Return the normalised text and, for each of its characters, the index in ``text`` it came from."""
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        for n in unicodedata.normalize("NFKC", ch).translate(_TRADITIONAL).lower():
            if _keep(n):
                out.append(n)
                origin.append(i)
    return "".join(out), origin


def _norm(term: str) -> str:
    return normalise(term)[0]


_FIRST_SPELLING: dict[str, str] = {}
for _term in FORBIDDEN_TERMS:
    _FIRST_SPELLING.setdefault(_norm(_term), _term)  # "risk-free" and "risk free" are one term
_TERMS: tuple[tuple[str, str], ...] = tuple(sorted(_FIRST_SPELLING.items(), key=lambda p: (-len(p[0]), p[0])))
_NEGATIONS: tuple[str, ...] = tuple(sorted({_norm(n) for n in NEGATIONS}, key=len, reverse=True))


@dataclass(frozen=True)
class WordingHit:
    term: str  # the listed term that matched
    start: int  # index in the original text
    end: int  # index just past the match in the original text
    matched: str  # the original text that matched (with its spaces / full-width characters)


def find_forbidden(text: str) -> list[WordingHit]:
    """Every forbidden term in ``text`` (longest match wins where terms overlap), in text order."""
    norm, origin = normalise(text)
    taken = [False] * len(norm)
    hits: list[WordingHit] = []
    for nterm, term in _TERMS:
        if not nterm:
            continue
        pos = norm.find(nterm)
        while pos != -1:
            end = pos + len(nterm)
            if not any(taken[pos:end]) and not _negated(norm, pos):
                for k in range(pos, end):
                    taken[k] = True
                start_o, end_o = origin[pos], origin[end - 1] + 1
                hits.append(WordingHit(term, start_o, end_o, text[start_o:end_o]))
            pos = norm.find(nterm, pos + 1)
    hits.sort(key=lambda h: h.start)
    return hits


def _negated(norm: str, pos: int) -> bool:
    before = norm[max(0, pos - 12) : pos]
    return any(before.endswith(n) for n in _NEGATIONS)
