"""call controls: the arguments of a call command (target agent, DTMF digits, IVR menu, supervisor phone) as JSON

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 05:30:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0014'
down_revision: Union[str, Sequence[str], None] = '0013'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('call_commands', schema=None) as batch_op:
        batch_op.add_column(sa.Column('args', sa.Text(), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('call_commands', schema=None) as batch_op:
        batch_op.drop_column('args')
