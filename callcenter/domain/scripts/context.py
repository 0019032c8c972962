"""The documented set of variables a talk script may use.

A script's ``say`` templates see exactly five names — ``client``, ``agent``, ``company``, ``campaign`` and
``event`` — and only the fields declared on the dataclasses below (the checker walks every template and
rejects anything else). Build a :class:`ScriptContext` from the database for each call; use
:meth:`ScriptContext.sample` for checking and previews.

Money is ``Decimal`` yuan (use :func:`yuan_from_fen` when the store keeps integer fen); never float.
``None`` renders as an empty string; ``event`` is ``None`` except on reminder calls.

Filters available in templates: ``money`` (Decimal -> "1,234,567.89"), ``signed_money`` ("+12,345.00"),
``pct`` (Decimal ratio 0.0523 -> "5.23%"), ``fdate`` (date -> "2024-03-05"), ``zhdate`` (date ->
"2024年3月5日"), ``endate`` (date -> "5 March 2024"), ``fdatetime`` (datetime -> "2024-03-05 14:30").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields, is_dataclass
from decimal import Decimal
from typing import Any


def yuan_from_fen(fen: int) -> Decimal:
    """Integer fen -> Decimal yuan with two places."""
    return (Decimal(int(fen)) / 100).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class Holding:
    code: str  # 证券代码, e.g. "600519"
    name: str  # 证券简称
    quantity: int  # shares / units
    market_value: Decimal  # yuan
    cost_price: Decimal | None = None  # yuan per share, when known


@dataclass(frozen=True)
class ClientInfo:
    name: str  # full name, e.g. 王建国
    surname: str  # 王
    honorific: str  # 先生 / 女士
    honorific_en: str = ""  # Mr / Ms
    surname_latin: str = ""  # Wang (for English wording)
    branch: str = ""  # our branch (营业部) that keeps the account
    service_group: str = ""  # 服务小组
    account_tail: str = ""  # last 4 digits of the fund account, never the full number
    total_assets: Decimal = Decimal("0")  # yuan
    month_change: Decimal = Decimal("0")  # yuan, change of total assets this month
    holdings: list[Holding] = field(default_factory=list)
    status: str = "active"  # active / dormant / closed / prospect
    closed_date: dt.date | None = None
    closed_reason: str | None = None
    dormant_days: int | None = None  # days since the last trade
    last_trade_date: dt.date | None = None
    last_contact_date: dt.date | None = None
    birthday: dt.date | None = None
    met_at: str | None = None  # prospects: where we met them, e.g. 建设银行人民路支行
    met_date: dt.date | None = None


@dataclass(frozen=True)
class AgentInfo:
    name: str  # 张明
    surname: str  # 张
    group: str = ""  # 服务小组 / team name


@dataclass(frozen=True)
class CompanyInfo:
    name: str  # 证券公司名称
    name_en: str = ""
    hotline: str = ""  # 客服热线, e.g. 95xxx
    website: str = ""


@dataclass(frozen=True)
class CampaignInfo:
    name: str
    kind: str  # one of callcenter.domain.scripts.model.KINDS


@dataclass(frozen=True)
class EventInfo:
    """What a reminder call is about (配股, 增发, 权证到期/行权 …)."""

    kind: str  # warrant_expiry / rights_issue / placing / other
    security_code: str
    security_name: str
    last_trading_date: dt.date | None = None  # 最后交易日
    expiry_date: dt.date | None = None  # 权证到期日 / 行权截止日
    start_date: dt.date | None = None  # 缴款 / 行权 起始日
    end_date: dt.date | None = None  # 缴款 / 行权 截止日
    price: Decimal | None = None  # 行权价 / 配股价, yuan
    ratio: str | None = None  # e.g. 10配3


@dataclass(frozen=True)
class ScriptContext:
    client: ClientInfo
    agent: AgentInfo
    company: CompanyInfo
    campaign: CampaignInfo
    event: EventInfo | None = None

    def as_template_vars(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def sample(cls) -> ScriptContext:
        """A fully populated context for checking and previews (every optional field set)."""
        return cls(
            client=ClientInfo(
                name="王建国",
                surname="王",
                honorific="先生",
                honorific_en="Mr",
                surname_latin="Wang",
                branch="人民路营业部",
                service_group="第三服务小组",
                account_tail="5678",
                total_assets=Decimal("386520.45"),
                month_change=Decimal("-12380.00"),
                holdings=[
                    Holding("600036", "招商银行", 3000, Decimal("102600.00"), Decimal("36.20")),
                    Holding("000858", "五粮液", 500, Decimal("71450.00"), Decimal("168.00")),
                ],
                status="closed",
                closed_date=dt.date(2023, 6, 30),
                closed_reason="转户其他券商",
                dormant_days=213,
                last_trade_date=dt.date(2023, 11, 2),
                last_contact_date=dt.date(2024, 2, 20),
                birthday=dt.date(1968, 9, 12),
                met_at="建设银行人民路支行",
                met_date=dt.date(2024, 5, 8),
            ),
            agent=AgentInfo(name="张明", surname="张", group="第三服务小组"),
            company=CompanyInfo(name="示例证券", name_en="Example Securities", hotline="95500", website="www.example.com"),
            campaign=CampaignInfo(name="老客户回访季", kind="win_back"),
            event=EventInfo(
                kind="warrant_expiry",
                security_code="580999",
                security_name="示例CWB1",
                last_trading_date=dt.date(2024, 6, 14),
                expiry_date=dt.date(2024, 6, 21),
                start_date=dt.date(2024, 6, 17),
                end_date=dt.date(2024, 6, 21),
                price=Decimal("4.50"),
                ratio="10配3",
            ),
        )


def live_shapes(kind: str) -> list[tuple[str, ScriptContext]]:
    """Contexts shaped like real calls of a script kind: only the fields such a call always has, every optional one
    empty (a first contact has no last contact date, a client may hold nothing, a lead may have no ``met_at``).
    ``scripts check`` renders each script with these and refuses any interpolation that comes out empty."""
    full = ScriptContext.sample()
    agent = full.agent
    prospect = ClientInfo(name="李娜", surname="李", honorific="女士", honorific_en="Ms", surname_latin="Li",
                          branch="人民路营业部", service_group="第三服务小组", status="prospect")
    client = ClientInfo(name="王建国", surname="王", honorific="先生", honorific_en="Mr", surname_latin="Wang",
                        branch="人民路营业部", service_group="第三服务小组", account_tail="5678",
                        total_assets=Decimal("0"), month_change=Decimal("0"), status="active")
    campaign = CampaignInfo(name="回访", kind=kind)
    event = None
    if kind in ("branch_prospect", "cold_call"):
        shapes = [("lead", prospect)]
    elif kind == "win_back":
        shapes = [("closed_client", ClientInfo(**{**client.__dict__, "status": "closed",
                                                  "closed_date": dt.date(2023, 6, 30)}))]
    elif kind == "dormant":
        shapes = [("dormant_client", ClientInfo(**{**client.__dict__, "status": "dormant",
                                                   "last_trade_date": dt.date(2023, 11, 2), "dormant_days": 213}))]
    elif kind == "birthday":
        shapes = [("client", ClientInfo(**{**client.__dict__, "birthday": dt.date(1968, 9, 12)}))]
    else:
        shapes = [("client", client)]
    events: list[EventInfo | None] = [event]
    if kind == "reminder":
        # what the store always has for a care event: kind, code, name and its date; the rest may be missing
        events = [EventInfo(kind=k, security_code="600036", security_name="招商银行",
                            last_trading_date=dt.date(2024, 6, 14)) for k in ("rights_issue", "warrant_expiry", "other")]
    return [(label, ScriptContext(client=c, agent=agent, company=full.company, campaign=campaign, event=e))
            for label, c in shapes for e in events]


#: The top-level names a template may use, with their types.
ROOT_TYPES: dict[str, Any] = {
    "client": ClientInfo,
    "agent": AgentInfo,
    "company": CompanyInfo,
    "campaign": CampaignInfo,
    "event": EventInfo,
}


def documented_fields(cls: type = ScriptContext, prefix: str = "") -> list[str]:
    """Dotted names of every documented variable, e.g. ``client.holdings[].market_value`` (for docs/UI)."""
    import typing

    out: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        name = f"{prefix}{f.name}"
        tp = hints[f.name]
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        origin = typing.get_origin(tp)
        if origin is list and args and isinstance(args[0], type) and is_dataclass(args[0]):
            out.extend(documented_fields(args[0], f"{name}[]."))
        elif isinstance(tp, type) and is_dataclass(tp):
            out.extend(documented_fields(tp, f"{name}."))
        elif len(args) == 1 and isinstance(args[0], type) and is_dataclass(args[0]):
            out.extend(documented_fields(args[0], f"{name}."))
        else:
            out.append(name)
    return out
