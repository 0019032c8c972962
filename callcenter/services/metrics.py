"""The engine's Prometheus metrics (``GET /metrics``, ``callcenter/web/routes/metrics.py``): one registry per App.

Every App has its own ``CollectorRegistry`` (``Metrics.registry``); nothing is registered in
``prometheus_client``'s global registry, so tests can build many apps and two apps never mix their numbers.

Three kinds of figures:

* read from the database at scrape time (``DatabaseCollector``), so they are right whichever engine process
  did the work: calls in flight and the dial level per campaign, today's abandon rate per campaign (in the
  settings' time zone), agents by state;
* read from this process at scrape time through gauge sources (``Metrics.add_gauge_source``): the telephony
  connection per server (the dialler part registers its backend; without one the dialler's state on the part
  board), SSE subscriptions per topic kind (the event bus);
* counted in this process as things happen, through plain callbacks the use cases are given at construction
  (they never import prometheus): FastAGI sessions (``agi_session``), transfers by outcome and their latency
  (``transfer_observed``), the event loop's lag (``watch_loop_lag``).

A figure that cannot be read (the database is down, a source fails) is left out of that scrape and logged; the
scrape itself still answers (``callcenter_metrics_database_up`` says whether the database figures are there).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.domain.custody import TRANSFER_KINDS
from callcenter.store.db import run_in_transaction
from callcenter.store.models.dialer import AGENT_STATES, AgentSession, Attempt, Campaign

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LOOP_LAG_INTERVAL_S = 0.25
# agents that count for the dial level: waiting for a call or on one
DIALLING_AGENT_STATES = ("ready", "talking")
TRANSFER_OUTCOMES = ("done", "pending", "rejected", "failed", "voided", "replayed", "conflict", "error")

Labels = tuple[str, ...]
GaugeSource = Callable[[], Mapping[Labels, float]]


def abandon_today(s: Session, now: datetime, tz: ZoneInfo) -> dict[int, tuple[int, int]]:
    """``{campaign id: (humans, abandoned)}`` among the attempts dialled today (local day of ``tz``): a human
    answered (outcome human or abandoned), and of those the ones no agent took in time (``Attempt.abandoned``),
    as the wall board counts them. The one place the abandon figures come from (a budget table may replace it)."""
    midnight = datetime.combine(now.astimezone(tz).date(), time(0), tz)
    rows = s.execute(select(Attempt.campaign_id,
                            func.sum(case((Attempt.outcome.in_(("human", "abandoned")), 1), else_=0)),
                            func.sum(case((Attempt.abandoned.is_(True), 1), else_=0)))
                     .where(Attempt.dialled_at >= midnight, Attempt.dialled_at < midnight + timedelta(days=1))
                     .group_by(Attempt.campaign_id)).all()
    return {int(cid): (int(humans or 0), int(abandoned or 0)) for cid, humans, abandoned in rows}


@dataclass(frozen=True)
class DialerFigures:
    in_flight: dict[int, int]  # campaign -> open attempts (no end yet)
    agents_dialling: dict[int, int]  # campaign -> agents ready or talking on it
    agents_by_state: dict[str, int]  # every open agent session, by state
    abandon: dict[int, tuple[int, int]]  # campaign -> (humans, abandoned) today
    running: set[int]  # running campaigns (shown with 0 when idle)

    def campaigns(self) -> list[int]:
        return sorted(set(self.in_flight) | set(self.agents_dialling) | set(self.abandon) | self.running)

    def dial_level(self, campaign: int) -> float:
        agents = self.agents_dialling.get(campaign, 0)
        return self.in_flight.get(campaign, 0) / agents if agents else 0.0


def in_flight_query() -> Select[int, int]:
    """Open attempts per campaign, on the partial index ``ix_attempts_open`` (only the open attempts are in it)."""
    return select(Attempt.campaign_id, func.count()).where(Attempt.ended_at.is_(None)).group_by(Attempt.campaign_id)


def dialer_figures(s: Session, now: datetime, tz: ZoneInfo) -> DialerFigures:
    in_flight = s.execute(in_flight_query()).all()
    sessions = s.execute(select(AgentSession.campaign_id, AgentSession.state, func.count())
                         .where(AgentSession.ended_at.is_(None))
                         .group_by(AgentSession.campaign_id, AgentSession.state)).all()
    by_state: Tally[str] = Tally()
    dialling: Tally[int] = Tally()
    for campaign, state, n in sessions:
        by_state[state] += int(n)
        if campaign is not None and state in DIALLING_AGENT_STATES:
            dialling[int(campaign)] += int(n)
    running = set(s.execute(select(Campaign.id).where(Campaign.state == "running")).scalars())
    return DialerFigures({int(c): int(n) for c, n in in_flight}, dict(dialling), dict(by_state),
                         abandon_today(s, now, tz), running)


class DatabaseCollector(Collector):
    """The dialler's figures, queried at every scrape (one short transaction)."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime], tz: ZoneInfo) -> None:
        self._sessions = sessions
        self._clock = clock
        self._tz = tz

    def describe(self) -> Iterable[Metric]:
        return []  # the families are only known at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("callcenter_metrics_database_up",
                               "1 when the database figures of this scrape could be read, else 0")
        try:
            figures = run_in_transaction(self._sessions, lambda s: dialer_figures(s, self._clock(), self._tz),
                                         attempts=2)
        except Exception as exc:  # noqa: BLE001 - a scrape must answer while the database is down
            log.warning("metrics: database figures not read: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        calls = GaugeMetricFamily("callcenter_calls_in_flight", "Dial attempts not ended yet, per campaign",
                                  labels=["campaign"])
        level = GaugeMetricFamily("callcenter_dial_level",
                                  "Calls in flight per agent ready or talking on the campaign (0 without agents)",
                                  labels=["campaign"])
        rate = GaugeMetricFamily("callcenter_abandon_rate_today",
                                 "Abandoned / answered by a human among today's attempts (local day), per campaign",
                                 labels=["campaign"])
        humans = GaugeMetricFamily("callcenter_calls_human_today",
                                   "Today's attempts answered by a human (local day), per campaign", labels=["campaign"])
        abandoned = GaugeMetricFamily("callcenter_calls_abandoned_today",
                                      "Today's attempts abandoned (local day), per campaign", labels=["campaign"])
        for campaign in figures.campaigns():
            label = [str(campaign)]
            h, a = figures.abandon.get(campaign, (0, 0))
            calls.add_metric(label, figures.in_flight.get(campaign, 0))
            level.add_metric(label, figures.dial_level(campaign))
            rate.add_metric(label, a / h if h else 0.0)
            humans.add_metric(label, h)
            abandoned.add_metric(label, a)
        agents = GaugeMetricFamily("callcenter_agents", "Open agent sessions by state", labels=["state"])
        for state in AGENT_STATES:
            agents.add_metric([state], figures.agents_by_state.get(state, 0))
        for state in sorted(set(figures.agents_by_state) - set(AGENT_STATES)):
            agents.add_metric([state], figures.agents_by_state[state])
        yield from (calls, level, rate, humans, abandoned, agents)


