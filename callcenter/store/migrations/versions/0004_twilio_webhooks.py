"""twilio webhooks claimed in the database (hardening finding 9: de-duplication across web processes)

Revision ID: 0004
Revises: 0003
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('twilio_webhooks',
    sa.Column('call_sid', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('token', sa.String(length=128), nullable=True),
    sa.Column('response', sa.Text(), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('call_sid', 'key', name=op.f('pk_twilio_webhooks'))
    )
    with op.batch_alter_table('twilio_webhooks', schema=None) as batch_op:
        batch_op.create_index('ix_twilio_webhooks_token', ['call_sid', 'token'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('twilio_webhooks', schema=None) as batch_op:
        batch_op.drop_index('ix_twilio_webhooks_token')
    op.drop_table('twilio_webhooks')
