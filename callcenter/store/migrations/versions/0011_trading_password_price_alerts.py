"""phone orders on the hotline: fund_accounts.trading_pwd_hash (交易密码), the trading_pwd throttle scope, and
price_alerts (行情报警)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 03:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0011'
down_revision: Union[str, Sequence[str], None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OLD_SCOPES = "scope in ('login_user','login_ip','ivr_account','ivr_caller')"
NEW_SCOPES = "scope in ('login_user','login_ip','ivr_account','ivr_caller','trading_pwd')"


def upgrade() -> None:
    with op.batch_alter_table('fund_accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trading_pwd_hash', sa.String(length=255), nullable=False, server_default=''))
    with op.batch_alter_table('auth_throttles', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_auth_throttles_scope'), type_='check')
        batch_op.create_check_constraint('scope', NEW_SCOPES)
    op.create_table('price_alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=6), nullable=False),
    sa.Column('direction', sa.String(length=5), nullable=False),
    sa.Column('threshold_li', sa.BigInteger(), nullable=False),
    sa.Column('armed', sa.Boolean(), nullable=False),
    sa.Column('fired_count', sa.Integer(), nullable=False),
    sa.Column('last_fired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("direction in ('above','below')", name=op.f('ck_price_alerts_direction')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_price_alerts_client_id_clients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_price_alerts')),
    sa.UniqueConstraint('client_id', 'code', 'direction', name=op.f('uq_price_alerts_client_id'))
    )
    with op.batch_alter_table('price_alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_price_alerts_client_id'), ['client_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('price_alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_price_alerts_client_id'))
    op.drop_table('price_alerts')
    op.execute("DELETE FROM auth_throttles WHERE scope = 'trading_pwd'")
    with op.batch_alter_table('auth_throttles', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_auth_throttles_scope'), type_='check')
        batch_op.create_check_constraint('scope', OLD_SCOPES)
    with op.batch_alter_table('fund_accounts', schema=None) as batch_op:
        batch_op.drop_column('trading_pwd_hash')
