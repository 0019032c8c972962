"""appointment_slots.capacity: a slot's own capacity, set by a supervisor (0 closes it; NULL: the setting's)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 15:30:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0019'
down_revision: Union[str, Sequence[str], None] = '0018'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('appointment_slots') as batch:
        batch.add_column(sa.Column('capacity', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('appointment_slots') as batch:
        batch.drop_column('capacity')
