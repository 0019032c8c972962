"""``pip install .`` (not editable) into a fresh venv gives a working ``callcenter`` from an empty directory:
the IVR flows, talk scripts and default settings come from inside the installed package, not the checkout.

Fast and offline: the fresh venv (no pip of its own) sees the test venv's site-packages through a ``.pth`` file
for the dependencies and the build backend, and the package is built with ``--no-build-isolation --no-deps
--no-index`` from a copy of only what the wheel is built from (so nothing else of the checkout can leak in).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILT_FROM = ("pyproject.toml", "setup.py", "README.md", "callcenter", "ivr_flows", "scripts_templates", "config")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CALLCENTER_", "VIRTUAL_ENV", "PYTEST", "PYTHONPATH", "PYTHONHOME"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh venv with the package installed from a wheel."""
    base = tmp_path_factory.mktemp("installed")
    source = base / "source"
    source.mkdir()
    for name in BUILT_FROM:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_data"))
        elif src.exists():
            shutil.copy2(src, source / name)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    # Path lines only: .pth files inside these folders (the checkout's editable finder) are not processed.
    Path(purelib, "_callcenter_test_deps.pth").write_text("\n".join(sorted(ours)) + "\n", encoding="utf-8")
    result = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                             "--no-index", "--disable-pip-version-check", str(source)],
                            cwd=base, env=clean_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return venv / "bin"


def run(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=cwd, env=clean_env(), capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_the_installed_package_carries_its_data(installed: Path, tmp_path: Path) -> None:
    probe = run(installed, tmp_path, "python", "-c",
                "import callcenter, sys; from callcenter.shipped import shipped_dir; "
                "print(callcenter.__file__); [print(shipped_dir(n)) for n in ('ivr_flows', 'scripts_templates', "
                "'config')]")
    assert probe.returncode == 0, probe.stderr
    venv = installed.parent.resolve()
    lines = [Path(line).resolve() for line in probe.stdout.split()]
    for line in lines:  # the installed copy, not the checkout
        assert venv in line.parents, (line, venv)
    assert (lines[1] / "hotline.yaml").is_file()
    assert (lines[2] / "cold_call.yaml").is_file()
    assert (lines[3] / "callcenter.toml").is_file()
    assert (lines[3] / "asterisk" / "manager.conf").is_file()


@pytest.mark.slow
def test_ivr_check_and_scripts_check_from_an_empty_directory(installed: Path, tmp_path: Path) -> None:
    ivr = run(installed, tmp_path, "callcenter", "ivr", "check")
    assert ivr.returncode == 0, ivr.stdout + ivr.stderr
    assert "hotline.yaml: ok" in ivr.stdout
    assert str(installed.parent) in ivr.stdout  # the shipped flow inside the venv
    scripts = run(installed, tmp_path, "callcenter", "scripts", "check")
    assert scripts.returncode == 0, scripts.stdout + scripts.stderr
    assert "已检查 8 个话术文件，发现 0 个问题" in scripts.stdout
    assert list(tmp_path.iterdir()) == []  # checks write nothing where they run


@pytest.mark.slow
def test_run_from_an_empty_directory_until_healthz_answers(installed: Path, tmp_path: Path) -> None:
    web, agi = free_port(), free_port()
    env = clean_env()
    env.update({"CALLCENTER_WEB_PORT": str(web), "CALLCENTER_AGI_PORT": str(agi)})
    log_path = tmp_path.parent / f"{tmp_path.name}-run.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([str(installed / "callcenter"), "run"], cwd=tmp_path, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 240
            status = None
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    status = httpx.get(f"http://127.0.0.1:{web}/healthz", timeout=2).status_code
                    if status == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)  # polling a subprocess, not timing the code under test
            output = log_path.read_text(errors="replace")
            assert status == 200, f"engine did not come up (exit {proc.poll()}):\n{output[-4000:]}"
            assert "admin / admin-demo-1" in output  # migrated, seeded, logins printed
            with socket.create_connection(("127.0.0.1", agi), timeout=5):
                pass  # the FastAGI server listens too
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    assert proc.returncode == 0, log_path.read_text(errors="replace")[-4000:]
    # the default SQLite file is relative to where the engine runs (settings home, default: current directory)
    assert (tmp_path / "var" / "callcenter.db").is_file()
