"""``callcenter serve --parts``: which parts a process runs, and SQLite's one-process rule."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from callcenter.cli import app
from callcenter.runtime import PART_NAMES, PartsError, check_parts_for_database, default_runners, parse_parts


def test_parts_are_parsed_in_start_order_and_all_is_the_default() -> None:
    assert parse_parts("") == PART_NAMES == parse_parts("all")
    assert parse_parts("dialer, web") == ("web", "dialer")
    assert parse_parts("AGI,dialer") == ("agi", "dialer")
    with pytest.raises(PartsError, match="unknown part fax"):
        parse_parts("web,fax")


def test_the_runners_of_a_subset_leave_the_others_out() -> None:
    names = [name for name, _ in default_runners(("web", "dialer", "agi"))]
    assert names == ["fastagi", "dialler"]  # in start order, whatever the order asked
    assert [n for n, _ in default_runners()] == ["bank", "fastagi", "dialler", "care", "scheduler"]


def test_sqlite_runs_every_part_in_one_process_and_says_so() -> None:
    check_parts_for_database(PART_NAMES, "sqlite")
    check_parts_for_database(("web",), "postgresql")
    with pytest.raises(PartsError, match="needs PostgreSQL"):
        check_parts_for_database(("web",), "sqlite")


def test_serve_refuses_parts_apart_on_sqlite_in_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["serve", "--parts", "web"],
                                env={"CALLCENTER_DATABASE_URL": f"sqlite:///{tmp_path / 'cc.db'}"})
    assert result.exit_code == 2
    assert "needs PostgreSQL" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["serve", "--parts", "web,telepathy"],
                                env={"CALLCENTER_DATABASE_URL": f"sqlite:///{tmp_path / 'cc.db'}"})
    assert result.exit_code == 2 and "unknown part telepathy" in result.output
