"""One lead import: the same bad file through the supervisor page's upload and through ``callcenter leads import``
(the real command, in a child process) gets the same verdict and the same per-row problems, in Chinese sentences."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook
from sqlalchemy import func, select

from callcenter.bootstrap import App
from callcenter.services.dialer.campaigns import create_campaign
from callcenter.store.db import run_in_transaction
from callcenter.store.models import Client
from callcenter.store.models.dialer import Lead
from callcenter.web.app import create_app
from tests.e2e.desk_world import World, build, page_login

pytestmark = pytest.mark.db

HEADER = ["手机", "姓名", "优先级", "客户号", "met_at", "met_date"]


def bad_rows(client_no: str) -> list[list[str]]:
    return [
        ["139 1234 0001", "王一", "1", client_no, "工行徐汇支行", "2026-11-02"],  # row 2: good
        ["62345678", "王二", "", "", "", ""],  # landline without its area code
        ["+86 139 1234 0001", "王三", "", "", "", ""],  # row 2's number again
        ["13912340004", "王四", "", "C999999", "", ""],  # no such client
        ["13912340005", "王五", "", "", "", "2026-13-45"],  # not a date
        ["13912340006", "王六", "high", "", "2026-11-02", ""],  # priority not a number, a date as the place
    ]


def write(path: Path, rows: list[list[str]]) -> None:
    if path.suffix == ".csv":
        path.write_text("\n".join(",".join(r) for r in [HEADER, *rows]) + "\n", encoding="utf-8-sig")
        return
    wb = Workbook()
    for r in [HEADER, *rows]:
        wb.active.append(r)
    wb.save(path)


def lead_count(core: App, cid: int) -> int:
    return run_in_transaction(core.sessions, lambda s: s.scalar(
        select(func.count()).select_from(Lead).where(Lead.campaign_id == cid)))


def cli_import(core: App, path: Path, cid: int, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CALLCENTER_DATABASE_URL": core.settings.database_url}
    return subprocess.run([sys.executable, "-m", "callcenter.cli", "leads", "import", str(path), "--campaign", str(cid)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_web_upload_and_cli_give_the_same_verdict_and_problems(core: App, tmp_path: Path, suffix: str) -> None:
    world: World = build(core)
    client_no = run_in_transaction(core.sessions, lambda s: s.get(Client, world.mine).client_no)
    cid = create_campaign(core, name="网点新客", kind="cold_leads", script_id="branch_prospect", group_ids=[world.g1])
    path = tmp_path / f"leads{suffix}"
    write(path, bad_rows(client_no))

    web = TestClient(create_app(core), raise_server_exceptions=False)
    csrf = page_login(web, "sup1")
    r = web.post(f"/supervisor/campaigns/{cid}/leads", data={"csrf": csrf},
                 files={"file": (path.name, path.read_bytes(), "application/octet-stream")})
    assert r.status_code == 200 and 'data-imported="no"' in r.text
    web_problems = [html.unescape(li) for li in re.findall(r"<li>(.*?)</li>",
                                                           r.text.split('id="upload-errors"', 1)[1].split("</ol>")[0])]
    web_summary = html.unescape(re.search(r'<p id="upload-result"[^>]*>(.*?)</p>', r.text).group(1))
    assert lead_count(core, cid) == 0

    cli = cli_import(core, path, cid, tmp_path)
    assert cli.returncode == 1, cli.stderr
    cli_lines = [line for line in cli.stderr.splitlines() if line.strip()]
    assert lead_count(core, cid) == 0

    expected = [
        "第 3 行：“62345678”不是有效的手机号或固定电话号码（固话须带区号）",
        "第 4 行：电话号码 139****0001 与第 2 行重复",
        "第 5 行：查无客户号为“C999999”的客户",
        "第 6 行：认识日期“2026-13-45”不是有效日期（格式 YYYY-MM-DD）",
        "第 7 行：优先级“high”不是整数",
        "第 7 行：认识地点（met_at）填的是日期“2026-11-02”；日期请填在认识日期（met_date）列",
    ]
    assert web_problems == expected
    assert cli_lines == [*expected, web_summary]
    assert web_summary == "5 行共 6 处问题，未导入任何名单（文件共 6 行）；改正后重新导入整个文件"

    write(path, bad_rows(client_no)[:1])  # the fixed file: both import it the same way
    cli = cli_import(core, path, cid, tmp_path)
    assert cli.returncode == 0 and cli.stdout.strip() == "已导入 1 条名单（其中 0 条在免打扰名单上，不会拨打），共 1 行"
    r = web.post(f"/supervisor/campaigns/{cid}/leads", data={"csrf": csrf},
                 files={"file": (path.name, path.read_bytes(), "application/octet-stream")})
    assert "第 2 行：电话号码 139****0001 已在本活动的名单中" in html.unescape(r.text)  # the same file twice
    assert lead_count(core, cid) == 1
