"""auth throttles: failed logins and PINs per account and per source (replaces login_failures and the
fund_accounts IVR lockout columns)

Staff login counters are carried over; the IVR lockout counters are transient (at most 30 minutes) and start
again from zero.

Revision ID: 0005
Revises: 0004
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('auth_throttles',
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("scope in ('login_user','login_ip','ivr_account','ivr_caller')",
                       name=op.f('ck_auth_throttles_scope')),
    sa.PrimaryKeyConstraint('scope', 'subject', name=op.f('pk_auth_throttles'))
    )
    with op.batch_alter_table('auth_throttles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auth_throttles_last_failure_at'), ['last_failure_at'], unique=False)
    op.execute("INSERT INTO auth_throttles (scope, subject, failures, last_failure_at) "
               "SELECT 'login_user', username, failures, last_failure_at FROM login_failures")
    op.drop_table('login_failures')
    with op.batch_alter_table('fund_accounts', schema=None) as batch_op:
        batch_op.drop_column('ivr_locked_until')
        batch_op.drop_column('ivr_failures')


def downgrade() -> None:
    with op.batch_alter_table('fund_accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ivr_failures', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('ivr_locked_until', sa.DateTime(timezone=True), nullable=True))
    op.create_table('login_failures',
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('username', name=op.f('pk_login_failures'))
    )
    op.execute("INSERT INTO login_failures (username, failures, last_failure_at) "
               "SELECT subject, failures, last_failure_at FROM auth_throttles "
               "WHERE scope = 'login_user' AND last_failure_at IS NOT NULL")
    with op.batch_alter_table('auth_throttles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auth_throttles_last_failure_at'))
    op.drop_table('auth_throttles')
