"""phone orders: orders, trades, the simulated exchange's book (sim_orders, sim_fills); ledger kinds stock, fees,
market

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 02:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0010'
down_revision: Union[str, Sequence[str], None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OLD_KINDS = "kind in ('fund','frozen','bank','transit','equity')"
NEW_KINDS = "kind in ('fund','frozen','bank','transit','equity','stock','fees','market')"


def upgrade() -> None:
    with op.batch_alter_table('ledger_accounts', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_ledger_accounts_kind'), type_='check')
        batch_op.create_check_constraint('kind', NEW_KINDS)

    op.create_table('orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('idempotency_scope', sa.String(length=64), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('reference', sa.String(length=24), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('fund_account_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=6), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('kind', sa.String(length=6), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('price_li', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=9), nullable=False),
    sa.Column('error_code', sa.String(length=40), nullable=False),
    sa.Column('filled_qty', sa.Integer(), nullable=False),
    sa.Column('filled_value_fen', sa.BigInteger(), nullable=False),
    sa.Column('fees_fen', sa.BigInteger(), nullable=False),
    sa.Column('cancelled_qty', sa.Integer(), nullable=False),
    sa.Column('frozen_fen', sa.BigInteger(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('caller_phone', sa.String(length=20), nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('settled', sa.Boolean(), nullable=False),
    sa.Column('response_json', sa.Text(), nullable=False),
    sa.CheckConstraint("side in ('buy','sell')", name=op.f('ck_orders_side')),
    sa.CheckConstraint("kind in ('limit','market')", name=op.f('ck_orders_kind')),
    sa.CheckConstraint("status in ('queued','pending','open','partial','filled','cancelled','rejected','expired')",
                       name=op.f('ck_orders_status')),
    sa.CheckConstraint('filled_qty >= 0 and cancelled_qty >= 0 and filled_qty + cancelled_qty <= quantity',
                       name=op.f('ck_orders_quantities')),
    sa.CheckConstraint('frozen_fen >= 0', name=op.f('ck_orders_frozen_nonneg')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_orders_client_id_clients')),
    sa.ForeignKeyConstraint(['fund_account_id'], ['fund_accounts.id'], name=op.f('fk_orders_fund_account_id_fund_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('idempotency_scope', 'idempotency_key', name=op.f('uq_orders_idempotency_scope')),
    sa.UniqueConstraint('reference', name=op.f('uq_orders_reference'))
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_account_day', ['fund_account_id', 'trade_date'], unique=False)
        batch_op.create_index('ix_orders_unsettled', ['settled', 'trade_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_client_id'), ['client_id'], unique=False)

    op.create_table('trades',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('exec_id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('fund_account_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=6), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('price_li', sa.BigInteger(), nullable=False),
    sa.Column('value_fen', sa.BigInteger(), nullable=False),
    sa.Column('fees_fen', sa.BigInteger(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('settled', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['fund_account_id'], ['fund_accounts.id'], name=op.f('fk_trades_fund_account_id_fund_accounts')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_trades_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trades')),
    sa.UniqueConstraint('exec_id', name=op.f('uq_trades_exec_id'))
    )
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.create_index('ix_trades_account_day', ['fund_account_id', 'trade_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_trades_order_id'), ['order_id'], unique=False)

    op.create_table('sim_orders',
    sa.Column('reference', sa.String(length=24), nullable=False),
    sa.Column('code', sa.String(length=6), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('kind', sa.String(length=6), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('price_li', sa.BigInteger(), nullable=False),
    sa.Column('filled', sa.Integer(), nullable=False),
    sa.Column('cancelled', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=9), nullable=False),
    sa.Column('reject_code', sa.String(length=40), nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('first_step', sa.Integer(), nullable=False),
    sa.Column('checked_step', sa.Integer(), nullable=False),
    sa.Column('placed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('reference', name=op.f('pk_sim_orders'))
    )
    with op.batch_alter_table('sim_orders', schema=None) as batch_op:
        batch_op.create_index('ix_sim_orders_status', ['status', 'trade_date'], unique=False)

    op.create_table('sim_fills',
    sa.Column('exec_id', sa.Integer(), nullable=False),
    sa.Column('reference', sa.String(length=24), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('price_li', sa.BigInteger(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['reference'], ['sim_orders.reference'], name=op.f('fk_sim_fills_reference_sim_orders')),
    sa.PrimaryKeyConstraint('exec_id', name=op.f('pk_sim_fills'))
    )
    with op.batch_alter_table('sim_fills', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sim_fills_reference'), ['reference'], unique=False)


def downgrade() -> None:
    op.drop_table('sim_fills')
    op.drop_table('sim_orders')
    op.drop_table('trades')
    op.drop_table('orders')
    with op.batch_alter_table('ledger_accounts', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_ledger_accounts_kind'), type_='check')
        batch_op.create_check_constraint('kind', OLD_KINDS)
