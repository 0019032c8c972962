"""``callcenter admin``: administrators' commands run on the server — unlock a staff login or an IVR account
throttle (with a reason, audit-logged under the administrator named by ``--by``), list the throttles."""

from __future__ import annotations

import typer

from callcenter.commands.common import LANG, Lang, local_time, make_core, print_table
from callcenter.i18n import t
from callcenter.services.staff_sessions import staff_principal
from callcenter.services.throttles import NotAllowed, Scope, ThrottlePolicies, Throttles, UnlockRefused

app = typer.Typer(help="管理员 · administrators: login and IVR throttles", no_args_is_help=True)

BY = typer.Option(..., "--by", help="the administrator's username (recorded in the audit log)")
REASON = typer.Option(..., "--reason", help="why (recorded in the audit log)")


def _unlock(targets: list[tuple[Scope, str]], by: str, reason: str, lang: str) -> None:
    if not targets:
        typer.echo(t("admin.cli.nothing", lang), err=True)
        raise typer.Exit(2)
    core = make_core()
    principal = staff_principal(core.sessions, by)
    service = Throttles(core.sessions, ThrottlePolicies.from_settings(core.settings), core.clock)
    for scope, subject in targets:
        try:
            result = service.unlock(principal, scope, subject, reason)
        except NotAllowed:
            typer.echo(t("admin.cli.not_admin", lang, by=by), err=True)
            raise typer.Exit(2) from None
        except UnlockRefused as exc:
            typer.echo(t(f"api.{exc.code}", lang), err=True)
            raise typer.Exit(2) from None
        b = result.before
        typer.echo(t("admin.cli.unlocked", lang, scope=t(f"admin.scopes.{scope.value}", lang), subject=b.subject,
                     failures=b.failures, audit=result.audit_id))


@app.command("unlock-login")
def unlock_login(user: str = typer.Argument("", help="the staff username"),
                 ip: str = typer.Option("", "--ip", help="also (or only) clear this client IP's throttle"),
                 reason: str = REASON, by: str = BY, lang: Lang = LANG) -> None:
    """Clear the failed-login throttle of USER (and/or of a client IP)."""
    _unlock([(Scope.LOGIN_USER, user)] * bool(user) + [(Scope.LOGIN_IP, ip)] * bool(ip), by, reason, lang)


@app.command("unlock-ivr")
def unlock_ivr(account: str = typer.Argument("", help="the fund account number"),
               caller: str = typer.Option("", "--caller", help="also (or only) clear this caller ID's throttle"),
               reason: str = REASON, by: str = BY, lang: Lang = LANG) -> None:
    """Clear the IVR PIN throttle of ACCOUNT (and/or of a caller ID)."""
    _unlock([(Scope.IVR_ACCOUNT, account)] * bool(account) + [(Scope.IVR_CALLER, caller)] * bool(caller), by, reason,
            lang)


@app.command("throttles")
def list_throttles(by: str = BY, lang: Lang = LANG) -> None:
    """The throttle counters that count now, those backing off first (accounts and caller IDs masked)."""
    core = make_core()
    principal = staff_principal(core.sessions, by)
    try:
        views = Throttles(core.sessions, ThrottlePolicies.from_settings(core.settings), core.clock).counting(principal)
    except NotAllowed:
        typer.echo(t("admin.cli.not_admin", lang, by=by), err=True)
        raise typer.Exit(2) from None
    tz = core.settings.tz
    print_table(lang, ("scope", "subject", "failures", "until"),
                [(t(f"admin.scopes.{v.scope.value}", lang), v.subject, v.failures,
                  local_time(v.blocked_until, tz) if v.blocked_until else t("admin.locks.not_blocked", lang))
                 for v in views])
