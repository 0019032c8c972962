"""the simulated bank keeps its books in its own database: drop bank_sim_accounts and bank_sim_txns

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 22:30:00

The simulated depository bank is now a service of its own (``callcenter bank serve``) with its own database
(``bank_database_url``, var/bank.db by default). Its old tables in the engine's database held only simulator
data; they are dropped, not moved (a fresh ``callcenter run`` opens the demo accounts at the new bank).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.drop_table('bank_sim_txns')
    op.drop_table('bank_sim_accounts')


def downgrade() -> None:
    """Downgrade schema (empty tables: the books stay with the bank service)."""
    op.create_table('bank_sim_accounts',
    sa.Column('account_no', sa.String(length=32), nullable=False),
    sa.Column('balance_fen', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('account_no', name=op.f('pk_bank_sim_accounts'))
    )
    op.create_table('bank_sim_txns',
    sa.Column('reference', sa.String(length=24), nullable=False),
    sa.Column('account_no', sa.String(length=32), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status in ('applied','cancelled')", name=op.f('ck_bank_sim_txns_status')),
    sa.PrimaryKeyConstraint('reference', name=op.f('pk_bank_sim_txns'))
    )
