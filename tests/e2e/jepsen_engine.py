"""The engine's web service in a child process on a fixed trading-day clock, for the Jepsen-style test.

Usage: python -m tests.e2e.jepsen_engine NOW_ISO   (settings from CALLCENTER_* in the environment: database,
bank_url, bank_timeout_seconds, web_port). The bank is reached over HTTP at bank_url, a process of its own.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime

from callcenter.bootstrap import bootstrap
from callcenter.logging_setup import configure_logging
from callcenter.runtime import run_engine
from callcenter.settings import load_settings


def main(argv: list[str]) -> None:
    now = datetime.fromisoformat(argv[0])
    configure_logging()
    core = bootstrap(load_settings(), clock=lambda: now)
    try:
        asyncio.run(run_engine(core, runners=[]))  # the web service only: the API under test
    finally:
        core.close()


if __name__ == "__main__":
    main(sys.argv[1:])
