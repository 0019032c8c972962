"""A real Asterisk for the live tests, started from the binary named by ``CALLCENTER_LIVE_ASTERISK``.

It runs with the files we ship in ``config/asterisk/`` exactly as an operator copies them (only the AMI
secret placeholder replaced, as the README tells the operator to do), plus a test-only dialplan of
simulated parties (``tests/live/sim-parties.conf``, Local channels) included after ours. Everything lives in
a temporary directory; the modules, documentation and sounds are read from the binary's own installation
(``<prefix>/sbin/asterisk`` -> ``<prefix>/lib/asterisk/modules``) and Debian's ``asterisk-core-sounds-en``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config" / "asterisk"
SIM_PARTIES = Path(__file__).with_name("sim-parties.conf")
DEBIAN_SOUNDS = Path("/usr/share/asterisk/sounds")
# Where the live servers listen: the shipped 127.0.0.1:5038 (a second server 127.0.0.2) and the engine's FastAGI at
# the shipped 127.0.0.1:4573. Two live runs side by side (two sessions on one machine) set other loopback
# addresses and another AGI port; the copied dialplan then names that port.
HOSTS = tuple(os.environ.get("CALLCENTER_LIVE_HOSTS", "127.0.0.1,127.0.0.2").split(","))
PRIMARY, SECOND = HOSTS[0], HOSTS[1]
AGI_PORT = int(os.environ.get("CALLCENTER_LIVE_AGI_PORT", "4573"))
# the shipped pjsip.conf's SIP port (UDP and TCP) and http.conf's WebSocket ports, plain and TLS, on the server's own
# address (the copied files name them). The TLS listener gets a certificate made for the test (``live_certificate``)
# where the operator names theirs: the softphone reaches Asterisk over ws:// and over wss://.
SIP_PORT = int(os.environ.get("CALLCENTER_LIVE_SIP_PORT", "5060"))
HTTP_PORT = int(os.environ.get("CALLCENTER_LIVE_HTTP_PORT", "8088"))
TLS_PORT = int(os.environ.get("CALLCENTER_LIVE_TLS_PORT", "8089"))
PHONES_SECRET = "live-phones-secret"
SIPP_PORT = int(os.environ.get("CALLCENTER_LIVE_SIPP_PORT", "5062"))  # the SIP customer (sipp UAS) of sim-sip.conf
SIM_SIP = Path(__file__).with_name("sim-sip.conf")
# the call recordings of the live servers (the engine reads them where Asterisk writes them: one host)
LIVE_RECORDINGS = Path(os.environ.get("TMPDIR", "/tmp")) / f"cc-live-recordings-{os.getuid()}-{AGI_PORT}"


@dataclass
class LiveAsterisk:
    binary: Path
    home: Path
    ami_secret: str = "live-test-secret"
    bind: str = PRIMARY  # a second server binds SECOND (same shipped port 5038)
    prompts: Path | None = None  # our rendered prompts, visible to Asterisk as sounds/cc/...
    recordings: Path = LIVE_RECORDINGS  # where the shipped dialplan's MixMonitor writes (CC_RECORDINGS_DIR)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def prefix(self) -> Path:
        return self.binary.resolve().parent.parent

    @property
    def ami_address(self) -> tuple[str, int]:
        return self.bind, 5038

    @property
    def sip_address(self) -> tuple[str, int]:
        return self.bind, SIP_PORT

    @property
    def wss_url(self) -> str:
        """The softphone's address over TLS, as ``softphone_ws_url`` names it in production."""
        return f"wss://{self.bind}:{TLS_PORT}/ws"

    @property
    def tls_spki(self) -> str:
        """The base64 SHA-256 of the test certificate's public key: what a browser is told to trust
        (``--ignore-certificate-errors-spki-list`` pins this one key; every other certificate error stands)."""
        return spki_sha256(self.home / "keys" / "asterisk.crt")

    @property
    def pjsip_agents(self) -> Path:
        """Where the engine writes the agents' endpoints (the shipped pjsip.conf includes it)."""
        return self.home / "etc" / "pjsip_agents.conf"

    def lay_out(self) -> None:
        etc, data = self.home / "etc", self.home / "data"
        for d in ("etc", "run", "log", "spool", "varlib", "db", "data/sounds"):
            (self.home / d).mkdir(parents=True, exist_ok=True)
        self.recordings.mkdir(parents=True, exist_ok=True)
        for shipped in SHIPPED.glob("*.conf"):
            text = shipped.read_text(encoding="utf-8")
            if shipped.name == "manager.conf":
                text = text.replace("secret = CHANGE-ME", f"secret = {self.ami_secret}")
                text = text.replace("bindaddr = 127.0.0.1", f"bindaddr = {self.bind}")
            if shipped.name == "manager.conf":
                text = text.replace("secret = PHONES-CHANGE-ME", f"secret = {PHONES_SECRET}")
            if shipped.name == "pjsip.conf":
                text = text.replace("bind = 0.0.0.0:5060", f"bind = {self.bind}:{SIP_PORT}")
                text += "\n; --- live tests only: SIP parties ---\n#include sim-sip.conf\n"
            if shipped.name == "http.conf":  # as the README has the operator do: their certificate's two paths
                cert, key = live_certificate(self.home / "keys", self.bind)
                text = text.replace("bindaddr = 127.0.0.1", f"bindaddr = {self.bind}")
                text = text.replace("bindport = 8088", f"bindport = {HTTP_PORT}")
                text = text.replace("tlsbindaddr = 0.0.0.0:8089", f"tlsbindaddr = {self.bind}:{TLS_PORT}")
                text = text.replace("tlscertfile = /etc/asterisk/keys/asterisk.crt", f"tlscertfile = {cert}")
                text = text.replace("tlsprivatekey = /etc/asterisk/keys/asterisk.key", f"tlsprivatekey = {key}")
            if shipped.name == "extensions.conf":
                text = text.replace("agi://127.0.0.1:4573/", f"agi://127.0.0.1:{AGI_PORT}/")
                text = text.replace("CC_RECORDINGS_DIR=\n", f"CC_RECORDINGS_DIR={self.recordings}\n")
                text += "\n; --- live tests only: simulated parties ---\n#include sim-parties.conf\n"
            (etc / shipped.name).write_text(text, encoding="utf-8")
        shutil.copy(SIM_PARTIES, etc / "sim-parties.conf")
        (etc / "sim-sip.conf").write_text(SIM_SIP.read_text(encoding="utf-8").replace(
            "contact = sip:127.0.0.1:5062", f"contact = sip:{self.bind}:{SIPP_PORT}"), encoding="utf-8")
        (etc / "modules.conf").write_text("[modules]\nautoload = yes\n")
        (etc / "logger.conf").write_text("[general]\n[logfiles]\nmessages.log => notice,warning,error,verbose(3)\n")
        docs = self.prefix / "var" / "lib" / "asterisk" / "documentation"
        if docs.exists():
            (data / "documentation").symlink_to(docs)
        for lang in ("en", "en_US"):
            if (DEBIAN_SOUNDS / lang).exists():
                (data / "sounds" / lang).symlink_to(DEBIAN_SOUNDS / lang)
        if self.prompts is not None:
            (data / "sounds" / "cc").symlink_to(self.prompts)
        h = self.home
        (etc / "asterisk.conf").write_text(
            "[directories]\n"
            f"astetcdir => {etc}\nastmoddir => {self.prefix / 'lib' / 'asterisk' / 'modules'}\n"
            f"astvarlibdir => {h / 'varlib'}\nastdbdir => {h / 'db'}\nastkeydir => {h / 'varlib'}\n"
            f"astdatadir => {data}\nastagidir => {h / 'varlib'}\nastspooldir => {h / 'spool'}\n"
            f"astrundir => {h / 'run'}\nastlogdir => {h / 'log'}\nastsbindir => {self.binary.resolve().parent}\n"
            "[options]\nverbose = 3\n")

    def start(self, timeout_s: float = 30.0) -> None:
        if not (self.home / "etc" / "asterisk.conf").exists():
            self.lay_out()
        with socket.socket() as probe:  # a stale Asterisk on the address would answer in our place
            if probe.connect_ex(self.ami_address) == 0:
                raise RuntimeError(f"something already listens on {self.ami_address}: stop it first")
        out = open(self.home / "console.log", "ab")
        self.process = subprocess.Popen([str(self.binary), "-C", str(self.home / "etc" / "asterisk.conf"), "-f", "-n"],
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"asterisk exited with {self.process.returncode}: {self.console_tail()}")
            if self._fully_booted():
                return
            time.sleep(0.2)
        raise RuntimeError(f"asterisk did not boot in {timeout_s} s: {self.console_tail()}")

    def _fully_booted(self) -> bool:
        """Asterisk's own word (``core waitfullybooted`` on its control socket), then AMI accepting connections."""
        if not (self.home / "run" / "asterisk.ctl").exists():
            return False
        try:
            if "fully booted" not in self.cli("core waitfullybooted").lower():
                return False
            with socket.create_connection(self.ami_address, timeout=1) as s:
                return s.recv(64).startswith(b"Asterisk Call Manager/")
        except (OSError, subprocess.TimeoutExpired):
            return False

    @property
    def version(self) -> str:
        done = subprocess.run([str(self.binary), "-V"], capture_output=True, text=True, timeout=10)
        return done.stdout.strip()

    def cli(self, command: str) -> str:
        """One CLI command through the control socket (asterisk -rx), as an operator types it."""
        done = subprocess.run([str(self.binary), "-C", str(self.home / "etc" / "asterisk.conf"), "-rx", command],
                              capture_output=True, text=True, timeout=15)
        return done.stdout

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self.kill()
            return
        try:
            self.cli("core stop now")
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL the server, by our handle and by its pid file (a restart re-executes Asterisk)."""
        pidfile = self.home / "run" / "asterisk.pid"
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().strip()), 9)
            except (ValueError, ProcessLookupError):
                pass
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait()

    def console_tail(self, n: int = 40) -> str:
        path = self.home / "console.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        return "\n".join(lines[-n:])

    def log(self) -> str:
        path = self.home / "log" / "messages.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def log_once(self, needle: str, timeout_s: float = 60.0) -> str:
        """The log once ``needle`` is in it, or as it is after ``timeout_s`` (a bound against hanging)."""
        deadline = time.monotonic() + timeout_s
        while needle not in (log := self.log()) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        return log


def live_certificate(folder: Path, host: str) -> tuple[Path, Path]:
    """A self-signed certificate for the server's address (IP SAN), made with Debian's openssl for this run only:
    the stand-in for the certificate an operator's browsers trust."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "asterisk.crt", folder / "asterisk.key"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-subj", f"/CN={host}", "-addext", f"subjectAltName=IP:{host}",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
    return cert, key


def spki_sha256(cert: Path) -> str:
    pub = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"], check=True, capture_output=True,
                         timeout=10).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, check=True,
                         capture_output=True, timeout=10).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def live_binary() -> Path | None:
    value = os.environ.get("CALLCENTER_LIVE_ASTERISK", "")
    return Path(value) if value else None
