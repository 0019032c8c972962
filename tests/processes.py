"""Servers in child processes for tests that kill them: the simulated bank (``python -m callcenter.bank serve``)
and the engine's web service, each restartable on the same port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**settings: object) -> dict[str, str]:
    """The environment of a child: no CALLCENTER_* of the outer shell, then ``settings`` as CALLCENTER_<KEY>."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env.update({f"CALLCENTER_{k.upper()}": str(v) for k, v in settings.items()})
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


class Server:
    """A child process serving HTTP at ``url`` (``/healthz``); ``kill9`` and ``start`` again at will."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], url: str, log_dir: Path) -> None:
        self.name, self.argv, self.env, self.url = name, argv, env, url.rstrip("/")
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    def start(self, timeout: float = 60.0) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.starts += 1
        self.wait_up(timeout)

    def wait_up(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{self.name} did not come up at {self.url}:\n{self.log()[-3000:]}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.kills += 1

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(20)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def bank_server(log_dir: Path, **settings: object) -> Server:
    """``python -m callcenter.bank serve`` (the same command as ``callcenter bank serve``) on a free port."""
    settings.setdefault("bank_url", f"http://127.0.0.1:{free_port()}")
    env = clean_env(**settings)
    return Server("bank", [sys.executable, "-m", "callcenter.bank", "serve"], env, str(settings["bank_url"]), log_dir)
