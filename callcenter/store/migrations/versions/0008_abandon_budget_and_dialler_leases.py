"""the abandon budget per campaign and local day (abandon_days) and the dialler processes' leases (dialer_processes)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 01:30:00

``abandon_days`` is filled from the attempts that ended in the last 31 days (by the same rule as
``callcenter.services.dialer.budget.counts_of``, local days in the settings time zone), so the pacers' 30-day budget
and the wall board's 30-day rate go on from the real history.
"""
from collections import Counter
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Sequence, Union
from zoneinfo import ZoneInfo

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('abandon_days',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('humans', sa.Integer(), nullable=False),
    sa.Column('abandoned', sa.Integer(), nullable=False),
    sa.Column('connected', sa.Integer(), nullable=False),
    sa.CheckConstraint('abandoned <= humans AND connected <= humans', name=op.f('ck_abandon_days_counts')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_abandon_days_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'day', name=op.f('pk_abandon_days'))
    )
    with op.batch_alter_table('abandon_days', schema=None) as batch_op:
        batch_op.create_index('ix_abandon_days_day', ['day'], unique=False)
    _backfill(_settings_tz())

    op.create_table('dialer_processes',
    sa.Column('dialer_id', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('dialer_id', name=op.f('pk_dialer_processes'))
    )
    with op.batch_alter_table('dialer_processes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dialer_processes_lease_until'), ['lease_until'], unique=False)


def _settings_tz() -> tzinfo:
    try:
        from callcenter.settings import load_settings

        return load_settings().tz
    except Exception:  # settings that do not load here (the migration does not need them otherwise)
        return ZoneInfo("Asia/Shanghai")


def _backfill(tz: tzinfo) -> None:
    bind = op.get_bind()
    attempts = sa.table(
        'attempts', sa.column('campaign_id', sa.Integer()), sa.column('ended_at', sa.DateTime(timezone=True)),
        sa.column('outcome', sa.String()), sa.column('abandoned', sa.Boolean()),
        sa.column('connected_at', sa.DateTime(timezone=True)), sa.column('talk_s', sa.Float()),
    )
    since = datetime.now(timezone.utc) - timedelta(days=31)
    if bind.dialect.name == "sqlite":
        since = since.replace(tzinfo=None)  # SQLite keeps UTC without an offset
    rows = bind.execute(sa.select(attempts).where(
        attempts.c.outcome.in_(('human', 'abandoned')), attempts.c.ended_at.is_not(None), attempts.c.ended_at >= since))
    counts: Counter[tuple[int, date, str]] = Counter()
    for row in rows:
        ended = row.ended_at if row.ended_at.tzinfo else row.ended_at.replace(tzinfo=timezone.utc)
        key = (row.campaign_id, ended.astimezone(tz).date())
        abandoned = bool(row.abandoned) or row.outcome == 'abandoned'
        counts[key + ('humans',)] += 1
        counts[key + ('abandoned',)] += abandoned
        counts[key + ('connected',)] += not abandoned and (row.connected_at is not None or row.talk_s is not None)
    days = sorted({(cid, day) for cid, day, _ in counts})
    if days:
        table = sa.table('abandon_days', sa.column('campaign_id', sa.Integer()), sa.column('day', sa.Date()),
                         sa.column('humans', sa.Integer()), sa.column('abandoned', sa.Integer()),
                         sa.column('connected', sa.Integer()))
        op.bulk_insert(table, [{'campaign_id': cid, 'day': day, 'humans': counts[(cid, day, 'humans')],
                                'abandoned': counts[(cid, day, 'abandoned')],
                                'connected': counts[(cid, day, 'connected')]} for cid, day in days])


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('dialer_processes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dialer_processes_lease_until'))
    op.drop_table('dialer_processes')
    with op.batch_alter_table('abandon_days', schema=None) as batch_op:
        batch_op.drop_index('ix_abandon_days_day')
    op.drop_table('abandon_days')
