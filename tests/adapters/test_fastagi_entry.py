"""FastAGI: the dialplan's first AGI argument is the entry; "orders" (a caller an agent handed to the order menu)
lands in the order menu after the login, no argument in the main menu."""

from __future__ import annotations

from pathlib import Path

from callcenter.adapters.ivr.agi import AgiConfig, start_agi_server
from callcenter.adapters.ivr.fake_asterisk import FakeCall, run_fake_call
from callcenter.services.ivr.backend import demo_backend

LOGIN = ["1", "1234567890123456", "123456"]


async def call(args: list[str]) -> list[str]:
    server, app = await start_agi_server(demo_backend(), "127.0.0.1", 0, config=AgiConfig(
        prompts_dir=Path("/p"), render_text=lambda text, lang: "name"))
    port = server.sockets[0].getsockname()[1]
    async with server:
        done = await run_fake_call("127.0.0.1", port, FakeCall(LOGIN + ["hangup"], uniqueid="entry-1", args=args))
        await app.wait_idle()
    return [c for c, _answer in done.transcript]


async def test_entry_orders_lands_in_the_order_menu() -> None:
    entered = " ".join(await call(["orders"]))
    plain = " ".join(await call([]))
    empty = " ".join(await call([""]))  # the shipped dialplan with CC_IVR_ENTRY unset
    assert "orders_menu" in entered and "/main_menu" not in entered
    assert "/main_menu" in plain and "orders_menu" not in plain
    assert "/main_menu" in empty and "orders_menu" not in empty
