"""``callcenter demo seed``: a believable brokerage from a fixed random seed, written once into an empty database."""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from argon2 import PasswordHasher

from callcenter.ports.progress import Progress, no_progress
from callcenter.demo import data
from callcenter.demo.seed_history import seed_kpi_history
from callcenter.store.db import run_in_transaction
from callcenter.store.models import (
    BankAccount,
    Client,
    FundAccount,
    Holding,
    JournalEntry,
    LedgerAccount,
    Order,
    Posting,
    Security,
    ServiceGroup,
    Staff,
    Trade,
)

if TYPE_CHECKING:
    from callcenter.bootstrap import App

# The client named in the README: fund account and IVR PIN.
DEMO_FUND_ACCOUNT = "310000000001"
DEMO_PIN = "135790"
DEMO_TRADING_PASSWORD = "802413"  # 交易密码: confirms the demo client's phone orders
DEMO_CALLER = "+8613912345678"
DEMO_LOGINS = [("admin", "admin-demo-1", "admin"), ("supervisor1", "super-demo-1", "supervisor"),
               ("agent01", "agent-demo-1", "agent")]
DEFAULT_RNG_SEED = 20261125

# Every demo client has its own PIN and every demo staff member their own password, derived from the seed (so
# the demo is the same on every machine, and one known PIN opens one client, not 2,000). They are hashed with
# argon2 at a low cost: thousands of full-cost hashes would take minutes, and demo secrets derived from a public
# seed gain nothing from a slow hash. Real PINs and passwords are hashed by callcenter.services.auth.
_DEMO_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def _demo_hash(secret: str) -> str:
    return _DEMO_HASHER.hash(secret)


def _trivial(pin: str) -> bool:
    steps = {int(b) - int(a) for a, b in zip(pin, pin[1:])}
    return len(set(pin)) <= 2 or steps in ({1}, {-1}, {0})


def client_pins(count: int, rng_seed: int = DEFAULT_RNG_SEED) -> Iterator[str]:
    """The demo clients' IVR PINs in seeding order: distinct, none trivial (111111, 123456...); the first is the
    README's demo client's."""
    rng = random.Random(f"{rng_seed}:pins")  # its own stream: the rest of the demo data does not change
    used = {DEMO_PIN}
    for i in range(count):
        if i == 0:
            yield DEMO_PIN
            continue
        while True:
            pin = f"{rng.randrange(10**6):06d}"
            if pin not in used and not _trivial(pin):
                used.add(pin)
                yield pin
                break


def client_trading_passwords(count: int, rng_seed: int = DEFAULT_RNG_SEED) -> Iterator[str]:
    """The demo clients' trading passwords (交易密码) in seeding order, from their own stream; the first is the
    README's demo client's."""
    rng = random.Random(f"{rng_seed}:trading")
    for i in range(count):
        if i == 0:
            yield DEMO_TRADING_PASSWORD
            continue
        while True:
            secret = f"{rng.randrange(10**6):06d}"
            if not _trivial(secret):
                yield secret
                break


# The order history (电话委托 of the last weeks, filled and settled): about one active client in three, one to
# four orders each. The history is part of the opening state (its cash is in the opening balances, its shares in
# the holdings), so it posts nothing to the journal. Its trades have negative exec ids: the gateway's fills are
# numbered from 1 and the order service pages them on the highest exec id it has.
HISTORY_SHARE = 0.33
HISTORY_DAYS = 40
HISTORY_CHANNELS = ("ivr", "ivr", "ivr", "twilio", "text")


def _history_days(today: date) -> list[date]:
    days = [today - timedelta(days=d) for d in range(1, HISTORY_DAYS * 2)]
    return [d for d in days if d.weekday() < 5][:HISTORY_DAYS]


