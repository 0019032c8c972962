"""The README's first command, from a clean clone, in a subprocess: the engine comes up and /healthz answers 200."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def readme_first_command() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    marker = "<!-- run-command -->"
    assert marker in text, "README must mark its first command"
    block = text.split(marker, 1)[1].split("```", 2)[1]
    lines = [ln.strip() for ln in block.splitlines()[1:] if ln.strip() and not ln.strip().startswith("#")]
    assert lines, "no command after the marker"
    return lines[0]


@pytest.mark.slow
def test_first_readme_command_runs_the_engine_from_a_clean_clone(tmp_path: Path) -> None:
    command = readme_first_command()
    assert command == "make run"
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    web, agi, bank = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLCENTER_", "VIRTUAL_ENV", "PYTEST"))}
    env.update({"CALLCENTER_WEB_PORT": str(web), "CALLCENTER_AGI_PORT": str(agi), "PYTHONDONTWRITEBYTECODE": "1",
                "CALLCENTER_BANK_URL": f"http://127.0.0.1:{bank}"})
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(command, shell=True, cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 900  # a fresh virtualenv is installed first
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{web}/healthz", timeout=2).status_code
                if status == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        output = (tmp_path / "run.log").read_text(errors="replace")
        assert status == 200, f"engine did not come up (exit {proc.poll()}):\n{output[-4000:]}"
        assert "admin / admin-demo-1" in output  # the demo logins are printed
        with socket.create_connection(("127.0.0.1", agi), timeout=5):
            pass  # the FastAGI server listens too
        assert (clone / "var" / "callcenter.db").exists()
        # the simulated bank runs beside the engine, as its own process with its own books
        assert httpx.get(f"http://127.0.0.1:{bank}/healthz", timeout=5).status_code == 200
        assert (clone / "var" / "bank.db").exists()
        demo = httpx.get(f"http://127.0.0.1:{bank}/v1/sim/accounts", timeout=30).json()["accounts"]
        assert len(demo) >= 2000 and all(a["balance_fen"] >= 0 for a in demo)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(clone / ".venv", ignore_errors=True)
