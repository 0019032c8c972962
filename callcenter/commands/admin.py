"""``callcenter admin``: administrators' commands run on the server — unlock a staff login or an IVR account
throttle (with a reason, audit-logged under the administrator named by ``--by``), list the throttles."""

from __future__ import annotations

import typer

from callcenter.commands.common import make_core
from callcenter.services.staff_sessions import staff_principal
from callcenter.services.throttles import NotAllowed, Scope, ThrottlePolicies, Throttles, UnlockRefused

app = typer.Typer(help="管理员 · administrators: login and IVR throttles", no_args_is_help=True)

BY = typer.Option(..., "--by", help="the administrator's username (recorded in the audit log)")
REASON = typer.Option(..., "--reason", help="why (recorded in the audit log)")


def _unlock(targets: list[tuple[Scope, str]], by: str, reason: str) -> None:
    if not targets:
        typer.echo("callcenter admin: name what to unlock", err=True)
        raise typer.Exit(2)
    core = make_core()
    principal = staff_principal(core.sessions, by)
    service = Throttles(core.sessions, ThrottlePolicies.from_settings(core.settings), core.clock)
    for scope, subject in targets:
        try:
            result = service.unlock(principal, scope, subject, reason)
        except NotAllowed:
            typer.echo(f"callcenter admin: {by!r} is not an active administrator", err=True)
            raise typer.Exit(2) from None
        except UnlockRefused as exc:
            typer.echo(f"callcenter admin: {exc.code}", err=True)
            raise typer.Exit(2) from None
        b = result.before
        typer.echo(f"unlocked {scope.value} {b.subject}: {b.failures} failures"
                   + (f", backing off until {b.blocked_until.isoformat()}" if b.blocked_until else "")
                   + f" -> 0 (audit #{result.audit_id})")


@app.command("unlock-login")
def unlock_login(user: str = typer.Argument("", help="the staff username"),
                 ip: str = typer.Option("", "--ip", help="also (or only) clear this client IP's throttle"),
                 reason: str = REASON, by: str = BY) -> None:
    """Clear the failed-login throttle of USER (and/or of a client IP)."""
    _unlock([(Scope.LOGIN_USER, user)] * bool(user) + [(Scope.LOGIN_IP, ip)] * bool(ip), by, reason)


@app.command("unlock-ivr")
def unlock_ivr(account: str = typer.Argument("", help="the fund account number"),
               caller: str = typer.Option("", "--caller", help="also (or only) clear this caller ID's throttle"),
               reason: str = REASON, by: str = BY) -> None:
    """Clear the IVR PIN throttle of ACCOUNT (and/or of a caller ID)."""
    _unlock([(Scope.IVR_ACCOUNT, account)] * bool(account) + [(Scope.IVR_CALLER, caller)] * bool(caller), by, reason)


@app.command("throttles")
def list_throttles(by: str = BY) -> None:
    """The throttle counters that count now, those backing off first (accounts and caller IDs masked)."""
    core = make_core()
    principal = staff_principal(core.sessions, by)
    try:
        views = Throttles(core.sessions, ThrottlePolicies.from_settings(core.settings), core.clock).counting(principal)
    except NotAllowed:
        typer.echo(f"callcenter admin: {by!r} is not an active administrator", err=True)
        raise typer.Exit(2) from None
    for v in views:
        until = v.blocked_until.isoformat() if v.blocked_until else "-"
        typer.echo(f"{v.scope.value:12} {v.subject:24} {v.failures:>4} failures  backing off until {until}")
    typer.echo(f"{len(views)} counters")
