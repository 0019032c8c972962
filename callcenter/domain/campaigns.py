"""Pure rules of outbound campaigns: calling windows, do-not-call, retries, and two state machines.

Standard library only; time is always passed in (aware UTC datetimes), the trading calendar as a
``is_trading_day(date) -> bool`` function.

* Calling window: local hours ``[start, end)`` in the LEAD's time zone, on trading days, working days
  (Monday-Friday) or every day.
* A lead may be dialled when: its campaign is running, it is new or due for retry, it is not in flight
  (or its claim expired), it has attempts left, its number is on no DNC list, and its local time is in
  the window (``dial_refusal`` says why not).
* After an attempt: ``after_attempt`` gives the lead's next status and retry time.
* Campaign states: draft -> scheduled -> running <-> paused -> finished (``CAMPAIGN_TRANSITIONS``, the one
  table; its comment block says what each state means and why).
* Agent states: logged_out, ready, reserved, talking, wrap_up, paused(reason).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

IsTradingDay = Callable[[date], bool]

CALLING_DAYS = ("trading", "working", "every")
FINAL_LEAD_STATUSES = frozenset({"done", "dnc", "exhausted"})
DIALABLE_LEAD_STATUSES = frozenset({"new", "retry"})

# minutes before the next attempt, per outcome of the last one (a campaign overrides any of them)
DEFAULT_RETRY_MINUTES: dict[str, float] = {
    "busy": 10,
    "no_answer": 120,
    "machine": 240,
    "failed": 30,
    "abandoned": 60,
    "lost": 5,
    "skipped": 60,
}
# outcomes that never use up one of the lead's attempts
FREE_OUTCOMES = frozenset({"lost", "skipped"})


class RuleError(ValueError):
    """A campaign rule or a transition is not allowed."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RuleError(f"unknown time zone {name!r}") from exc


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise RuleError("now must be an aware datetime")
    return now


# --- calling window ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    start: time
    end: time
    days: str = "working"

    def __post_init__(self) -> None:
        if self.days not in CALLING_DAYS:
            raise RuleError(f"days must be one of {', '.join(CALLING_DAYS)}, got {self.days!r}")
        if not self.start < self.end:
            raise RuleError("the calling window must start before it ends (same local day)")


def day_allowed(day: date, days: str, is_trading_day: IsTradingDay) -> bool:
    if days == "every":
        return True
    if days == "working":
        return day.weekday() < 5
    if days == "trading":
        return is_trading_day(day)
    raise RuleError(f"unknown calling days {days!r}")


def in_window(now: datetime, tz: str, window: Window, is_trading_day: IsTradingDay) -> bool:
    local = _aware(now).astimezone(zone(tz))
    if not day_allowed(local.date(), window.days, is_trading_day):
        return False
    t = local.time().replace(tzinfo=None)
    return window.start <= t < window.end


def next_window_open(
    now: datetime, tz: str, window: Window, is_trading_day: IsTradingDay, horizon_days: int = 400
) -> datetime | None:
    """``now`` when inside the window, else the next opening (UTC); None when none within the horizon."""
    if in_window(now, tz, window, is_trading_day):
        return now
    z = zone(tz)
    local = _aware(now).astimezone(z)
    day = local.date()
    for _ in range(horizon_days + 1):
        if day_allowed(day, window.days, is_trading_day):
            opening = datetime.combine(day, window.start, z)
            # a wall time skipped by a DST jump normalises forward; always re-check it
            opening_utc = opening.astimezone(timezone.utc)
            if opening_utc > now and in_window(opening_utc, tz, window, is_trading_day):
                return opening_utc
        day += timedelta(days=1)
    return None


# --- do not call ---------------------------------------------------------------------------------


def on_dnc(phone: str, campaign_id: int, entries: Iterable[tuple[str, int | None]]) -> bool:
    """``entries``: (phone, campaign id or None for the global list)."""
    return any(p == phone and (c is None or c == campaign_id) for p, c in entries)


# --- may this lead be dialled now? ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeadFacts:
    phone: str
    status: str
    attempts: int
    timezone: str
    next_attempt_at: datetime | None = None
    claimed_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class CampaignRules:
    campaign_id: int
    state: str
    window: Window
    max_attempts: int
    retry_minutes: Mapping[str, float] | None = None

    def delay_for(self, outcome: str) -> timedelta:
        minutes = (self.retry_minutes or {}).get(outcome, DEFAULT_RETRY_MINUTES.get(outcome, 60))
        return timedelta(minutes=float(minutes))


def dial_refusal(
    lead: LeadFacts,
    rules: CampaignRules,
    now: datetime,
    dnc: Collection[tuple[str, int | None]],
    is_trading_day: IsTradingDay,
) -> str | None:
    """None when the lead may be dialled now, else the reason (a short key)."""
    _aware(now)
    if rules.state != "running":
        return "campaign_not_running"
    in_flight = lead.status == "in_progress" and (lead.claimed_until is None or lead.claimed_until > now)
    if in_flight:
        return "in_flight"
    if lead.status not in DIALABLE_LEAD_STATUSES and lead.status != "in_progress":
        return "final"
    if lead.attempts >= rules.max_attempts:
        return "no_attempts_left"
    if lead.next_attempt_at is not None and lead.next_attempt_at > now:
        return "not_due"
    if on_dnc(lead.phone, rules.campaign_id, dnc):
        return "dnc"
    if not in_window(now, lead.timezone, rules.window, is_trading_day):
        return "outside_window"
    return None


# --- after an attempt ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeadUpdate:
    status: str
    attempts: int
    next_attempt_at: datetime | None


