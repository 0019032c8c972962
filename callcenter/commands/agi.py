"""``callcenter agi``: the FastAGI server that runs the hotline for Asterisk."""

from __future__ import annotations

import asyncio
from typing import Optional

import typer

app = typer.Typer(help="FastAGI server for the hotline IVR.", invoke_without_command=True)


@app.callback()
def serve(
    host: Optional[str] = typer.Option(None, "--host", help="default: settings agi_host"),
    port: Optional[int] = typer.Option(None, "--port", help="default: settings agi_port"),
) -> None:
    """Serve agi://HOST:PORT/hotline until interrupted."""
    from callcenter.adapters.ivr.agi import agi_config, serve_forever
    from callcenter.commands.ivr import _backend_factory, limits_from
    from callcenter.settings import load_settings

    settings = load_settings()
    backend = _backend_factory(settings)
    try:
        asyncio.run(serve_forever(backend, host or settings.agi_host, port or settings.agi_port,
                                  limits=limits_from(settings), echo=typer.echo,
                                  config=agi_config(settings), flows_dir=settings.flows_path))
    except KeyboardInterrupt:
        pass
