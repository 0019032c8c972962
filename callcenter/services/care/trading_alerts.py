"""成交回报 and 行情报警: SMS on each new fill (clients subscribed to ``trade_confirmation``) and price alerts that
fire once per crossing (topic ``price_alert``), through the 财经秘书 path: the subscription and opt-out tables,
the quiet hours, one ``care_deliveries`` row per message (unique client + subject, so re-runs and concurrent runs
send once) and the SMS port.

Where it runs: the care runner's interval job ``trading_alerts`` (``callcenter.parts.care``: every
``TRADING_ALERTS_EVERY_S`` seconds on trading days, 09:15–15:30 local), which calls the order service's ``sync``
first so fills are in the store. Not from ``OrderService.sync`` itself: that runs inside hotline calls and reads,
which must not wait on an SMS gateway.

* A trade confirmation's subject is ``trade:<exec id>``; trades of today and yesterday are looked at (a fill
  held back by quiet hours goes out when the window opens).
* A price alert (``price_alerts``; set by the client on the hotline or by an agent through ``set_price_alert``)
  fires when the last price is at or beyond its threshold while it is *armed*; firing disarms it, the price
  going back across the threshold re-arms it. Subject ``alert:<id>:<n>`` (the n-th firing). Outside quiet hours
  nothing fires: the alert stays armed and fires inside the window if the price is still across.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.services.care.dispatch import _send_sms, claim
from callcenter.services.care.messages import sms_text
from callcenter.services.care.planner import PlanItem
from callcenter.domain.reminders import QuietHours
from callcenter.services.care.subscriptions import optouts_of, topics_of
from callcenter.domain.orders import OrderError
from callcenter.i18n import t
from callcenter.ports.sms import SmsSender
from callcenter.store.db import run_in_transaction
from callcenter.store.models import Client, Order, PriceAlert, Trade

log = logging.getLogger(__name__)

TRADING_ALERTS_EVERY_S = 60.0
DIRECTIONS = ("above", "below")


class AlertRefused(ValueError):
    def __init__(self, code: str) -> None:  # unknown_code | bad_threshold
        super().__init__(code)
        self.code = code


def set_price_alert(sessions: sessionmaker[Session], orders: Any, client_id: int, code: str, direction: str,
                    threshold_li: int, *, source: str, now: datetime) -> int:
    """Arm (or re-set) the client's alert on ``code`` in ``direction``; its id. For the hotline and agents
    (``source`` ivr / agent)."""
    try:
        orders.quote(code)
    except OrderError:
        raise AlertRefused("unknown_code") from None
    if direction not in DIRECTIONS or not 0 < threshold_li < 10**9:
        raise AlertRefused("bad_threshold")

    def work(s: Session) -> int:
        row = s.execute(select(PriceAlert).where(PriceAlert.client_id == client_id, PriceAlert.code == code,
                                                 PriceAlert.direction == direction)).scalar_one_or_none()
        if row is None:
            row = PriceAlert(client_id=client_id, code=code, direction=direction, threshold_li=threshold_li,
                             armed=True, fired_count=0, source=source[:8], created_at=now)
            s.add(row)
        else:
            row.threshold_li, row.armed, row.source = threshold_li, True, source[:8]
        s.flush()
        return row.id

    return run_in_transaction(sessions, work)


def crossed(direction: str, threshold_li: int, last_li: int) -> bool:
    return last_li >= threshold_li if direction == "above" else last_li <= threshold_li


@dataclass
class AlertReport:
    confirmations: int = 0
    alerts: int = 0
    rearmed: int = 0
    held_quiet: int = 0
    failed: int = 0


def _yuan(li: int) -> str:
    return str((Decimal(li) / 1000).quantize(Decimal("0.01")))


def _fen_yuan(fen: int) -> str:
    return str((Decimal(fen) / 100).quantize(Decimal("0.01")))


def _send(core: Any, sms: SmsSender, client_id: int, subject: str, mobile: str, lang: str, message: str, day: date,
          now: datetime) -> str | None:
    item = PlanItem(client_id=client_id, client_no="", client_name="", mobile_masked="", language=lang, channel="sms",
                    subject=subject, event_id=None, rule_id=None, rule_name="", reason=subject.split(":", 1)[0],
                    verdict="send", verdict_text="", message=message, mobile=mobile)
    delivery_id = run_in_transaction(core.sessions, lambda s: claim(s, item, day, now))
    if delivery_id is None:
        return None  # sent before (or by a twin run)
    return _send_sms(core.sessions, sms, delivery_id, mobile, sms_text(message, lang), now, kind="trading")


def run_trading_alerts(core: Any, sms: SmsSender, *, now: datetime | None = None,
                       quiet: QuietHours = QuietHours()) -> AlertReport:
    """Send the new trade confirmations and fire the crossed price alerts. Idempotent."""
    now = now or core.clock()
    local = now.astimezone(core.settings.tz)
    report = AlertReport()
    core.orders.sync(now)
    allowed = quiet.allows("sms", local)
    day = local.date()

    # --- 成交回报 --------------------------------------------------------------------------------
    def trades(s: Session) -> list[tuple[Trade, int, str, str]]:
        rows = s.execute(select(Trade, Order.client_id, Client.mobile, Client.language)
                         .join(Order, Order.id == Trade.order_id).join(Client, Client.id == Order.client_id)
                         .where(Trade.trade_date >= day - timedelta(days=1)).order_by(Trade.exec_id)).all()
        ids = sorted({r[1] for r in rows})
        topics, optouts = topics_of(s, ids), optouts_of(s, ids)
        return [(tr, cid, mobile, lang or "zh-CN") for tr, cid, mobile, lang in rows
                if topics[cid]["trade_confirmation"] and not optouts[cid] & {"sms", "all"} and mobile]

    for tr, cid, mobile, lang in run_in_transaction(core.sessions, trades):
        if not allowed:
            report.held_quiet += 1
            continue
        name = core.orders.quote(tr.code).name
        message = t("care.trading.confirmation", lang, side=t(f"care.trading.side_{tr.side}", lang), code=tr.code,
                    name=name, quantity=tr.quantity, price=_yuan(tr.price_li), value=_fen_yuan(tr.value_fen),
                    time=tr.at.astimezone(core.settings.tz).strftime("%H:%M"))
        status = _send(core, sms, cid, f"trade:{tr.exec_id}", mobile, lang, message, day, now)
        if status == "failed":
            report.failed += 1
        elif status is not None:
            report.confirmations += 1

    # --- 行情报警 --------------------------------------------------------------------------------
    def alerts(s: Session) -> list[tuple[int, int, str, str, int, bool, int, str, str]]:
        rows = s.execute(select(PriceAlert.id, PriceAlert.client_id, PriceAlert.code, PriceAlert.direction,
                                PriceAlert.threshold_li, PriceAlert.armed, PriceAlert.fired_count, Client.mobile,
                                Client.language).join(Client, Client.id == PriceAlert.client_id)
                         .order_by(PriceAlert.id)).all()
        return [tuple(r) for r in rows]  # type: ignore[misc]  # rows of the nine columns above

    rows = run_in_transaction(core.sessions, alerts)
    ids = sorted({r[1] for r in rows})
    topics, optouts = run_in_transaction(core.sessions, lambda s: (topics_of(s, ids), optouts_of(s, ids)))
    last: dict[str, int] = {}
    for alert_id, cid, code, direction, threshold, armed, fired, mobile, lang in rows:
        if code not in last:
            q = core.orders.quote(code, at=now)
            last[code] = int(Decimal(q.last) * 1000)
        hit = crossed(direction, threshold, last[code])
        if not armed:
            if not hit:
                def rearm(s: Session, i: int = alert_id) -> None:
                    s.get_one(PriceAlert, i).armed = True

                run_in_transaction(core.sessions, rearm)
                report.rearmed += 1
            continue
        if not hit or not topics[cid]["price_alert"] or optouts[cid] & {"sms", "all"} or not mobile:
            continue
        if not allowed:
            report.held_quiet += 1
            continue
        lang = lang or "zh-CN"
        message = t(f"care.trading.alert_{direction}", lang, code=code, name=core.orders.quote(code).name,
                    threshold=_yuan(threshold), price=_yuan(last[code]))
        status = _send(core, sms, cid, f"alert:{alert_id}:{fired + 1}", mobile, lang, message, day, now)

        def fired_now(s: Session, i: int = alert_id) -> None:
            row = s.get_one(PriceAlert, i)
            row.armed, row.fired_count, row.last_fired_at = False, row.fired_count + 1, now

        run_in_transaction(core.sessions, fired_now)
        if status == "failed":
            report.failed += 1
        else:
            report.alerts += 1
    return report
