"""The data shipped with the engine: IVR flows, talk scripts, default settings and sample Asterisk files.

They live at the top of the repository (``ivr_flows/``, ``scripts_templates/``, ``config/``, the project's
required layout); ``setup.py`` maps them into the wheel as ``callcenter/_data/<name>/`` and they are read here
through :mod:`importlib.resources`, so ``pip install .`` (not editable) gives a working ``callcenter`` from any
directory. In a source checkout (editable install, ``make run``) the package has no ``_data`` folder and the
directories at the top of the checkout are used instead: editing ``ivr_flows/hotline.yaml`` takes effect
without a reinstall.

Operators point the settings ``ivr_flows_dir`` and ``scripts_dir`` (and ``CALLCENTER_CONFIG`` for the settings
file) at their own copies; see :class:`callcenter.settings.Settings`.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

SHIPPED = ("ivr_flows", "scripts_templates", "config")


def shipped_dir(name: str) -> Path:
    """The shipped data directory ``name`` (one of :data:`SHIPPED`) as a file-system path."""
    if name not in SHIPPED:
        raise ValueError(f"no shipped data directory {name!r}; expected one of {', '.join(SHIPPED)}")
    packaged = files("callcenter") / "_data" / name
    if packaged.is_dir():
        # Wheels are installed unpacked, so the resource is a real directory; loaders (line numbers, globbing,
        # Jinja2) need a path, not a Traversable.
        return Path(str(packaged))
    # Source checkout / editable install: the package directory sits at the top of the repository.
    checkout = Path(str(files("callcenter"))).parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"the shipped {name}/ directory is missing: neither {packaged} nor {checkout} exists "
                            "(a broken installation; reinstall the callcenter package)")
