"""One dialler process claiming leads of one campaign until none is left (tests/db/test_dialer_hopper.py).

Usage: python -m tests.db.dialer_worker DB_URL CAMPAIGN_ID DIALER_ID NOW_ISO START_FILE
Touches START_FILE.<DIALER_ID>.ready, waits until START_FILE exists (so the processes start claiming together), then prints one claimed lead id a line.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path

from callcenter.bootstrap import bootstrap
from callcenter.services.dialer.hopper import claim_leads, start_attempt
from callcenter.settings import load_settings
from callcenter.store.db import run_in_transaction
from callcenter.store.models.dialer import Campaign


def main(argv: list[str]) -> None:
    url, campaign_id, dialer_id, now_iso, start_file = argv[:5]
    now = datetime.fromisoformat(now_iso)
    core = bootstrap(load_settings(database_url=url), clock=lambda: now)
    Path(start_file + f".{dialer_id}.ready").touch()
    deadline = time.monotonic() + 60
    while not Path(start_file).exists() and time.monotonic() < deadline:
        time.sleep(0.01)  # a start line for both processes, not a timing assertion

    def work(s):  # type: ignore[no-untyped-def]
        campaign = s.get(Campaign, int(campaign_id))
        leads = claim_leads(s, campaign, dialer_id, 7, now, core.calendar.is_trading_day)
        for lead in leads:
            start_attempt(s, lead, campaign, dialer_id, now, mode="progressive")
        return [lead.id for lead in leads]

    while True:
        ids = run_in_transaction(core.sessions, work)
        if not ids:
            break
        for i in ids:
            print(i, flush=True)
    core.close()


if __name__ == "__main__":
    main(sys.argv[1:])
