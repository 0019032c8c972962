"""``python -m callcenter.bank serve``: the same as ``callcenter bank serve`` (how ``callcenter run`` starts the
simulated bank's process)."""

from __future__ import annotations

from callcenter.commands import run_command
from callcenter.commands.bank import app


def main() -> None:
    run_command(app)


if __name__ == "__main__":
    main()
