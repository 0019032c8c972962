"""call recording on the telephony: why each stretch of a recording is paused or held (recordings.marks), the
recording each regulatory call-back (回访) was made on (care_callbacks.recording_id)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 05:40:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0016'
down_revision: Union[str, Sequence[str], None] = '0015'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('marks', sa.JSON(), nullable=False, server_default='[]'))
    with op.batch_alter_table('care_callbacks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recording_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(op.f('fk_care_callbacks_recording_id_recordings'), 'recordings',
                                    ['recording_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('care_callbacks', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('fk_care_callbacks_recording_id_recordings'), type_='foreignkey')
        batch_op.drop_column('recording_id')
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.drop_column('marks')
