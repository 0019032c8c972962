"""the abandon budget per campaign and local day (abandon_days) and the dialler processes' leases (dialer_processes)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 01:30:00

``abandon_days`` starts empty: the figures count from this release on (the wall board's 30-day rate reads
it, so it shows only the days since the upgrade until 30 have passed).
"""
from typing import Sequence, Union

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

    op.create_table('dialer_processes',
    sa.Column('dialer_id', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('dialer_id', name=op.f('pk_dialer_processes'))
    )
    with op.batch_alter_table('dialer_processes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dialer_processes_lease_until'), ['lease_until'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('dialer_processes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dialer_processes_lease_until'))
    op.drop_table('dialer_processes')
    with op.batch_alter_table('abandon_days', schema=None) as batch_op:
        batch_op.drop_index('ix_abandon_days_day')
    op.drop_table('abandon_days')
