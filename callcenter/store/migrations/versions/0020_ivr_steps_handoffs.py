"""ix_ivr_steps_handoffs: the wall board's service level reads the day's hand-off steps (a partial index on
ivr_steps (step, at) WHERE step IN ('handoff', 'agent_connected'); partial, so one session's step lookups keep
ix_ivr_steps_session_id)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 15:25:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0020'
down_revision: Union[str, Sequence[str], None] = '0019'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

WHERE = "step IN ('handoff', 'agent_connected')"


def upgrade() -> None:
    op.create_index('ix_ivr_steps_handoffs', 'ivr_steps', ['step', 'at'], unique=False,
                    sqlite_where=sa.text(WHERE), postgresql_where=sa.text(WHERE))


def downgrade() -> None:
    op.drop_index('ix_ivr_steps_handoffs', table_name='ivr_steps')
