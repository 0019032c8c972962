"""Live tests against a real Asterisk 22: run when CALLCENTER_LIVE_ASTERISK names an ``asterisk`` binary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live.asterisk import LiveAsterisk, live_binary


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if live_binary() is not None:
        return
    skip = pytest.mark.skip(reason="CALLCENTER_LIVE_ASTERISK does not name an asterisk binary")
    for item in items:
        if "tests/live/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)


@pytest.fixture(scope="module")
def asterisk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAsterisk]:
    binary = live_binary()
    assert binary is not None
    pbx = LiveAsterisk(binary, tmp_path_factory.mktemp("asterisk"))
    pbx.start()
    try:
        yield pbx
    finally:
        pbx.stop()
