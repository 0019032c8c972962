"""The agents' PJSIP endpoints handed to Asterisk (issue 18): the include file ``pjsip_agents.conf`` written
whole and atomically (a temporary file renamed over it, mode 0640: it holds digest HA1s), then res_pjsip reloaded
over AMI with the action ``Reload`` (``Module: res_pjsip.so``).

Asterisk 22's AMI has no PJSIP-specific reload action; ``Reload`` needs the write privilege ``config`` or
``system``, which the engine's call account deliberately lacks. So the reload logs in with its own account
(``ami_phones_username``, shipped in manager.conf as ``[callcenter-phones]``: write ``config`` only, reads
nothing), one short connection per change. Without that account the file is written and an operator reloads
(``asterisk -rx "module reload res_pjsip.so"``).
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from callcenter.adapters.telephony.ami_frames import Frame, FrameParser

log = logging.getLogger(__name__)


class ReloadFailed(OSError):
    pass


@dataclass(frozen=True)
class AmiReload:
    """One connection: Login, Reload res_pjsip.so, Logoff. Blocking (called from a worker thread)."""

    host: str
    port: int
    username: str
    secret: str
    timeout_s: float = 5.0

    def __call__(self) -> None:
        with socket.create_connection((self.host, self.port), timeout=self.timeout_s) as sock:
            parser = FrameParser()
            pending: list[Frame] = []

            def ask(fields: dict[str, str], action_id: str) -> Frame:
                sock.sendall("".join(f"{k}: {v}\r\n" for k, v in {**fields, "ActionID": action_id}.items())
                             .encode() + b"\r\n")
                while True:
                    for frame in pending:
                        if frame.headers.get("ActionID") == action_id:
                            pending.remove(frame)
                            return frame
                    data = sock.recv(65536)
                    if not data:
                        raise ReloadFailed("AMI closed the connection")
                    pending.extend(f for f in parser.feed(data) if isinstance(f, Frame))

            login = ask({"Action": "Login", "Username": self.username, "Secret": self.secret, "Events": "off"}, "l")
            if login.headers.get("Response") != "Success":
                raise ReloadFailed(f"AMI login refused: {login.headers.get('Message', '')}")
            reply = ask({"Action": "Reload", "Module": "res_pjsip.so"}, "r")
            if reply.headers.get("Response") != "Success":
                raise ReloadFailed(f"Reload refused: {reply.headers.get('Message', '')}")
            try:
                ask({"Action": "Logoff"}, "o")
            except (OSError, ReloadFailed):
                pass


@dataclass(frozen=True)
class PjsipAgentsFile:
    """``PhonePublisher``: writes the include file, then reloads (when it has a reload account)."""

    path: Path | None
    reload: AmiReload | None = None

    def publish(self, text: str) -> str:
        if self.path is None:
            return "off"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".pjsip_agents.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(tmp, 0o640)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if self.reload is None:
            return "written"
        self.reload()
        log.info("agents' phones: %s written, res_pjsip reloaded", self.path.name)
        return "reloaded"


def publisher_from(path: str, ami_server: str, username: str, secret: str) -> PjsipAgentsFile:
    """From the settings: the include file's path, the first AMI server ("host:port") and the reload account."""
    reload = None
    if path and username:
        host, _, port = ami_server.rpartition(":")
        reload = AmiReload(host or "127.0.0.1", int(port or 5038), username, secret)
    return PjsipAgentsFile(Path(path) if path else None, reload)
