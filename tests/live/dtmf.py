"""The keys a SIP caller types, as one pcap for sipp's ``play_pcap_audio``: RFC 2833 events taken from sipp's own
bundled pcaps (``/usr/share/sip-tester/dtmf_2833_<digit>.pcap``, one key each), re-timed into one stream.

Each bundled pcap holds one event with a fixed RTP timestamp and sequence numbers; played one after the other, two
equal keys (the "00" of an account number) would carry the same timestamp and Asterisk would take the second for a
repeat of the first. Here every key gets its own timestamp and the sequence numbers run on, as a phone sends them."""

from __future__ import annotations

import struct
from pathlib import Path

BUNDLED = Path("/usr/share/sip-tester")
_NAMES = {"#": "pound", "*": "star"}
_RTP = 14 + 20 + 8  # Ethernet, IPv4, UDP in the bundled captures


def _packets(path: Path) -> tuple[bytes, list[tuple[float, bytes]]]:
    data = path.read_bytes()
    header, off, out = data[:24], 24, []
    while off < len(data):
        sec, usec, incl, _ = struct.unpack("<IIII", data[off:off + 16])
        out.append((sec + usec / 1e6, data[off + 16:off + 16 + incl]))
        off += 16 + incl
    return header, out


def key_pcap(keys: str, out: Path, gap_s: float = 0.25, later: str = "", later_after_s: float = 0.0) -> Path:
    """``keys`` one every ``gap_s`` seconds, then ``later`` ``later_after_s`` seconds after the last of them."""
    header = b""
    frames: list[tuple[float, bytes]] = []
    seq, stamp, at = 1000, 8000, 0.0
    plan = [(k, gap_s) for k in keys] + [(k, later_after_s if i == 0 else gap_s) for i, k in enumerate(later)]
    for n, (key, gap) in enumerate(plan):
        if n:
            at += gap
        header, packets = _packets(BUNDLED / f"dtmf_2833_{_NAMES.get(key, key)}.pcap")
        t0 = packets[0][0]
        stamp += int(gap * 8000) if n else 0
        last_seq: int | None = None
        for t, frame in packets:
            rtp = bytearray(frame[_RTP:])
            old_seq = struct.unpack(">H", rtp[2:4])[0]
            if last_seq is not None and old_seq != last_seq:
                seq += 1  # the end packet is sent three times with one sequence number, as RFC 2833 says
            last_seq = old_seq
            rtp[2:8] = struct.pack(">HI", seq & 0xFFFF, stamp)
            frames.append((at + (t - t0), frame[:_RTP] + bytes(rtp)))
        seq += 1
    body = bytearray(header)
    for t, frame in frames:
        body += struct.pack("<IIII", int(t), int(round((t % 1) * 1e6)) % 1000000, len(frame), len(frame)) + frame
    out.write_bytes(bytes(body))
    return out
