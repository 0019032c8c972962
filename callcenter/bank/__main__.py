"""``python -m callcenter.bank serve``: the same as ``callcenter bank serve``, without loading the engine's other
commands (a quicker start when ``callcenter run`` restarts the bank)."""

from __future__ import annotations

import sys

from callcenter.bank.cli import app
from callcenter.settings import SettingsError


def main() -> None:
    try:
        app()
    except SettingsError as exc:
        print(f"callcenter: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
