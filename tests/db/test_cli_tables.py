"""The command line's tables and progress bars on a real database (issue 13 item 6): statuses in the user's
language and times local (never ``running`` or a UTC stamp), a progress bar on the long jobs, driven by the job's
own ``progress(done, total)``."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import pytest

from callcenter.bootstrap import App
from callcenter.cli import app
from callcenter.commands import run_command
from callcenter.demo.campaign_simulation import run_simulated_campaign
from callcenter.services.care.complaints import ComplaintService
from callcenter.services.dialer.campaigns import campaign_action, create_campaign
from callcenter.store.db import run_in_transaction
from callcenter.store.models.dialer import Campaign
from tests.factories import make_client


@pytest.fixture
def cli_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CALLCENTER_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")
    return db_url


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        run_command(app, args)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_campaign_list_is_a_table_in_words_and_local_time(core: App, cli_env: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    cid = create_campaign(core, name="权证到期提醒", kind="reminder", script_id="reminder", dial_mode="predictive")
    campaign_action(core, cid, "start")

    def created_at(s) -> None:  # type: ignore[no-untyped-def]
        s.get(Campaign, cid).created_at = datetime(2026, 11, 25, 1, 5, tzinfo=timezone.utc)

    run_in_transaction(core.sessions, created_at)
    code, out, _ = _run(["campaign", "list"], capsys)
    assert code == 0
    row = next(line for line in out.splitlines() if "权证到期提醒" in line)
    assert "温馨提示" in row and "进行中" in row and "预测式" in row and "2026-11-25 09:05" in row
    assert "running" not in out and "predictive" not in out and "01:05" not in out
    assert "编号" in out and "共 1 条" in out
    _, out, _ = _run(["campaign", "list", "--lang", "en"], capsys)
    row = next(line for line in out.splitlines() if "权证到期提醒" in line)
    assert "Reminder" in row and "Running" in row and "1 in all" in out


def test_complaints_list_in_words_with_local_due_times(core: App, cli_env: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    client_id, _ = make_client(core, accounts=[(0, 0)])
    ComplaintService.for_app(core).open(client_id, "fund_transfer", "转账没到账", channel="agent")
    code, out, _ = _run(["complaints", "list"], capsys)
    assert code == 0
    row = next(line for line in out.splitlines() if "银证转账" in line)
    assert "待处理" in row
    assert "fund_transfer" not in out and "open" not in out
    assert "2026-11-25 10:30" in row  # opened at the fixed clock's 02:30 UTC, shown in Shanghai time
    code, out, err = _run(["complaints", "move", "999999", "closed"], capsys)
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err


def test_long_jobs_report_their_progress(core: App, cli_env: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, int]] = []
    report = asyncio.run(run_simulated_campaign(core, agents=3, leads=40, seed=3,
                                                progress=lambda done, total: seen.append((done, total))))
    assert report.attempts > 0
    assert seen[-1] == (40, 40) and all(t == 40 for _, t in seen) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    # the lead import draws its bar on stderr (forced on: the test's stderr is no terminal)
    cid = create_campaign(core, name="导入", kind="cold_leads", script_id="cold_call")
    csv = tmp_path / "leads.csv"
    csv.write_text("phone,name\n" + "".join(f"1391234{i:04d},客户{i}\n" for i in range(30)), encoding="utf-8")
    monkeypatch.setenv("CALLCENTER_PROGRESS", "1")
    code, out, err = _run(["leads", "import", str(csv), "--campaign", str(cid)], capsys)
    assert code == 0, err
    assert "导入名单（行）" in err and "30/30" in err
    assert "30" in out and "导入名单" not in out  # the result on stdout, the bar on stderr
