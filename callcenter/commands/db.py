from __future__ import annotations

import typer

from callcenter.commands.common import make_core
from callcenter.store.migrate import current, upgrade

app = typer.Typer(help="数据库 · database migrations (Alembic)", no_args_is_help=True)


@app.command("upgrade")
def upgrade_cmd(revision: str = typer.Argument("head", help="Alembic revision (default: head)")) -> None:
    """Migrate the configured database to REVISION (default: head)."""
    core = make_core()
    upgrade(core.database, revision)
    typer.echo(f"database {core.database.url.render_as_string(hide_password=True)} at revision {current(core.database)}")


@app.command("current")
def current_cmd() -> None:
    """The revision the configured database is at (empty: not migrated yet)."""
    core = make_core()
    typer.echo(current(core.database) or "empty")
