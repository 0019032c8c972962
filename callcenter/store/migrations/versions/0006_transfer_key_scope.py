"""transfers: idempotency keys scoped to the principal that sent them

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 22:10:00

A key was unique across all staff and calls, so one principal could replay another's transfer by sending its
key. Now (idempotency_scope, idempotency_key) is unique; existing rows get the scope of whoever made them.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_scope', sa.String(length=64), nullable=False, server_default=''))
    op.execute(
        "UPDATE transfers SET idempotency_scope = CASE"
        " WHEN staff_id IS NOT NULL THEN 'staff:' || CAST(staff_id AS VARCHAR(12))"
        " WHEN idempotency_key LIKE 'ivr:%' THEN 'client:' || CAST(client_id AS VARCHAR(12))"
        " ELSE 'back_office:' || channel END"
    )
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.alter_column('idempotency_scope', server_default=None)
        batch_op.drop_constraint(batch_op.f('uq_transfers_idempotency_key'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_transfers_idempotency_scope'),
                                          ['idempotency_scope', 'idempotency_key'])


def downgrade() -> None:
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_transfers_idempotency_scope'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_transfers_idempotency_key'), ['idempotency_key'])
        batch_op.drop_column('idempotency_scope')