@dataclass(frozen=True)
class _Source:
    documentation: str
    labelnames: Labels
    read: GaugeSource


class SourcesCollector(Collector):
    """Gauges whose values a part of this process gives at scrape time (``Metrics.add_gauge_source``)."""

    def __init__(self) -> None:
        self.sources: dict[str, _Source] = {}

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        for name, source in list(self.sources.items()):
            try:
                values = dict(source.read())
            except Exception:  # noqa: BLE001 - one broken source must not break the scrape
                log.exception("metrics: gauge source %s failed", name)
                continue
            family = GaugeMetricFamily(name, source.documentation, labels=list(source.labelnames))
            for labels, value in sorted(values.items()):
                family.add_metric(list(labels), value)
            yield family


class Metrics:
    """One App's metrics: its registry, the collectors, and the callbacks the parts report through."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime], tz: ZoneInfo) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(DatabaseCollector(sessions, clock, tz))
        self._sources = SourcesCollector()
        self.registry.register(self._sources)
        self._telephony_fallback: GaugeSource = dict
        self._telephony: object = None
        r = self.registry
        self.agi_in_progress = Gauge("callcenter_agi_sessions_in_progress", "FastAGI sessions in progress",
                                     registry=r)
        self.agi_sessions = Counter("callcenter_agi_sessions", "FastAGI sessions accepted", registry=r)
        self.transfers = Counter("callcenter_transfers", "Transfer requests by kind and outcome",
                                 ["kind", "outcome"], registry=r)
        self.transfer_seconds = Histogram("callcenter_transfer_duration_seconds",
                                          "Time to answer a transfer request (rules, bank, journal)", ["kind"],
                                          buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                                          registry=r)
        self.loop_lag = Gauge("callcenter_event_loop_lag_seconds",
                              "How late the event loop woke from its last 0.25 s sleep", registry=r)
        self.loop_lag_hist = Histogram("callcenter_event_loop_lag_distribution_seconds",
                                       "How late the event loop woke from each 0.25 s sleep",
                                       buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                                       registry=r)

    # --- gauge sources -----------------------------------------------------------------------------
    def add_gauge_source(self, name: str, documentation: str, labelnames: Iterable[str],
                         read: GaugeSource) -> None:
        """Gauge ``name`` is ``read()`` at every scrape: ``{label values: value}``. Adding a name again replaces
        its source (a part that restarts registers its new backend)."""
        self._sources.sources[name] = _Source(documentation, tuple(labelnames), read)

    def remove_gauge_source(self, name: str) -> None:
        self._sources.sources.pop(name, None)

    def watch_bus(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """SSE subscriptions per topic kind, from ``EventBus.subscriber_counts``."""
        self.add_gauge_source(SSE_GAUGE, "SSE subscriptions by topic kind (agent, wallboard, calls)", ["topic"],
                              sse_subscribers_source(counts))

    def watch_parts(self, snapshot: Callable[[], Mapping[str, Mapping[str, object]]], backend: str) -> None:
        """Until a backend that knows its servers is watched: the dialler part's state as the connection."""
        self._telephony_fallback = part_state_source(snapshot, "dialler", backend)
        self.watch_telephony(None)

    def watch_telephony(self, telephony: object) -> None:
        """The dialler's telephony backend (called at each start of the part): per AMI server whether it is
        logged in; a backend without servers (simulated, Twilio): the dialler part's state."""
        self._telephony = telephony
        self.add_gauge_source(TELEPHONY_GAUGE, TELEPHONY_DOC, ["server"],
                              telephony_source(telephony, self._telephony_fallback))

    def telephony_closed(self, telephony: object) -> None:
        """The dialler closed ``telephony``: its servers are down (0) until the part starts a new backend. (An
        ``AmiClient`` still says ``connected`` once closed, so the closing is told here.)"""
        if telephony is not self._telephony or getattr(telephony, "clients", None) is None:
            return
        servers: dict[Labels, float] = {(str(c.name),): 0.0 for c in getattr(telephony, "clients")}
        self.add_gauge_source(TELEPHONY_GAUGE, TELEPHONY_DOC, ["server"], lambda: servers)

    # --- callbacks given to the use cases -------------------------------------------------------------
    def agi_session(self, delta: int) -> None:
        """A FastAGI session began (+1) or ended (-1)."""
        if delta > 0:
            self.agi_sessions.inc(delta)
        self.agi_in_progress.inc(delta)

    def transfer_observed(self, kind: str, outcome: str, seconds: float) -> None:
        """One transfer request answered (``TransferService(observer=...)``); unknown kinds (the request's own
        text) are counted as "other" so a client cannot grow the label set."""
        kind = kind if kind in TRANSFER_KINDS else "other"
        outcome = outcome if outcome in TRANSFER_OUTCOMES else "error"
        self.transfers.labels(kind, outcome).inc()
        self.transfer_seconds.labels(kind).observe(max(0.0, seconds))

    def loop_lag_observed(self, seconds: float) -> None:
        lag = max(0.0, seconds)
        self.loop_lag.set(lag)
        self.loop_lag_hist.observe(lag)

    def render(self) -> bytes:
        """The registry in Prometheus' text format (blocking: the database figures are queried)."""
        return generate_latest(self.registry)


