"""``callcenter bench scale``: does the engine's cost stay flat as the history grows?

A scratch database (a temporary SQLite file by default; ``--database-url`` a PostgreSQL database that is WIPED:
its ``public`` schema is dropped and rebuilt) is filled with SQL (``INSERT ... SELECT`` over a recursive CTE on
SQLite, ``generate_series`` on PostgreSQL) to each size in turn (10 k, then 1 M attempts by default): as many
attempts and leads as the size, a tenth as many clients (each with a fund account, a bank account and their
books), closed agent and IVR sessions, a DNC list, and the ``abandon_days`` and ``attempt_days`` rollups built
from the attempts.
The history has a constant rate (one attempt every 31 s, about a million a year, the newest now), so a bigger
size is a longer history, not a busier day: the work of "now" is the same at every size.

At each size it times (median of several runs, each checked): the wall-board snapshot (``kpis.wallboard``), a
30-day report by campaign (``kpis.report``), a claim of 20 leads (``hopper.claim_leads``, rolled back) and a
transfer through ``TransferService`` (bank to fund and back, each must end ``done``), in rounds of one of each
(the report every third round) so that a change in the machine's load hits all alike; then an import of a
100 k-row lead file (``leads.import_lead_file``, every row created, then deleted again): its time, and its peak
of Python memory (``tracemalloc``, a second import); then prints each figure's growth from the first size to the
last against its target (wall board, claim, transfer within 1.5x; report within 3x; import memory within 1.5x)."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, time as dtime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from callcenter.bank.books import BankBooks
from callcenter.bank.inprocess import InProcessBank
from callcenter.bench.transfers import BENCH, _make_clients
from callcenter.bootstrap import App, bootstrap
from callcenter.services.dialer.hopper import claim_leads
from callcenter.services.dialer.campaigns import create_campaign, start_campaign
from callcenter.services import kpis
from callcenter.services.transfers import TransferCommand
from callcenter.settings import load_settings
from callcenter.store.db import make_engine, transaction
from callcenter.store.migrate import upgrade
from callcenter.store.models import Staff
from callcenter.store.models.dialer import Campaign

NOW = datetime(2026, 11, 25, 2, 30, tzinfo=timezone.utc)  # 10:30 Shanghai, a trading day
STEP_S = 31  # one attempt every 31 s: about a million a year
CAMPAIGNS = 10
AGENTS = 20
TRANSFER_CLIENTS = 20
IMPORT_ROWS = 100_000
TARGETS = {"wallboard": 1.5, "report_30d": 3.0, "claim_20": 1.5, "transfer": 1.5, "import_mb": 1.5}
DEFAULT_SIZES = (10_000, 1_000_000)


def parse_sizes(text_: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text_.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--sizes: comma separated attempt counts, e.g. 10000,100000 (not {text_!r})") from None
    if not sizes or any(n < 1000 for n in sizes) or list(sizes) != sorted(set(sizes)):
        raise ValueError("--sizes: increasing attempt counts of at least 1000, e.g. 10000,1000000")
    return sizes


class Sql:
    """The few SQL spellings that differ between the two databases."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"

    def series(self, lo: int, hi: int) -> tuple[str, str]:
        """(prefix, FROM clause) giving rows ``i`` from ``lo`` to ``hi`` inclusive."""
        if self.pg:
            return "", f"generate_series({lo}, {hi}) AS n(i)"
        return (f"WITH RECURSIVE n(i) AS (SELECT {lo} UNION ALL SELECT i + 1 FROM n WHERE i < {hi}) ", "n")

    def before_now(self, seconds: str) -> str:
        """The timestamp ``seconds`` (an SQL integer expression) before NOW, as each database stores it."""
        if self.pg:
            return f"(TIMESTAMPTZ '2026-11-25 02:30:00+00' - make_interval(secs => ({seconds})))"
        return f"strftime('%Y-%m-%d %H:%M:%f', '2026-11-25 02:30:00', (-({seconds})) || ' seconds')"

    def local_day(self, column: str) -> str:  # Asia/Shanghai: UTC+8 all year
        return f"(({column}) AT TIME ZONE 'Asia/Shanghai')::date" if self.pg else f"date({column}, '+8 hours')"

    def boolean(self, condition: str) -> str:
        return f"({condition})" if self.pg else f"(CASE WHEN {condition} THEN 1 ELSE 0 END)"


