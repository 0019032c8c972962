"""agent_phones: agents' PJSIP endpoints (a desk SIP phone or the browser softphone) with their digest HA1

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02 18:30:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa



revision: str = '0021'
down_revision: Union[str, Sequence[str], None] = '0020'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('agent_phones',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('endpoint', sa.String(length=40), nullable=False),
    sa.Column('realm', sa.String(length=64), nullable=False),
    sa.Column('ha1', sa.String(length=32), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('registered_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('registered_by', sa.String(length=8), nullable=False),
    sa.CheckConstraint("kind in ('webrtc','sip')", name=op.f('ck_agent_phones_kind')),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_agent_phones_staff_id_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_phones')),
    sa.UniqueConstraint('endpoint', name='uq_agent_phones_endpoint'),
    sa.UniqueConstraint('staff_id', 'kind', name='uq_agent_phones_staff_kind')
    )


def downgrade() -> None:
    op.drop_table('agent_phones')
