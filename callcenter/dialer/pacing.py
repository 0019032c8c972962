"""The published path of the pacers (DESIGN.md): re-exports :mod:`callcenter.domain.pacing`, where they live."""

from callcenter.domain.pacing import *  # noqa: F403  (the contract is the whole public surface)
from callcenter.domain.pacing import __all__  # noqa: F401

