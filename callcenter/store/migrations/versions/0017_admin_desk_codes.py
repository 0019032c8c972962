"""desk codes (dispositions and pause codes per campaign kind, seeded with the built-in ones), audit log indexes
for the administrators' viewer

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 05:20:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0017'
down_revision: Union[str, Sequence[str], None] = '0016'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# the built-in codes as they were before this revision (scripts' OUTCOMES, the desk's PAUSE_REASONS)
DISPOSITIONS = [
    ("appointment_booked", "已约见", "Appointment"), ("second_call", "约定二次电话", "Second call"),
    ("callback", "需回电", "Call back"), ("contact_left", "留下联系方式", "Contact left"),
    ("not_interested", "不感兴趣", "Not interested"), ("do_not_call", "不再来电", "Do not call"),
    ("complaint", "投诉", "Complaint"), ("wrong_number", "号码错误", "Wrong number"),
    ("completed", "已完成", "Completed"), ("reminded", "已提醒", "Reminded"),
]
PAUSES = [("break", "小休", "Break"), ("meal", "用餐", "Meal"), ("training", "培训", "Training"),
          ("meeting", "会议", "Meeting"), ("admin", "事务", "Admin")]


def upgrade() -> None:
    codes = op.create_table('desk_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code_type', sa.String(length=12), nullable=False),
    sa.Column('campaign_kind', sa.String(length=24), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('label_zh', sa.String(length=64), nullable=False),
    sa.Column('label_en', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.CheckConstraint("code_type in ('disposition','pause')", name=op.f('ck_desk_codes_code_type')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_desk_codes')),
    sa.UniqueConstraint('code_type', 'campaign_kind', 'code', name='uq_desk_codes_type_kind_code')
    )
    rows = [{"code_type": "disposition", "campaign_kind": "", "code": c, "label_zh": zh, "label_en": en,
             "position": i, "active": True} for i, (c, zh, en) in enumerate(DISPOSITIONS)]
    rows += [{"code_type": "pause", "campaign_kind": "", "code": c, "label_zh": zh, "label_en": en,
              "position": i, "active": True} for i, (c, zh, en) in enumerate(PAUSES)]
    op.bulk_insert(codes, rows)
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_at', ['at'], unique=False)
        batch_op.create_index('ix_audit_log_action_at', ['action', 'at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_action_at')
        batch_op.drop_index('ix_audit_log_at')
    op.drop_table('desk_codes')
