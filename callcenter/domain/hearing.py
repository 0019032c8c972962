"""Who hears whom on a live call: the hearing matrix of the simulated PBX (issue 13), a pure function.

Parties are names: ``customer:<call id>``, ``agent:<staff id>``, ``supervisor:<staff id>``, and ``moh`` (music
on hold). The model is the one the Asterisk dialplan builds (``config/asterisk``):

* every agent has a room (``rooms``: agent -> the parties in it besides the agent's own phone); everyone in a room
  hears everyone else in it, except parties ``muted`` (ConfBridge mute: nobody hears them);
* a room link (``links``: pairs of agents) joins two rooms into one (a consultation, a three-way conference);
* a ``held`` party is out of every room and hears only ``moh``; nobody hears them;
* a monitoring supervisor (``monitors``: supervisor -> (agent, mode)) spies on the agent's leg (ChanSpy):
  ``listen`` hears what the agent hears and the agent, and nobody hears the supervisor; ``whisper`` the same,
  and the agent (only) hears the supervisor; ``barge`` is in the agent's room like any member.

``hearing(...)`` returns, for every party, the set of parties it hears.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

MOH = "moh"


def agent(staff_id: int | str) -> str:
    return f"agent:{staff_id}"


def customer(call_id: str) -> str:
    return f"customer:{call_id}"


def supervisor(staff_id: int | str) -> str:
    return f"supervisor:{staff_id}"


def hearing(rooms: Mapping[str, Iterable[str]], *, links: Iterable[tuple[str, str]] = (),
            muted: Iterable[str] = (), held: Iterable[str] = (),
            monitors: Mapping[str, tuple[str, str]] | None = None) -> dict[str, frozenset[str]]:
    """The hearing matrix (see the module docstring). Room keys and link ends are agent party names."""
    monitors = dict(monitors or {})
    muted_set, held_set = set(muted), set(held)
    members: dict[str, set[str]] = {a: {a, *(p for p in ps if p not in held_set)} for a, ps in rooms.items()}
    for sup, (room, mode) in monitors.items():
        if mode == "barge":
            members.setdefault(room, {room}).add(sup)
    # union the linked rooms (a link of two rooms makes one mix)
    group: dict[str, str] = {a: a for a in members}

    def find(a: str) -> str:
        while group[a] != a:
            group[a] = group[group[a]]
            a = group[a]
        return a

    for a, b in links:
        members.setdefault(a, {a})
        members.setdefault(b, {b})
        group.setdefault(a, a)
        group.setdefault(b, b)
        ra, rb = find(a), find(b)
        if ra != rb:
            group[rb] = ra
    mixes: dict[str, set[str]] = {}
    for a, ps in members.items():
        mixes.setdefault(find(a), set()).update(ps)
    out: dict[str, frozenset[str]] = {}
    for mix in mixes.values():
        for p in mix:
            out[p] = frozenset(q for q in mix if q != p and q not in muted_set)
    for p in held_set:
        out[p] = frozenset({MOH})
    for sup, (room, mode) in monitors.items():
        if mode == "barge":
            continue
        out[sup] = frozenset(out.get(room, frozenset()) | ({room} if room not in muted_set else set()))
        if mode == "whisper":
            out[room] = out.get(room, frozenset()) | {sup}
    return out
