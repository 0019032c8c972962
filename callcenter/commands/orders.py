"""``callcenter orders place|cancel|list|quote|settle``: phone orders for operators and tests (a back-office
actor: ``Actor.back_office("cli")``). With --json the last line is one JSON object."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Optional

import typer

from callcenter.commands.common import Side, make_core
from callcenter.domain.access import Actor
from callcenter.domain.orders import OrderError

app = typer.Typer(help="电话委托 · phone orders (place, cancel, list, quote)", no_args_is_help=True)
CLI = Actor.back_office("cli")
JSON = typer.Option(False, "--json", help="one JSON object on the last line")
AT = typer.Option(None, "--at", help="evaluate at this instant (ISO 8601 with offset; default now)")


def _at(text: Optional[str]) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("expected ISO 8601, e.g. 2026-12-02T10:00:00+08:00", param_hint="--at") from None
    if value.tzinfo is None:
        raise typer.BadParameter("give the offset, e.g. +08:00", param_hint="--at")
    return value


@app.command("place")
def place(account: str = typer.Option(..., "--account", help="fund account number · 资金账号"),
          side: Side = typer.Option(..., "--side", help="buy or sell · 买卖方向"),
          code: str = typer.Option(..., "--code", help="security code · 证券代码"),
          quantity: int = typer.Option(..., "--quantity", help="shares · 股数"),
          price: Optional[str] = typer.Option(None, "--price", help="limit price; omit for a market order"),
          key: Optional[str] = typer.Option(None, "--key", help="idempotency key (default: a fresh one)"),
          at: Optional[str] = AT, as_json: bool = JSON) -> None:
    """Place an order; exit 1 when refused."""
    import secrets

    from callcenter.services.orders import PlaceOrder

    when = _at(at)
    core = make_core()
    try:
        outcome = core.orders.place(PlaceOrder(key or f"cli:{secrets.token_hex(8)}", account, side, code, quantity,
                                               price, "limit" if price is not None else "market", channel="cli",
                                               actor=CLI), at=when)
    finally:
        core.close()
    typer.echo(outcome.message)
    if as_json:
        print(json.dumps({"ok": outcome.ok, "code": outcome.code, "order_id": outcome.order_id,
                          "frozen_fen": outcome.frozen_fen}))
    raise typer.Exit(0 if outcome.ok else 1)


@app.command("cancel")
def cancel(account: str = typer.Option(..., "--account", help="fund account number · 资金账号"),
           order_id: int = typer.Option(..., "--order", help="order id · 委托编号"),
           at: Optional[str] = AT, as_json: bool = JSON) -> None:
    """Cancel an open order; exit 1 when refused."""
    when = _at(at)
    core = make_core()
    try:
        outcome = core.orders.cancel(account, order_id, actor=CLI, at=when)
    finally:
        core.close()
    typer.echo(outcome.message)
    if as_json:
        print(json.dumps({"ok": outcome.ok, "code": outcome.code, "order_id": outcome.order_id,
                          "status": outcome.status}))
    raise typer.Exit(0 if outcome.ok else 1)


@app.command("list")
def list_orders(account: str = typer.Option(..., "--account", help="fund account number · 资金账号"),
                trades: bool = typer.Option(False, "--trades", help="also list the trades · 同时列出成交"),
                at: Optional[str] = AT, as_json: bool = JSON) -> None:
    """Today's orders (or with --trades today's fills) of a fund account."""
    when = _at(at)
    core = make_core()
    try:
        try:
            rows = (core.orders.trades_today(account, actor=CLI, at=when) if trades
                    else core.orders.orders_today(account, actor=CLI, at=when))
        except OrderError as exc:
            typer.echo(exc.rule.value, err=True)
            raise typer.Exit(1) from None
    finally:
        core.close()
    out = []
    for row in rows:
        data = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in vars(row).items()}
        out.append(data)
        typer.echo("  ".join(str(v) for v in data.values()))
    if as_json:
        print(json.dumps(out, ensure_ascii=False))


@app.command("quote")
def quote(code: str = typer.Argument(...), at: Optional[str] = AT, as_json: bool = JSON) -> None:
    """Name, previous close, last price and the day's limits of a code."""
    when = _at(at)
    core = make_core()
    try:
        try:
            view = core.orders.quote(code, at=when)
        except OrderError as exc:
            typer.echo(exc.rule.value, err=True)
            raise typer.Exit(1) from None
    finally:
        core.close()
    typer.echo(f"{view.code} {view.name} {view.last} ({view.change_pct} %) "
               f"limits {view.limit_down}–{view.limit_up}, prev close {view.prev_close}")
    if as_json:
        print(json.dumps(view.as_dict(), ensure_ascii=False))


@app.command("settle")
def settle(day: str = typer.Option(..., "--day", help="YYYY-MM-DD")) -> None:
    """End-of-day settlement of ``day``: open orders expire, trades settle into holdings and the journal."""
    try:
        d = date.fromisoformat(day)
    except ValueError:
        raise typer.BadParameter("expected YYYY-MM-DD", param_hint="--day") from None
    core = make_core()
    try:
        report = core.orders.settle(d)
    finally:
        core.close()
    typer.echo(f"settled {report['trades']} trades of {report['clients']} clients on {d}")
