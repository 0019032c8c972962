"""recordings (metadata; the audio is in the recording store), quality inspection (qa_forms, qa_samples,
qa_evaluations), the staff role qa, the monthly QA score of each group's KPIs

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 01:57:07.516959
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0013'
down_revision: Union[str, Sequence[str], None] = '0012'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OLD_ROLES = "role in ('agent','supervisor','admin')"
NEW_ROLES = "role in ('agent','supervisor','admin','qa')"


def upgrade() -> None:
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_staff_role'), type_='check')
        batch_op.create_check_constraint('role', NEW_ROLES)

    op.create_table('qa_forms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('items', sa.JSON(), nullable=False),
    sa.Column('pass_pct', sa.Float(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['staff.id'], name=op.f('fk_qa_forms_created_by_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qa_forms'))
    )
    op.create_table('recordings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_ref', sa.String(length=64), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('attempt_id', sa.Integer(), nullable=True),
    sa.Column('desk_contact_id', sa.Integer(), nullable=True),
    sa.Column('ivr_session_id', sa.Integer(), nullable=True),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('client_id', sa.Integer(), nullable=True),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('duration_s', sa.Float(), nullable=False),
    sa.Column('paused_spans', sa.JSON(), nullable=False),
    sa.Column('storage_key', sa.String(length=255), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('retention_class', sa.String(length=10), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('legal_hold', sa.Boolean(), nullable=False),
    sa.Column('legal_hold_reason', sa.Text(), nullable=False),
    sa.Column('legal_hold_by', sa.Integer(), nullable=True),
    sa.Column('legal_hold_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('purged_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("retention_class in ('callback','complaint','order','ordinary')", name=op.f('ck_recordings_retention_class')),
    sa.CheckConstraint("state in ('recording','paused','stopped','failed','purged')", name=op.f('ck_recordings_state')),
    sa.ForeignKeyConstraint(['agent_id'], ['staff.id'], name=op.f('fk_recordings_agent_id_staff')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_recordings_client_id_clients')),
    sa.ForeignKeyConstraint(['legal_hold_by'], ['staff.id'], name=op.f('fk_recordings_legal_hold_by_staff')),
    sa.ForeignKeyConstraint(['parent_id'], ['recordings.id'], name=op.f('fk_recordings_parent_id_recordings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recordings')),
    sa.UniqueConstraint('storage_key', name=op.f('uq_recordings_storage_key'))
    )
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.create_index('ix_recordings_agent_started', ['agent_id', 'started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_recordings_attempt_id'), ['attempt_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_recordings_call_ref'), ['call_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_recordings_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_recordings_desk_contact_id'), ['desk_contact_id'], unique=False)
        batch_op.create_index('ix_recordings_state_expires', ['state', 'expires_at'], unique=False)

    op.create_table('qa_evaluations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recording_id', sa.Integer(), nullable=False),
    sa.Column('form_id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('evaluator_id', sa.Integer(), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answers', sa.JSON(), nullable=False),
    sa.Column('score_pct', sa.Float(), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('critical_failed', sa.Boolean(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('dispute_text', sa.Text(), nullable=False),
    sa.Column('disputed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution', sa.Text(), nullable=False),
    sa.Column('resolved_by', sa.Integer(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status in ('final','disputed','upheld','revised')", name=op.f('ck_qa_evaluations_status')),
    sa.ForeignKeyConstraint(['agent_id'], ['staff.id'], name=op.f('fk_qa_evaluations_agent_id_staff')),
    sa.ForeignKeyConstraint(['evaluator_id'], ['staff.id'], name=op.f('fk_qa_evaluations_evaluator_id_staff')),
    sa.ForeignKeyConstraint(['form_id'], ['qa_forms.id'], name=op.f('fk_qa_evaluations_form_id_qa_forms')),
    sa.ForeignKeyConstraint(['group_id'], ['service_groups.id'], name=op.f('fk_qa_evaluations_group_id_service_groups')),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], name=op.f('fk_qa_evaluations_recording_id_recordings')),
    sa.ForeignKeyConstraint(['resolved_by'], ['staff.id'], name=op.f('fk_qa_evaluations_resolved_by_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qa_evaluations'))
    )
    with op.batch_alter_table('qa_evaluations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qa_evaluations_agent_id'), ['agent_id'], unique=False)
        batch_op.create_index('ix_qa_evaluations_month_group', ['month', 'group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_qa_evaluations_recording_id'), ['recording_id'], unique=False)

    op.create_table('qa_samples',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recording_id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('week', sa.String(length=8), nullable=False),
    sa.Column('reason', sa.String(length=10), nullable=False),
    sa.Column('picked_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("reason in ('random','complaint')", name=op.f('ck_qa_samples_reason')),
    sa.ForeignKeyConstraint(['agent_id'], ['staff.id'], name=op.f('fk_qa_samples_agent_id_staff')),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], name=op.f('fk_qa_samples_recording_id_recordings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qa_samples')),
    sa.UniqueConstraint('recording_id', name=op.f('uq_qa_samples_recording_id'))
    )
    with op.batch_alter_table('qa_samples', schema=None) as batch_op:
        batch_op.create_index('ix_qa_samples_week_agent', ['week', 'agent_id'], unique=False)

    with op.batch_alter_table('group_kpis', schema=None) as batch_op:
        batch_op.add_column(sa.Column('qa_score_pct', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('qa_evaluations', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('group_kpis', schema=None) as batch_op:
        batch_op.alter_column('qa_evaluations', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('group_kpis', schema=None) as batch_op:
        batch_op.drop_column('qa_evaluations')
        batch_op.drop_column('qa_score_pct')

    with op.batch_alter_table('qa_samples', schema=None) as batch_op:
        batch_op.drop_index('ix_qa_samples_week_agent')

    op.drop_table('qa_samples')
    with op.batch_alter_table('qa_evaluations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qa_evaluations_recording_id'))
        batch_op.drop_index('ix_qa_evaluations_month_group')
        batch_op.drop_index(batch_op.f('ix_qa_evaluations_agent_id'))

    op.drop_table('qa_evaluations')
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.drop_index('ix_recordings_state_expires')
        batch_op.drop_index(batch_op.f('ix_recordings_desk_contact_id'))
        batch_op.drop_index(batch_op.f('ix_recordings_client_id'))
        batch_op.drop_index(batch_op.f('ix_recordings_call_ref'))
        batch_op.drop_index(batch_op.f('ix_recordings_attempt_id'))
        batch_op.drop_index('ix_recordings_agent_started')

    op.drop_table('recordings')
    op.drop_table('qa_forms')
    # QA staff have no role before this revision: they become inactive agents (no login) rather than vanish
    op.execute("UPDATE staff SET role = 'agent', active = false WHERE role = 'qa'")
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_staff_role'), type_='check')
        batch_op.create_check_constraint('role', OLD_ROLES)