def _order_history(s: Session, rng: random.Random, client: Client, fund: FundAccount, days: list[date],
                   counter: list[int]) -> list[tuple[Order, Trade]]:
    orders = []
    for _ in range(rng.randrange(1, 5)):
        code, _name, _x, price_fen = rng.choice(data.SECURITIES)
        counter[0] += 1
        n = counter[0]
        day = rng.choice(days)
        at = datetime.combine(day, datetime.min.time(), timezone.utc) + timedelta(hours=1, minutes=rng.randrange(30, 300))
        qty = rng.randrange(1, 20) * 100
        price_li = int(price_fen * rng.uniform(0.95, 1.05)) * 10
        value = price_li * qty // 10
        side = rng.choice(("buy", "buy", "sell"))
        fees = max(500, value * 25 // 100_000) + (value * 5 // 10_000 if side == "sell" else 0)
        order = Order(idempotency_scope="demo:history", idempotency_key=f"demo:{n}", request_hash="demo",
                      reference=f"H{day:%y%m%d}{n:08d}", client_id=client.id, fund_account_id=fund.id, code=code,
                      side=side, kind="limit", quantity=qty, price_li=price_li, status="filled", error_code="",
                      filled_qty=qty, filled_value_fen=value, fees_fen=fees, cancelled_qty=0, frozen_fen=0,
                      channel=rng.choice(HISTORY_CHANNELS), caller_phone=client.mobile, trade_date=day,
                      created_at=at, updated_at=at, settled=True, response_json="{}")
        orders.append((order, Trade(exec_id=-n, fund_account_id=fund.id, code=code, side=side, quantity=qty,
                                    price_li=price_li, value_fen=value, fees_fen=fees, at=at, trade_date=day,
                                    settled=True)))
    return orders


def staff_password(username: str, rng_seed: int = DEFAULT_RNG_SEED) -> str:
    """A demo staff member's password: the README's for its three logins, otherwise derived from the seed."""
    for name, password, _role in DEMO_LOGINS:
        if name == username:
            return password
    rng = random.Random(f"{rng_seed}:password:{username}")
    alphabet = string.ascii_lowercase + string.digits
    return "-".join("".join(rng.choice(alphabet) for _ in range(4)) for _ in range(3))


@dataclass
class SeedSummary:
    clients: int = 0
    fund_accounts: int = 0
    closed: int = 0
    dormant: int = 0
    staff: int = 0
    groups: int = 0
    orders: int = 0  # the order history (filled, settled), one trade each
    trades: int = 0
    kpi_months: int = 0  # months of service-group KPI history (callcenter.demo.seed_history)
    logins: list[tuple[str, str, str]] = field(default_factory=list)


def _name(rng: random.Random) -> tuple[str, str]:
    gender = rng.choice("MF")
    given = rng.choice(data.GIVEN_MALE if gender == "M" else data.GIVEN_FEMALE)
    return rng.choice(data.SURNAMES) + given, gender


def _mobile(rng: random.Random, used: set[str]) -> str:
    while True:
        number = "+86" + rng.choice(data.MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
        if number not in used:
            used.add(number)
            return number


def _masked_id(rng: random.Random, birthday: date) -> str:
    """A masked resident ID: region code, birthday hidden, last four shown (only this form is stored)."""
    region = rng.choice(["310115", "110105", "440304", "330106", "320102", "510107"])
    return f"{region}********{rng.randrange(1000):03d}{rng.choice('0123456789X')}"


def seed(sessions: sessionmaker[Session], *, clients: int = 2000, rng_seed: int = DEFAULT_RNG_SEED,
         today: date | None = None, progress: Progress = no_progress) -> SeedSummary | None:
    """Fill an empty database. Returns None (and changes nothing) when clients already exist."""
    today = today or date.today()
    with ThreadPoolExecutor(max_workers=2) as pool:  # argon2 runs outside the GIL, beside the inserts
        return _seed(sessions, pool, clients, rng_seed, today, progress)


def _seed(sessions: sessionmaker[Session], pool: ThreadPoolExecutor, clients: int, rng_seed: int,
          today: date, progress: Progress) -> SeedSummary | None:
    rng = random.Random(rng_seed)

    def work(s: Session) -> SeedSummary | None:
        if s.execute(select(func.count(Client.id))).scalar_one():
            return None
        pin_hashes = [pool.submit(_demo_hash, pin) for pin in client_pins(clients, rng_seed)]
        trading_hashes = [pool.submit(_demo_hash, pwd) for pwd in client_trading_passwords(clients, rng_seed)]
        history_rng = random.Random(f"{rng_seed}:orders")  # its own stream: the rest of the demo does not change
        history_days = _history_days(today)
        history: list[tuple[Order, Trade]] = []
        order_counter = [0]
        summary = SeedSummary()
        now = datetime.now(timezone.utc)
        s.add_all(Security(code=c, name=n, exchange=x, last_price_fen=p) for c, n, x, p in data.SECURITIES)
        groups, staff = _staff(s, rng, summary, pool, rng_seed)
        used_mobiles: set[str] = {DEMO_CALLER}
        equity = LedgerAccount(kind="equity", owner_id=0, balance_fen=0)
        s.add(equity)
        s.flush()
        opening = JournalEntry(at=now, memo="demo opening balances")
        s.add(opening)
        s.flush()
        fund_seq = 0
        for i in range(clients):
            if i % 50 == 0:
                progress(i, clients)
            name, gender = _name(rng)
            if i == 0:
                name, gender = "张伟", "M"
            birthday = date(rng.randrange(1950, 2001), rng.randrange(1, 13), rng.randrange(1, 29))
            opened = today - timedelta(days=rng.randrange(60, 15 * 365))
            roll = rng.random()
            status, closed_on, reason, last_trade = "active", None, "", today - timedelta(days=rng.randrange(0, 60))
            if i > 0 and roll < 0.10:
                status, reason = "closed", rng.choice(data.CLOSE_REASONS)
                closed_on = today - timedelta(days=rng.randrange(1, 548))
                last_trade = closed_on - timedelta(days=rng.randrange(1, 90))
                summary.closed += 1
            elif i > 0 and roll < 0.22:
                status = "dormant"
                last_trade = today - timedelta(days=rng.randrange(180, 1500))
                summary.dormant += 1
            client = Client(
                client_no=f"C{100000 + i}", name=name, gender=gender, id_number_masked=_masked_id(rng, birthday),
                mobile=DEMO_CALLER if i == 0 else _mobile(rng, used_mobiles), birthday=birthday,
                branch=rng.choice(data.BRANCHES), onsite=rng.random() < 0.6, status=status, opened_on=opened,
                closed_on=closed_on, closed_reason=reason, last_trade_on=last_trade,
                service_group_id=groups[i % len(groups)].id, risk_level=rng.choice(["C1", "C2", "C3", "C4", "C5"]),
            )
            s.add(client)
            s.flush()
            pin_hash = pin_hashes[i].result()  # one PIN per client, for each of its fund accounts
            n_accounts = 2 if i == 0 else rng.choices([1, 2, 3, 4, 5], weights=[60, 22, 10, 5, 3])[0]
            banks = rng.sample(data.BANKS, n_accounts) if i else [data.BANKS[0], data.BANKS[5]]
            for seq, (bank_code, bank_name) in enumerate(banks, start=1):
                fund_seq += 1
                bank = BankAccount(client_id=client.id, bank_code=bank_code, bank_name=bank_name,
                                   account_no=f"62{rng.randrange(10**15):015d}{fund_seq % 10}")
                s.add(bank)
                s.flush()
                main = seq == 1
                fund = FundAccount(
                    client_id=client.id, seq=seq, account_no=f"31{fund_seq:010d}", is_main=main,
                    main_of_client=client.id if main else None, bank_account_id=bank.id,
                    status="closed" if status == "closed" else "active", pin_hash=pin_hash, opened_on=opened,
                    trading_pwd_hash=trading_hashes[i].result() if main else "",
                )
                s.add(fund)
                s.flush()
                cash = 0 if status == "closed" else int(rng.lognormvariate(11.5, 1.3)) * 100
                if i == 0:
                    cash = 8_888_800 if main else 1_200_000
                bank_cash = int(rng.lognormvariate(11.0, 1.2)) * 100
                _open_books(s, opening.id, equity, fund, bank, cash, bank_cash)
                summary.fund_accounts += 1
                if main and status != "closed":
                    for code, _n, _x, price in rng.sample(data.SECURITIES, rng.randrange(0 if i else 3, 6)):
                        qty = rng.randrange(1, 50) * 100
                        s.add(Holding(fund_account_id=fund.id, code=code, quantity=qty,
                                      cost_fen=int(price * rng.uniform(0.7, 1.3))))
                    if status == "active" and (i == 0 or history_rng.random() < HISTORY_SHARE):
                        history += _order_history(s, history_rng, client, fund, history_days, order_counter)
            summary.clients += 1
        s.add_all(order for order, _ in history)
        s.flush()
        for order, trade in history:
            trade.order_id = order.id
        s.add_all(trade for _, trade in history)
        summary.orders = summary.trades = len(history)
        summary.staff, summary.groups = len(staff), len(groups)
        s.flush()
        summary.kpi_months = seed_kpi_history(s, today, rng_seed) // max(1, len(groups))
        return summary

    return run_in_transaction(sessions, work, attempts=1)


def _open_books(s: Session, entry_id: int, equity: LedgerAccount, fund: FundAccount, bank: BankAccount,
                cash: int, bank_cash: int) -> None:
    books = {kind: LedgerAccount(kind=kind, owner_id=fund.id, balance_fen=0) for kind in ("fund", "frozen", "transit")}
    books["bank"] = LedgerAccount(kind="bank", owner_id=bank.id, balance_fen=0)
    s.add_all(books.values())
    s.flush()
    for kind, amount in (("fund", cash), ("bank", bank_cash)):
        if amount:
            s.add(Posting(entry_id=entry_id, ledger_account_id=books[kind].id, amount_fen=amount))
            s.add(Posting(entry_id=entry_id, ledger_account_id=equity.id, amount_fen=-amount))
            books[kind].balance_fen += amount
            equity.balance_fen -= amount


def _staff(s: Session, rng: random.Random, summary: SeedSummary, pool: ThreadPoolExecutor,
           rng_seed: int) -> tuple[list[ServiceGroup], list[Staff]]:
    def password_hash(username: str) -> str:
        return pool.submit(_demo_hash, staff_password(username, rng_seed)).result()

    staff: list[Staff] = []
    for username, _password, role in DEMO_LOGINS[:2]:
        staff.append(Staff(username=username, display_name="系统管理员" if role == "admin" else "陈主管",
                           password_hash=password_hash(username), role=role))
    supervisor2 = Staff(username="supervisor2", display_name="林主管", password_hash=password_hash("supervisor2"),
                        role="supervisor")
    staff.append(supervisor2)
    s.add_all(staff)
    s.flush()
    supervisors = [staff[1], supervisor2]
    groups: list[ServiceGroup] = []
    agent_no = 0
    for g in range(8):
        group = ServiceGroup(name=f"服务{'一二三四五六七八'[g]}组", branch=data.BRANCHES[g % len(data.BRANCHES)],
                             supervisor_id=supervisors[g % 2].id)
        s.add(group)
        s.flush()
        groups.append(group)
        size = 3 if g % 3 else 2
        for m in range(size):
            agent_no += 1
            name, _ = _name(rng)
            member = Staff(username=f"agent{agent_no:02d}", display_name=name,
                           password_hash=password_hash(f"agent{agent_no:02d}"),
                           role="agent", back_office=(m == size - 1), service_group_id=group.id,
                           extension=f"{1000 + agent_no}")
            s.add(member)
            staff.append(member)
    s.flush()
    summary.logins = list(DEMO_LOGINS)
    return groups, staff


def bank_openings(sessions: sessionmaker[Session]) -> list[tuple[str, int]]:
    """Every client bank account with our mirror balance: what the simulated bank opens for the demo (through
    its protocol, absent accounts only), so both sides start equal."""
    return run_in_transaction(sessions, lambda s: [
        (no, int(balance)) for no, balance in s.execute(
            select(BankAccount.account_no, LedgerAccount.balance_fen)
            .join(LedgerAccount, (LedgerAccount.kind == "bank") & (LedgerAccount.owner_id == BankAccount.id))
            .order_by(BankAccount.id)
        ).all()
    ])


def open_demo_bank_accounts(core: "App") -> tuple[int, int]:
    """Open the demo's bank accounts at the simulated bank (``bank_simulator``); (opened, already there)."""
    return core.bank.open_accounts(bank_openings(core.sessions))  # type: ignore[attr-defined]  # the simulator's HttpBank