# --- process-local figures ----------------------------------------------------------------------------------

SSE_GAUGE = "callcenter_sse_subscribers"
TELEPHONY_GAUGE = "callcenter_telephony_connected"
TELEPHONY_DOC = "Telephony connection per server (AMI: 1 logged in, 0 not; other backends: 1 while the dialler runs)"


def sse_subscribers_source(counts: Callable[[], Mapping[str, int]]) -> GaugeSource:
    """SSE subscriptions by topic kind (``agent:<id>`` -> agent, ``wallboard``, ``calls``) from the bus."""
    def read() -> dict[Labels, float]:
        kinds: Tally[str] = Tally({"agent": 0, "wallboard": 0})
        for topic, n in counts().items():
            kinds[topic.split(":", 1)[0]] += n
        return {(kind,): float(n) for kind, n in kinds.items()}

    return read


def part_state_source(snapshot: Callable[[], Mapping[str, Mapping[str, object]]], part: str,
                      server: str) -> GaugeSource:
    """The telephony connection when no backend reports its servers (the simulated PBX, Twilio, or before the
    dialler started): 1 while ``part`` is running on the part board (not "down" by its probe), else 0, as server
    ``server``; nothing when the part is not on the board (a process without a dialler)."""
    def read() -> dict[Labels, float]:
        state = snapshot().get(part)
        if state is None:
            return {}
        return {(server,): 1.0 if state.get("state") == "running" else 0.0}

    return read


def telephony_source(telephony: object, fallback: GaugeSource) -> GaugeSource:
    """Per server, 1 connected / 0 not, of a backend that knows its servers (``AmiPool.clients``, each with
    ``name`` and ``connected``); any other backend: ``fallback``."""
    clients = getattr(telephony, "clients", None)
    if clients is None:
        return fallback

    def read() -> dict[Labels, float]:
        return {(str(c.name),): 1.0 if c.connected else 0.0 for c in clients}

    return read


async def watch_loop_lag(observe: Callable[[float], None], stop: asyncio.Event,
                         interval_s: float = LOOP_LAG_INTERVAL_S) -> None:
    """Until ``stop``: sleep ``interval_s``, and report how much later than asked the loop woke."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        asked = loop.time()
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
            return
        except TimeoutError:
            pass
        observe(loop.time() - asked - interval_s)
