"""SQLAlchemy models, one module per area. Import this package to register every table on ``Base.metadata``."""

from callcenter.store.models.base import Base
from callcenter.store.models.core import (
    AuditLog,
    BankAccount,
    Client,
    FundAccount,
    Holding,
    Security,
    ServiceGroup,
    Staff,
)
from callcenter.store.models.web import AuthThrottle, WebSession
from callcenter.store.models import care as _care  # noqa: F401  (events, reminders, subscriptions, complaints, call-backs)
from callcenter.store.models.ivr import Bulletin, IvrSession, IvrStep, TwilioCallState, TwilioWebhook
from callcenter.store.models import dialer as _dialer  # noqa: F401  (campaigns, leads, DNC, attempts, agent sessions, callbacks)
from callcenter.store.models import desk as _desk  # noqa: F401  (agent desk, groups, KPIs, schedule claims)
from callcenter.store.models.commands import CallCommand
from callcenter.store.models.ledger import LedgerAccount, Posting, Transfer, JournalEntry
from callcenter.store.models.orders import (Appointment, AppointmentSlot, Order, OrderConfirmation, PriceAlert,
                                            SimFill, SimOrder, Trade)
from callcenter.store.models import recordings as _recordings  # noqa: F401  (call recordings, quality inspection)
from callcenter.store.models.admin import DeskCode
from callcenter.store.models.phones import AgentPhone

__all__ = [
    "AuditLog",
    "CallCommand",
    "DeskCode",
    "AgentPhone",
    "Base",
    "BankAccount",
    "Client",
    "FundAccount",
    "Holding",
    "JournalEntry",
    "Appointment",
    "AppointmentSlot",
    "Order",
    "OrderConfirmation",
    "PriceAlert",
    "SimFill",
    "SimOrder",
    "Trade",
    "LedgerAccount",
    "Posting",
    "Security",
    "ServiceGroup",
    "Staff",
    "Transfer",
    "AuthThrottle",
    "WebSession",
    "Bulletin",
    "IvrSession",
    "IvrStep",
    "TwilioCallState",
    "TwilioWebhook",
]
