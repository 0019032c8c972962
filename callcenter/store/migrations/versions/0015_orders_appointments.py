"""预约服务 appointments (appointments, appointment_slots: the per-slot count a booking locks) and the hotline
order-confirmation records (order_confirmations, retention class order)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 05:10:22.212961

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0015'
down_revision: Union[str, Sequence[str], None] = '0014'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('appointment_slots',
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('slot_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('booked', sa.Integer(), nullable=False),
    sa.CheckConstraint('booked >= 0', name=op.f('ck_appointment_slots_booked_nonneg')),
    sa.PrimaryKeyConstraint('kind', 'slot_start', name=op.f('pk_appointment_slots'))
    )
    op.create_table('appointments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('service_group_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('slot_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('slot_day', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=9), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('idempotency_scope', sa.String(length=64), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('booked_by', sa.Integer(), nullable=True),
    sa.Column('ivr_session_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind in ('group_callback','analyst_callback','branch_visit')", name=op.f('ck_appointments_kind')),
    sa.CheckConstraint("status in ('booked','cancelled','done','missed')", name=op.f('ck_appointments_status')),
    sa.ForeignKeyConstraint(['booked_by'], ['staff.id'], name=op.f('fk_appointments_booked_by_staff')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_appointments_client_id_clients')),
    sa.ForeignKeyConstraint(['service_group_id'], ['service_groups.id'], name=op.f('fk_appointments_service_group_id_service_groups')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appointments')),
    sa.UniqueConstraint('idempotency_scope', 'idempotency_key', name=op.f('uq_appointments_idempotency_scope'))
    )
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appointments_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_appointments_service_group_id'), ['service_group_id'], unique=False)
        batch_op.create_index('ix_appointments_slot', ['slot_start', 'kind'], unique=False)

    op.create_table('order_confirmations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('ivr_session_id', sa.Integer(), nullable=True),
    sa.Column('recording_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('caller_masked', sa.String(length=32), nullable=False),
    sa.Column('lang', sa.String(length=8), nullable=False),
    sa.Column('code', sa.String(length=6), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('kind', sa.String(length=6), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('price_li', sa.BigInteger(), nullable=False),
    sa.Column('frozen_fen', sa.BigInteger(), nullable=False),
    sa.Column('fees_fen', sa.BigInteger(), nullable=False),
    sa.Column('heard', sa.Text(), nullable=False),
    sa.Column('outcome', sa.String(length=9), nullable=False),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retention_class', sa.String(length=10), nullable=False),
    sa.Column('keep_until', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_order_confirmations_client_id_clients')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_confirmations_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_confirmations')),
    sa.UniqueConstraint('order_id', name=op.f('uq_order_confirmations_order_id'))
    )
    with op.batch_alter_table('order_confirmations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_confirmations_call_id'), ['call_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_order_confirmations_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_order_confirmations_ivr_session_id'), ['ivr_session_id'], unique=False)



def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('order_confirmations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_confirmations_ivr_session_id'))
        batch_op.drop_index(batch_op.f('ix_order_confirmations_client_id'))
        batch_op.drop_index(batch_op.f('ix_order_confirmations_call_id'))

    op.drop_table('order_confirmations')
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_index('ix_appointments_slot')
        batch_op.drop_index(batch_op.f('ix_appointments_service_group_id'))
        batch_op.drop_index(batch_op.f('ix_appointments_client_id'))

    op.drop_table('appointments')
    op.drop_table('appointment_slots')
