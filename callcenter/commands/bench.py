"""``callcenter bench <name>``: every benchmark prints its figures next to a baseline measured in the same run,
and with --json one JSON object on its last line."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer

app = typer.Typer(help="基准测试 · benchmarks (figures as ratios against a baseline in the same run)",
                  no_args_is_help=True)

JSON = typer.Option(False, "--json", help="print the figures as one JSON object on the last line")


@app.command("transfers")
def transfers(n: int = typer.Option(2000, "--transfers", min=10), clients: int = typer.Option(20, min=1),
              workers: int = typer.Option(1, min=1, max=200),
              database_url: Optional[str] = typer.Option(None, help="default: a fresh temporary SQLite file"),
              chunk: int = typer.Option(100, min=10, help="transfers per path before the next path runs"),
              as_json: bool = JSON) -> None:
    """Transfers/s through the custody service vs the same postings through an ORM session and the raw DB-API."""
    from callcenter.bench.transfers import run

    figures = run(transfers=n, clients=clients, workers=workers, database_url=database_url, as_json=as_json,
                  chunk=chunk)
    raise typer.Exit(0 if figures["invariants_ok"] else 1)


@app.command("orders")
def orders(n: int = typer.Option(1000, "--orders", min=10), clients: int = typer.Option(20, min=1),
           workers: int = typer.Option(1, min=1, max=200),
           database_url: Optional[str] = typer.Option(None, help="default: a fresh temporary SQLite file"),
           as_json: bool = JSON) -> None:
    """Phone orders/s through rules + gateway + journal vs the same rows by plain SQL."""
    from callcenter.bench.orders import run

    figures = run(orders=n, clients=clients, workers=workers, database_url=database_url, as_json=as_json)
    raise typer.Exit(0 if figures["invariants_ok"] else 1)


@app.command("agi")
def agi(calls: int = typer.Option(500, min=1), concurrency: int = typer.Option(200, min=1),
        store_callers: int = typer.Option(200, min=0, help="callers authenticating at once on the store backend"),
        database_url: Optional[str] = typer.Option(None, help="store run: default a fresh temporary SQLite file"),
        as_json: bool = JSON) -> None:
    """Concurrent FastAGI sessions (authentication + balance), in-memory and store backends, vs an echo server."""
    from callcenter.bench.agi import run

    run(calls=calls, concurrency=concurrency, as_json=as_json, store_callers=store_callers, database_url=database_url)


@app.command("ami")
def ami(repeat: int = typer.Option(20, min=1), as_json: bool = JSON) -> None:
    """AMI events/s turned into domain events from replayed real traffic vs panoramisk's bare parse rate."""
    from callcenter.bench.ami import run

    run(repeat=repeat, as_json=as_json)


@app.command("pacing")
def pacing(agents: str = typer.Option("20,100", help="comma separated agent counts"), hours: float = 4.0,
           as_json: bool = JSON) -> None:
    """A simulated shift: progressive, best fixed ratio and predictive against the talk-share bound."""
    from callcenter.bench.pacing import run

    run(agents=tuple(int(a) for a in agents.split(",")), hours=hours, as_json=as_json)


@app.command("push")
def push(clients: int = typer.Option(200, min=1), events: int = typer.Option(50, min=1), as_json: bool = JSON) -> None:
    """Live push to agent screens (SSE) vs a bare SSE echo server."""
    from callcenter.bench.push import run

    run(clients=clients, events=events, as_json=as_json)


@app.command("loop")
def loop(agents: int = typer.Option(100, min=1), leads: int = typer.Option(5000, min=1),
         requests: int = typer.Option(600, min=1, help="web requests per phase (split over the rounds)"),
         rate: float = typer.Option(40.0, min=0.1, help="web requests a second"),
         concurrency: int = typer.Option(4, min=1, help="web requests at once"),
         agi_calls: int = typer.Option(40, min=1, help="hotline calls per phase (split over the rounds)"),
         agi_concurrency: int = typer.Option(2, min=1),
         mode: str = typer.Option("predictive", help="progressive or predictive"),
         warm: float = typer.Option(60.0, min=0, help="seconds at most to wait for the agents to be talking"),
         rounds: int = typer.Option(2, min=1, help="idle and load phases alternate this many times"),
         database_url: Optional[str] = typer.Option(None, help="default: a fresh temporary SQLite file"),
         as_json: bool = JSON) -> None:
    """Web latency, FastAGI turnaround and loop lag with the dialler busy on the simulated PBX vs idle."""
    from callcenter.bench.loop import MODES, run

    if mode not in MODES:
        raise typer.BadParameter(f"one of {', '.join(MODES)}", param_hint="--mode")
    if leads < agents:
        raise typer.BadParameter("at least as many leads as agents", param_hint="--leads")
    run(agents=agents, leads=leads, requests=requests, rate=rate, concurrency=concurrency, agi_calls=agi_calls,
        agi_concurrency=agi_concurrency, mode=mode, warm_s=warm, database_url=database_url, rounds=rounds,
        as_json=as_json)


@app.command("scale")
def scale(sizes: str = typer.Option("10000,1000000", help="comma separated attempt counts, increasing"),
          repeat: int = typer.Option(15, min=3, help="rounds per size (the median is shown)"),
          database_url: Optional[str] = typer.Option(
              None, help="default: a fresh temporary SQLite file; a PostgreSQL database given here is WIPED"),
          import_rows: int = typer.Option(100_000, min=100, help="rows of the lead file imported at each size"),
          as_json: bool = JSON) -> None:
    """The engine's hot paths as the history grows: wall board, 30-day report, lead claim, transfer, lead import."""
    from callcenter.bench.scale import parse_sizes, run

    try:
        parsed = parse_sizes(sizes)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--sizes") from None
    run(sizes=parsed, database_url=database_url, repeat=repeat, as_json=as_json, import_rows=import_rows)


@app.command("all")
def all_benchmarks(as_json: bool = JSON) -> None:
    """Every benchmark in turn (with --json: one object keyed by benchmark on the last line)."""
    import contextlib
    import importlib
    import io

    results: dict[str, object] = {}
    runs: tuple[tuple[str, dict[str, Any]], ...] = (("transfers", {}), ("orders", {}), ("agi", {}), ("ami", {}),
                                                    ("pacing", {}), ("push", {}), ("loop", {}))
    for name, kwargs in runs:
        module = importlib.import_module(f"callcenter.bench.{name}")  # every benchmark ships with the engine
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer) if as_json else contextlib.nullcontext():
            results[name] = module.run(as_json=False, **kwargs)
    if as_json:
        print(json.dumps(results))
