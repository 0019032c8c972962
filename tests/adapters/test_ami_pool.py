"""AmiPool: a server that refuses us is left out; attempts go to the servers that are up."""

from __future__ import annotations

from fake_ami import TEST_OPTIONS, ReplayServer, collect_until, load_capture

from callcenter.adapters.telephony.ami import AmiOptions, AmiPool, AmiServer
from callcenter.ports.telephony import Ended, Failed


async def test_pool_spreads_to_connected_servers_only():
    opts = AmiOptions(**{**TEST_OPTIONS.__dict__, "dial_template": "Local/{number}@sim-customers"})
    async with ReplayServer(load_capture("bad_login")) as bad, ReplayServer(load_capture("originate_outcomes")) as good:
        pool = AmiPool(
            [AmiServer("127.0.0.1", bad.port, "callcenter", "wrong"), AmiServer("127.0.0.1", good.port, "callcenter", "ccsecret")],
            opts,
        )
        await pool.start()  # one server refused the login: the pool goes on with the other
        assert [c.connected for c in pool.clients] == [False, True]
        ids = [f"cc-1380000000{n}" for n in (1, 2, 3, 4)]
        for n, call_id in enumerate(ids, 1):
            await pool.originate(call_id, f"1380000000{n}", "95555 <95555>", {}, 20)
        events = await collect_until(pool.clients[1], lambda evs: sum(isinstance(e, (Failed, Ended)) for e in evs) == 4)
        await pool.aclose()
    assert good.mismatches == [] and good.unexpected == []
    assert bad.connections == 1  # not retried
    assert {e.call_id for e in events if isinstance(e, (Failed, Ended))} == set(ids)