def _count(s: Session, table: str) -> int:
    return int(s.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def _max_id(s: Session, table: str) -> int:
    return int(s.execute(text(f"SELECT coalesce(max(id), 0) FROM {table}")).scalar_one())


def _insert(s: Session, sql: Sql, table: str, columns: str, select: str, lo: int, hi: int) -> None:
    if hi < lo:
        return
    prefix, source = sql.series(lo, hi)
    s.execute(text(f"INSERT INTO {table} ({columns}) {prefix}SELECT {select} FROM {source}"))


class World:
    """The scratch database and what the build needs to know about it."""

    def __init__(self, core: App, engine: Engine) -> None:
        self.core = core
        self.engine = engine
        self.sql = Sql(engine.dialect.name)
        self.campaigns: list[int] = []
        self.agents: list[int] = []
        self.lead0 = 0  # leads get ids lead0 + i
        self.client0 = self.bank0 = self.fund0 = 0  # and the SQL-made clients, their accounts
        self.clients = 0
        self.transfer_accounts: list[list[str]] = []

    def setup(self) -> None:
        core = self.core
        for k in range(CAMPAIGNS):
            cid = create_campaign(core, name=f"规模{k}", kind="cold_leads", script_id="cold_call",
                                  window_start=datetime.min.time(), window_end=datetime.max.time().replace(microsecond=0),
                                  days="every", max_attempts=3)
            start_campaign(core, cid)
            self.campaigns.append(cid)
        assert self.campaigns == list(range(self.campaigns[0], self.campaigns[0] + CAMPAIGNS))
        # the clients the transfers move money for: made through the ORM and opened at the bank, before the
        # SQL-made ones (whose ids follow)
        self.transfer_accounts = _make_clients(core, TRANSFER_CLIENTS, "s")
        with transaction(core.sessions) as s:
            staff = [Staff(username=f"scale{k}", display_name=f"坐席{k}", password_hash="-", role="agent")
                     for k in range(AGENTS)]
            s.add_all(staff)
            s.flush()
            self.agents = [st.id for st in staff]
            assert self.agents == list(range(self.agents[0], self.agents[0] + AGENTS))
            self.lead0 = _max_id(s, "leads") + 1
            self.client0, self.bank0, self.fund0 = (_max_id(s, t) + 1 for t in ("clients", "bank_accounts",
                                                                                 "fund_accounts"))
            sql = self.sql
            # agents logged in now (open sessions) and a few hand-offs waiting (open IVR sessions)
            _insert(s, sql, "agent_sessions", "staff_id, campaign_id, phone, state, reason, state_since, started_at",
                    f"{self.agents[0]} + i, {self.campaigns[0]} + i % {CAMPAIGNS}, 'PJSIP/' || i, "
                    f"CASE WHEN i % 2 = 0 THEN 'ready' ELSE 'talking' END, '', {sql.before_now('60')}, "
                    f"{sql.before_now('3600')}", 0, AGENTS - 1)
            _insert(s, sql, "ivr_sessions", "call_id, channel, caller, masked_account, lang, started_at, end_reason, "
                    "handed_off, summary, transfer_refs",
                    f"'open-' || i, 'ivr-agi', '', '', 'zh-CN', {sql.before_now('30')}, '', {sql.boolean('1 = 1')}, "
                    "'', ''", 0, 2)

    def grow(self, size: int) -> float:
        """Fill to ``size`` attempts (and leads, size/10 clients, ...); returns the seconds it took."""
        start = time.perf_counter()
        sql = self.sql
        c0, a0 = self.campaigns[0], self.agents[0]
        with transaction(self.core.sessions) as s:
            have = _count(s, "attempts")
            leads_have = _count(s, "leads")
            clients = size // 10
            # clients, each with a bank account, a main fund account and its four books (balance 0)
            lo, hi = self.clients, clients - 1
            self.clients = max(self.clients, clients)
            _insert(s, sql, "clients", "id, client_no, name, gender, id_number_masked, mobile, phone2, branch, onsite, "
                    "status, opened_on, closed_reason, risk_level, language",
                    f"{self.client0} + i, 'S' || i, '客户' || i, '', '-', '+86135' || (10000000 + i), '', 'bench', "
                    f"{sql.boolean('1 = 1')}, 'active', '2020-01-01', '', 'C3', 'zh-CN'", lo, hi)
            _insert(s, sql, "bank_accounts", "id, client_id, bank_code, bank_name, account_no",
                    f"{self.bank0} + i, {self.client0} + i, 'ICBC', '中国工商银行', 'SB' || i", lo, hi)
            _insert(s, sql, "fund_accounts", "id, client_id, seq, account_no, is_main, main_of_client, "
                    "bank_account_id, status, pin_hash, opened_on",
                    f"{self.fund0} + i, {self.client0} + i, 1, 'S8' || i, {sql.boolean('1 = 1')}, {self.client0} + i, "
                    f"{self.bank0} + i, 'active', '', '2020-01-01'", lo, hi)
            for kind, owner in (("fund", self.fund0), ("frozen", self.fund0), ("transit", self.fund0),
                                ("bank", self.bank0)):
                _insert(s, sql, "ledger_accounts", "kind, owner_id, balance_fen", f"'{kind}', {owner} + i, 0", lo, hi)
            # leads: 5 % new, 5 % due for a retry, 5 % retrying later, the rest done; 1 % of the due retries on the DNC list
            _insert(s, sql, "leads", "id, campaign_id, name, phone, timezone, priority, status, attempts, "
                    "next_attempt_at, extra, created_at, updated_at",
                    f"{self.lead0} + i, {c0} + i % {CAMPAIGNS}, '', '+86139' || (10000000 + i), 'Asia/Shanghai', "
                    "i % 3, CASE WHEN i % 20 = 0 THEN 'new' WHEN i % 20 IN (1, 2) THEN 'retry' ELSE 'done' END, "
                    "CASE WHEN i % 20 = 0 THEN 0 ELSE 1 END, "
                    f"CASE WHEN i % 20 = 1 THEN {sql.before_now('3600')} WHEN i % 20 = 2 THEN "
                    f"{sql.before_now('-86400')} END, '{{}}', {sql.before_now('i * 31')}, {sql.before_now('i * 31')}",
                    leads_have, size - 1)
            dnc_prefix, dnc_source = sql.series(leads_have // 100, size // 100 - 1)
            if size // 100 > leads_have // 100:
                s.execute(text(f"INSERT INTO dnc_entries (phone, reason, at) {dnc_prefix}SELECT "
                               f"'+86139' || (10000000 + i * 100 + 21), 'bench', {sql.before_now('0')} FROM {dnc_source}"))
            # attempts, newest first: i seconds * 31 ago; a few of today's still open
            human = "i % 10 < 4"
            open_ = "i < 20 AND i % 2 = 0"
            outcome = ("CASE WHEN i % 10 < 4 THEN 'human' WHEN i % 10 = 4 THEN 'machine' WHEN i % 10 IN (5, 6) "
                       "THEN 'no_answer' WHEN i % 10 = 7 THEN 'busy' WHEN i % 10 = 8 THEN 'abandoned' ELSE 'failed' END")
            _insert(s, sql, "attempts", "lead_id, campaign_id, attempt_no, agent_id, dialer_id, server, phone, mode, "
                    "dialled_at, answered_at, connected_at, ended_at, outcome, hangup_text, amd_cause, abandoned, "
                    "talk_s, disposition, notes",
                    f"{self.lead0} + i, {c0} + i % {CAMPAIGNS}, 1, CASE WHEN {human} THEN {a0} + i % {AGENTS} END, "
                    "'bench', '', '+86139' || (10000000 + i), 'progressive', "
                    f"{sql.before_now('i * 31')}, CASE WHEN i % 10 < 5 OR i % 10 = 8 THEN {sql.before_now('i * 31 - 10')} END, "
                    f"CASE WHEN {human} THEN {sql.before_now('i * 31 - 20')} END, "
                    f"CASE WHEN {open_} THEN NULL ELSE {sql.before_now('i * 31 - 90')} END, "
                    f"CASE WHEN {open_} THEN NULL ELSE {outcome} END, '', '', {sql.boolean('i % 10 = 8')}, "
                    f"CASE WHEN {human} THEN 60 + i % 240 END, "
                    f"CASE WHEN {human} THEN CASE WHEN i % 40 = 0 THEN 'appointment_booked' ELSE 'not_interested' END END, "
                    "''", have, size - 1)
            # closed agent shifts and IVR calls of the past (one per 50 / 10 attempts)
            _insert(s, sql, "agent_sessions", "staff_id, campaign_id, phone, state, reason, state_since, started_at, "
                    "ended_at", f"{a0} + i % {AGENTS}, {c0} + i % {CAMPAIGNS}, '', 'logged_out', '', "
                    f"{sql.before_now('i * 1550')}, {sql.before_now('i * 1550 + 28800')}, {sql.before_now('i * 1550')}",
                    have // 50, size // 50 - 1)
            _insert(s, sql, "ivr_sessions", "call_id, channel, caller, masked_account, lang, started_at, ended_at, "
                    "end_reason, handed_off, summary, transfer_refs",
                    f"'past-' || i, 'ivr-agi', '', '', 'zh-CN', {sql.before_now('i * 310 + 120')}, "
                    f"{sql.before_now('i * 310')}, 'hangup', {sql.boolean('i % 5 = 0')}, '', ''",
                    have // 10, size // 10 - 1)
            # the abandon budget's rollup, as hopper.finish_attempt keeps it (rebuilt whole: build time only)
            s.execute(text("DELETE FROM abandon_days"))
            s.execute(text(
                f"INSERT INTO abandon_days (campaign_id, day, humans, abandoned, connected) "
                f"SELECT campaign_id, {sql.local_day('ended_at')}, count(*), "
                f"sum(CASE WHEN abandoned OR outcome = 'abandoned' THEN 1 ELSE 0 END), "
                f"sum(CASE WHEN NOT abandoned AND outcome <> 'abandoned' AND (connected_at IS NOT NULL OR talk_s "
                f"IS NOT NULL) THEN 1 ELSE 0 END) FROM attempts WHERE ended_at IS NOT NULL "
                f"AND outcome IN ('human', 'abandoned') GROUP BY 1, 2"))
            # the reports' rollup, as dialer.rollups keeps it (rebuilt whole: build time only)
            s.execute(text("DELETE FROM attempt_days"))
            talk = "trunc(talk_s)" if sql.pg else "CAST(talk_s AS INTEGER)"
            s.execute(text(
                f"INSERT INTO attempt_days (day, campaign_id, agent_id, disposition, attempts, contacts, talk_s) "
                f"SELECT {sql.local_day('dialled_at')}, campaign_id, coalesce(agent_id, 0), coalesce(disposition, ''), "
                f"count(*), sum(CASE WHEN connected_at IS NOT NULL THEN 1 ELSE 0 END), coalesce(sum({talk}), 0) "
                f"FROM attempts WHERE ended_at IS NOT NULL GROUP BY 1, 2, 3, 4"))
            if sql.pg:
                for table in ("clients", "bank_accounts", "fund_accounts", "ledger_accounts", "leads", "attempts",
                              "agent_sessions", "ivr_sessions", "dnc_entries"):
                    s.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                   f"(SELECT coalesce(max(id), 1) FROM {table}))"))
        with self.core.sessions() as s:  # statistics, as a running database has them
            s.execute(text("ANALYZE"))
            s.commit()
        if not sql.pg:  # the build's write-ahead log folded in now, not during the timings
            raw = self.engine.raw_connection()
            try:
                raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                raw.close()
        return time.perf_counter() - start


def _check(ok: bool, what: object) -> None:
    """The bench checks the work it timed (not an ``assert``: it holds under ``python -O`` too)."""
    if not ok:
        raise RuntimeError(f"bench scale: wrong result: {what}")


def measure(world: World, transfer_accounts: list[list[str]], size: int, repeat: int) -> dict[str, float]:
    core = world.core
    tz = core.settings.tz
    today = NOW.astimezone(tz).date()
    first = today - timedelta(days=29)
    in_range = min(size, int((NOW - datetime.combine(first, dtime(0), tz)).total_seconds()) // STEP_S + 1)
    counter = iter(range(10**9))

    def wallboard() -> None:
        with transaction(core.sessions) as s:
            board = kpis.wallboard(s, NOW, tz)
        _check(board["ringing"] == 2 and len(board["campaigns"]) == CAMPAIGNS, board)

    def report() -> None:
        with transaction(core.sessions) as s:
            rows = kpis.report(s, "campaign", first, today, tz)
        _check(len(rows) == CAMPAIGNS and sum(r["attempts"] for r in rows) == in_range, (rows, in_range))

    def claim() -> None:
        with core.sessions() as s:
            campaign = s.get(Campaign, world.campaigns[1])
            _check(campaign is not None, "campaign")
            assert campaign is not None
            leads = claim_leads(s, campaign, "bench", 20, NOW, lambda d: True)
            _check(len(leads) == 20 and all(lead.status == "in_progress" for lead in leads), len(leads))
            s.rollback()

    def transfer() -> None:
        n = next(counter)
        main = transfer_accounts[n % len(transfer_accounts)][0]
        for kind in ("bank_to_fund", "fund_to_bank"):
            out = core.transfers.transfer(TransferCommand(
                idempotency_key=f"scale-{size}-{n}-{kind}", kind=kind, fund_account_no=main, amount_yuan="1.00",
                channel="bench", actor=BENCH))
            _check(out.status == "done", out)

    # in rounds (one of each per round), so a drift of the machine's load hits every figure alike
    runs: dict[str, Callable[[], None]] = {"wallboard": wallboard, "report_30d": report, "claim_20": claim,
                                           "transfer": transfer}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for k, fn in runs.items():
        fn()  # warm (caches, prepared statements)
    for round_ in range(repeat):
        for k, fn in runs.items():
            if k == "report_30d" and round_ % 3:  # the slow one: every third round
                continue
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    ms = {k: statistics.median(v) * 1000 for k, v in times.items()}
    ms["transfer"] /= 2  # two transfers per run
    return ms


def write_lead_file(path: Path, rows: int) -> Path:
    """A CSV lead file of ``rows`` valid mobiles (a name, a priority, a met_at extra): what a supervisor uploads."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("手机,姓名,优先级,认识地点\n")
        for i in range(rows):
            fh.write(f"+86137{10000000 + i},客户{i},{i % 3},展会\n")
    return path


def measure_import(world: World, lead_file: Path, rows: int) -> dict[str, float]:
    """One import of ``lead_file`` into a fresh campaign (every row must be created), timed; a second one under
    ``tracemalloc`` for its peak of Python memory; the imported leads deleted again (the history stays the same)."""
    import tracemalloc

    from callcenter.services.dialer.leads import LeadFile, import_lead_file

    core = world.core
    out: dict[str, float] = {}
    for traced in (False, True):
        cid = create_campaign(core, name=f"导入{next(_import_names)}", kind="cold_leads", script_id="cold_call")
        if traced:
            tracemalloc.start()
        start = time.perf_counter()
        report = import_lead_file(core.sessions, cid, LeadFile.from_path(lead_file), NOW, today=NOW.date())
        took = time.perf_counter() - start
        if traced:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            out["import_mb"] = peak / 2**20
        else:
            out["import_s"] = took
        _check(report.imported and report.created == rows, report.summary("en"))
        with transaction(core.sessions) as s:
            s.execute(text(f"DELETE FROM leads WHERE campaign_id = {cid}"))
            s.execute(text(f"DELETE FROM campaigns WHERE id = {cid}"))
    return out


_import_names = iter(range(10**9))


def run(sizes: tuple[int, ...] = DEFAULT_SIZES, database_url: str | None = None, repeat: int = 15,
        as_json: bool = False, import_rows: int = IMPORT_ROWS) -> dict[str, Any]:
    tmp = None
    if database_url is None:
        tmp = tempfile.TemporaryDirectory(prefix="cc-scale-")
        database_url = f"sqlite:///{Path(tmp.name) / 'scale.db'}"
    engine = make_engine(database_url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    bank_dir = tempfile.TemporaryDirectory(prefix="cc-scale-bank-")
    bank = InProcessBank(BankBooks.open(f"sqlite:///{Path(bank_dir.name) / 'bank.db'}", clock=lambda: NOW))
    core = bootstrap(load_settings(database_url=database_url), database=engine, clock=lambda: NOW, bank=bank.client())
    rows: dict[int, dict[str, float]] = {}
    try:
        world = World(core, engine)
        world.setup()
        lead_file = write_lead_file(Path(bank_dir.name) / "leads.csv", import_rows)
        for size in sizes:
            built = world.grow(size)
            rows[size] = measure(world, world.transfer_accounts, size, repeat)
            rows[size].update(measure_import(world, lead_file, import_rows))
            print(f"size {size:>9,} attempts (built in {built:.1f} s): "
                  + "  ".join(f"{k} {v:.2f}" + ("" if k.startswith("import") else " ms")
                              for k, v in rows[size].items()), flush=True)
    finally:
        core.close()
        bank.close()
        bank_dir.cleanup()
        if tmp is not None:
            tmp.cleanup()
    first, last = sizes[0], sizes[-1]
    growth = {k: round(rows[last][k] / rows[first][k], 2) for k in TARGETS}
    figures: dict[str, Any] = {"database": engine.dialect.name, "sizes": list(sizes),
                               "ms": {str(n): {k: round(v, 3) for k, v in r.items()} for n, r in rows.items()},
                               "growth": growth,
                               "met": {k: growth[k] <= TARGETS[k] for k in TARGETS}}
    print(f"bench scale · {figures['database']} · growth from {first:,} to {last:,} attempts:")
    for k in TARGETS:
        unit = "MB" if k == "import_mb" else "ms"
        print(f"  {k:<11} {rows[first][k]:9.2f} {unit} -> {rows[last][k]:9.2f} {unit}  x{growth[k]:<6} "
              f"(target <= {TARGETS[k]}x: {'met' if figures['met'][k] else 'NOT met'})")
    print(f"  import of {import_rows:,} rows: {rows[first]['import_s']:.1f} s -> {rows[last]['import_s']:.1f} s")
    if as_json:
        print(json.dumps(figures))
    return figures


