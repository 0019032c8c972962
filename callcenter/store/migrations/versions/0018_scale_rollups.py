"""attempt_days: the reports' rollup per local day dialled, campaign, agent and disposition, filled from every
closed attempt of the history (``callcenter.services.dialer.rollups``; local days in the settings time zone)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 05:30:00

The backfill is one GROUP BY in the database: on PostgreSQL by the local date itself; on SQLite (which keeps UTC
as text) by the UTC hour, or minute in a zone off the whole hour, dated in Python (a few rows per hour).
"""
from collections import defaultdict
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Sequence, Union
from zoneinfo import ZoneInfo

from alembic import op
import sqlalchemy as sa


revision: str = '0018'
down_revision: Union[str, Sequence[str], None] = '0017'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('attempt_days',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('disposition', sa.String(length=32), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('contacts', sa.Integer(), nullable=False),
    sa.Column('talk_s', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_attempt_days_campaign_id_campaigns'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('day', 'campaign_id', 'agent_id', 'disposition', name=op.f('pk_attempt_days'))
    )
    op.create_index('ix_attempt_days_campaign', 'attempt_days', ['campaign_id', 'day'], unique=False)
    backfill(op.get_bind(), _settings_tz())


def downgrade() -> None:
    op.drop_index('ix_attempt_days_campaign', table_name='attempt_days')
    op.drop_table('attempt_days')


def _settings_tz() -> tzinfo:
    try:
        from callcenter.settings import load_settings

        return load_settings().tz
    except Exception:  # settings that do not load here (the migration does not need them otherwise)
        return ZoneInfo("Asia/Shanghai")


def backfill(bind: sa.Connection, tz: tzinfo) -> None:
    """Fill ``attempt_days`` from the closed attempts (as ``rollups.add_share`` counts each; the table empty)."""
    pg = bind.dialect.name == "postgresql"
    talk = "trunc(talk_s)" if pg else "CAST(talk_s AS INTEGER)"
    shares = (f"count(*), sum(CASE WHEN connected_at IS NOT NULL THEN 1 ELSE 0 END), coalesce(sum({talk}), 0) "
              "FROM attempts WHERE ended_at IS NOT NULL")
    rest = "campaign_id, coalesce(agent_id, 0), coalesce(disposition, '')"
    if pg:
        name = getattr(tz, "key", None) or "UTC"
        bind.execute(sa.text(
            f"INSERT INTO attempt_days (day, campaign_id, agent_id, disposition, attempts, contacts, talk_s) "
            f"SELECT (dialled_at AT TIME ZONE :tz)::date, {rest}, {shares} GROUP BY 1, 2, 3, 4"), {"tz": name})
        return
    probe = [datetime(2026, m, 1, tzinfo=timezone.utc) for m in (1, 7)]
    whole_hours = all((tz.utcoffset(at) or timedelta()) % timedelta(hours=1) == timedelta() for at in probe)
    slot = f"substr(dialled_at, 1, {13 if whole_hours else 16})"
    rows: dict[tuple[object, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
    for at, campaign_id, agent_id, disposition, n, contacts, talk_s in bind.execute(sa.text(
            f"SELECT {slot}, {rest}, {shares} GROUP BY 1, 2, 3, 4")):
        utc = datetime.strptime(at, "%Y-%m-%d %H" if len(at) == 13 else "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)
        r = rows[(utc.astimezone(tz).date(), campaign_id, agent_id, disposition)]
        r[0] += int(n)
        r[1] += int(contacts or 0)
        r[2] += int(talk_s or 0)
    if rows:
        bind.execute(sa.text("INSERT INTO attempt_days (day, campaign_id, agent_id, disposition, attempts, contacts, "
                             "talk_s) VALUES (:day, :c, :a, :d, :n, :k, :t)"),
                     [{"day": day, "c": c, "a": a, "d": d, "n": n, "k": k, "t": t_}
                      for (day, c, a, d), (n, k, t_) in rows.items()])
