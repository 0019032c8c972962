"""indexes of the hot queries: the dialable leads (the hopper's claim, in its order), expired claims, open
attempts, attempts by day, open agent and IVR sessions

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 03:00:00

Partial indexes (PostgreSQL and SQLite): a query uses one when its WHERE repeats the index's predicate with
literal values (``callcenter.services.dialer.hopper.dialable_query``, ``Attempt.ended_at IS NULL``).
"""
from typing import Any, Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0012'
down_revision: Union[str, Sequence[str], None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

def _where(predicate: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(predicate), "postgresql_where": sa.text(predicate)}


def upgrade() -> None:
    # PostgreSQL sorts NULLs last in an ascending index unless told; SQLite sorts them first and refuses the words
    nulls_first = "next_attempt_at" if op.get_bind().dialect.name == "sqlite" else "next_attempt_at NULLS FIRST"
    op.execute(f"CREATE INDEX ix_leads_dialable ON leads (campaign_id, priority DESC, {nulls_first}, id) "
               "WHERE status IN ('new', 'retry')")
    op.create_index('ix_leads_in_flight', 'leads', ['campaign_id', 'claimed_until'],
                    **_where("status = 'in_progress'"))
    op.create_index('ix_attempts_open', 'attempts', ['campaign_id', 'dialled_at'], **_where("ended_at IS NULL"))
    op.create_index('ix_attempts_open_dialled', 'attempts', ['dialled_at'], **_where("ended_at IS NULL"))
    op.create_index('ix_attempts_dialled_campaign', 'attempts', ['dialled_at', 'campaign_id', 'connected_at'])
    op.create_index('ix_agent_sessions_open', 'agent_sessions', ['state'], **_where("ended_at IS NULL"))
    op.create_index('ix_ivr_sessions_open', 'ivr_sessions', ['handed_off'], **_where("ended_at IS NULL"))


def downgrade() -> None:
    op.drop_index('ix_ivr_sessions_open', table_name='ivr_sessions')
    op.drop_index('ix_agent_sessions_open', table_name='agent_sessions')
    op.drop_index('ix_attempts_dialled_campaign', table_name='attempts')
    op.drop_index('ix_attempts_open_dialled', table_name='attempts')
    op.drop_index('ix_attempts_open', table_name='attempts')
    op.drop_index('ix_leads_in_flight', table_name='leads')
    op.drop_index('ix_leads_dialable', table_name='leads')
