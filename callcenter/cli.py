"""The ``callcenter`` command: one Typer app; each command group is one module of ``callcenter.commands``,
registered below by a plain import (add a group: a module with ``app``, and one line here)."""

from __future__ import annotations

import typer
from typer.core import TyperOption

from callcenter.commands import (
    admin,
    agi,
    bank,
    bench,
    campaign,
    complaints,
    custody,
    db,
    demo,
    dialer,
    events,
    ivr,
    leads,
    orders,
    prompts,
    reminders,
    scripts,
    run_command,
    serve,
)

_type_of = TyperOption.display_type_rich


def _no_bool_metavar(self: TyperOption, ctx: object) -> str | None:
    """A flag (``--json``, ``--help``) takes no value: its help shows no ``<bool>`` placeholder."""
    return None if self.is_flag else _type_of(self, ctx)  # type: ignore[arg-type]


TyperOption.display_type_rich = _no_bool_metavar  # type: ignore[method-assign]

app = typer.Typer(
    help="证券呼叫中心 · brokerage call-centre engine",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

GROUPS: dict[str, typer.Typer] = {
    "dialer": dialer.app, "campaign": campaign.app, "leads": leads.app, "reminders": reminders.app,
    "events": events.app, "complaints": complaints.app, "ivr": ivr.app, "prompts": prompts.app, "agi": agi.app,
    "scripts": scripts.app, "db": db.app, "demo": demo.app, "custody": custody.app, "bench": bench.app,
    "admin": admin.app, "bank": bank.app, "orders": orders.app,
}
for _name, _group in GROUPS.items():
    app.add_typer(_group, name=_name)
app.command("run")(serve.run)
app.command("serve")(serve.serve)


def main() -> None:
    run_command(app)


if __name__ == "__main__":
    main()
