"""call commands: an agent's hang-up (later transfer, hold) waits in the database for the dialler that owns
the call (callcenter.services.call_commands)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 01:20:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0009'
down_revision: Union[str, Sequence[str], None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('call_commands',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('attempt_id', sa.Integer(), nullable=True),
    sa.Column('dialer_id', sa.String(length=64), nullable=False),
    sa.Column('requested_by', sa.Integer(), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('claimed_by', sa.String(length=64), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('result', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['requested_by'], ['staff.id'], name=op.f('fk_call_commands_requested_by_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_commands'))
    )
    with op.batch_alter_table('call_commands', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_call_commands_attempt_id'), ['attempt_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_call_commands_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index('ix_call_commands_state_requested', ['state', 'requested_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('call_commands', schema=None) as batch_op:
        batch_op.drop_index('ix_call_commands_state_requested')
        batch_op.drop_index(batch_op.f('ix_call_commands_contact_id'))
        batch_op.drop_index(batch_op.f('ix_call_commands_attempt_id'))
    op.drop_table('call_commands')