def after_attempt(
    outcome: str,
    attempts_before: int,
    rules: CampaignRules,
    now: datetime,
    *,
    disposition: str | None = None,
) -> LeadUpdate:
    """The lead's next state once an attempt ended with ``outcome`` (an agent's disposition may refine it).

    A human connected to an agent finishes the lead, unless the disposition asks for a retry or DNC.
    ``lost`` (dialler crashed) and ``skipped`` (preview skip) do not use up an attempt.
    """
    _aware(now)
    attempts = attempts_before if outcome in FREE_OUTCOMES else attempts_before + 1
    if disposition == "dnc":
        return LeadUpdate("dnc", attempts, None)
    if outcome == "human" and disposition not in ("retry", "no_contact"):
        return LeadUpdate("done", attempts, None)
    if attempts >= rules.max_attempts:
        return LeadUpdate("exhausted", attempts, None)
    key = "no_answer" if outcome == "human" else outcome
    return LeadUpdate("retry", attempts, now + rules.delay_for(key))


# --- campaign state machine ----------------------------------------------------------------------
#
# The one life-cycle of a campaign; every writer (web pages, CLI, scheduler, dialler) goes through
# ``campaign_transition``, and ``dialer.service.apply_campaign_action`` is the one function that writes it.
#
#   draft      being built; no lead is dialled.
#   scheduled  not started yet, will start at ``scheduled_at`` (the dialler starts it when the time comes).
#   running    dialling inside its calling window.
#   paused     started, then stopped for a while (lunch, an incident, the scheduler's daily pause); it keeps
#              its leads, attempts and start time, and settings may be edited.
#   finished   for good: no action leaves it, no lead is added.
#
# Decisions a call centre relies on:
# * ``start`` on a paused campaign is ``resume`` (a daily "start at 09:30" job resumes yesterday's pause).
# * A started campaign is never ``scheduled`` again: "scheduled" means "not started yet". To continue a
#   paused campaign at a given time, schedule a start job (the scheduler's start then resumes it).
# * ``schedule`` on a scheduled campaign moves its start time; ``unschedule`` returns it to draft.
# * Asking for the state a campaign is already in (start a running one, pause a paused one, stop a
#   finished one) is granted without change, so a double click or a repeated scheduled job is harmless.
# * Everything else is refused with ``CampaignRefused``.

CAMPAIGN_STATES = ("draft", "scheduled", "running", "paused", "finished")
CAMPAIGN_ACTIONS = ("schedule", "unschedule", "start", "pause", "resume", "stop")

CAMPAIGN_TRANSITIONS: dict[tuple[str, str], str] = {
    ("draft", "schedule"): "scheduled",
    ("scheduled", "schedule"): "scheduled",  # a new start time
    ("scheduled", "unschedule"): "draft",
    ("draft", "unschedule"): "draft",
    ("draft", "start"): "running",
    ("scheduled", "start"): "running",
    ("paused", "start"): "running",  # = resume
    ("running", "start"): "running",
    ("running", "pause"): "paused",
    ("paused", "pause"): "paused",
    ("paused", "resume"): "running",
    ("running", "resume"): "running",
    ("draft", "stop"): "finished",
    ("scheduled", "stop"): "finished",
    ("running", "stop"): "finished",
    ("paused", "stop"): "finished",
    ("finished", "stop"): "finished",
}


class CampaignRefused(RuleError):
    """``action`` is not allowed on a campaign in ``state``."""

    def __init__(self, state: str, action: str) -> None:
        super().__init__(f"a {state} campaign cannot {action}")
        self.state = state
        self.action = action


def campaign_transition(state: str, action: str) -> str:
    """The state a campaign in ``state`` moves to on ``action``; ``CampaignRefused`` when not allowed."""
    try:
        return CAMPAIGN_TRANSITIONS[(state, action)]
    except KeyError:
        raise CampaignRefused(state, action) from None


def editable(state: str) -> bool:
    """Settings may change while not running (paused campaigns too, applied on resume)."""
    return state in ("draft", "scheduled", "paused")


# --- agent session state machine -----------------------------------------------------------------

AGENT_TRANSITIONS: dict[tuple[str, str], str] = {
    ("logged_out", "login"): "paused",
    ("paused", "ready"): "ready",
    ("wrap_up", "ready"): "ready",
    ("ready", "pause"): "paused",
    ("wrap_up", "pause"): "paused",
    ("paused", "pause"): "paused",  # change of reason
    ("ready", "reserve"): "reserved",
    ("reserved", "connect"): "talking",
    ("reserved", "release"): "ready",  # the call failed before it reached the agent / preview skipped
    ("talking", "hangup"): "wrap_up",
    ("ready", "logout"): "logged_out",
    ("paused", "logout"): "logged_out",
    ("wrap_up", "logout"): "logged_out",
    ("reserved", "logout"): "logged_out",
    ("talking", "logout"): "logged_out",  # phone leg gone mid-call
}


def agent_transition(state: str, event: str) -> str:
    try:
        return AGENT_TRANSITIONS[(state, event)]
    except KeyError:
        raise RuleError(f"an agent in state {state} cannot {event}") from None


@dataclass(frozen=True, slots=True)
class AgentFacts:
    staff_id: int
    state: str
    since: datetime


def longest_idle(agents: Iterable[AgentFacts], only: int | None = None) -> int | None:
    """The ready agent idle the longest (ties: lowest staff id); ``only`` restricts to one agent."""
    best: AgentFacts | None = None
    for a in agents:
        if a.state != "ready" or (only is not None and a.staff_id != only):
            continue
        if best is None or (a.since, a.staff_id) < (best.since, best.staff_id):
            best = a
    return best.staff_id if best else None
