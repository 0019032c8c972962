"""Where the engine finds its data (shipped with the package, or the operator's own copies) and its state."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callcenter.commands import ivr as ivr_cli
from callcenter.commands import scripts as scripts_cli
from callcenter.services import desk
from callcenter.settings import load_settings
from callcenter.shipped import shipped_dir


def test_the_shipped_directories_hold_the_shipped_data() -> None:
    assert (shipped_dir("ivr_flows") / "hotline.yaml").is_file()
    assert (shipped_dir("scripts_templates") / "cold_call.yaml").is_file()
    assert (shipped_dir("config") / "callcenter.toml").is_file()
    with pytest.raises(ValueError, match="no shipped data directory 'var'"):
        shipped_dir("var")


def test_ivr_check_reads_the_operators_flows(tmp_path: Path) -> None:
    own = tmp_path / "flows"
    own.mkdir()
    text = (shipped_dir("ivr_flows") / "hotline.yaml").read_text(encoding="utf-8")
    (own / "branch.yaml").write_text(text, encoding="utf-8")
    (own / "broken.yaml").write_text(text.replace("initial:", "initial: nowhere\nx_initial:", 1), encoding="utf-8")
    result = CliRunner().invoke(ivr_cli.app, ["check"], env={"CALLCENTER_IVR_FLOWS_DIR": str(own)})
    assert result.exit_code == 1, result.output
    assert f"{own / 'branch.yaml'}: ok" in result.output
    assert str(own / "broken.yaml") in result.output
    assert "hotline.yaml" not in result.output  # the shipped flows are not checked instead
    by_name = CliRunner().invoke(ivr_cli.app, ["check", "branch"], env={"CALLCENTER_IVR_FLOWS_DIR": str(own)})
    assert by_name.exit_code == 0 and f"{own / 'branch.yaml'}: ok" in by_name.output


def test_scripts_check_reads_the_operators_scripts(tmp_path: Path) -> None:
    own = tmp_path / "scripts"
    own.mkdir()
    text = (shipped_dir("scripts_templates") / "cold_call.yaml").read_text(encoding="utf-8")
    (own / "cold_call.yaml").write_text(text.replace("想向您介绍一下", "保本保息，想向您介绍一下", 1), encoding="utf-8")
    result = CliRunner().invoke(scripts_cli.app, ["check"], env={"CALLCENTER_SCRIPTS_DIR": str(own)})
    assert result.exit_code == 1, result.output
    assert str(own / "cold_call.yaml") in result.output and "保本" in result.output
    assert "已检查 1 个话术文件" in result.output


def test_the_desk_loads_the_configured_scripts(tmp_path: Path) -> None:
    own = tmp_path / "scripts"
    own.mkdir()
    shutil.copy(shipped_dir("scripts_templates") / "dormant.yaml", own / "dormant.yaml")
    assert set(desk.scripts(own)) == {"dormant"}
    assert "cold_call" in desk.scripts()  # default: the shipped scripts


def test_relative_paths_are_relative_to_home_or_the_current_directory(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(database_url="sqlite:///var/callcenter.db")
    assert s.resolved_database_url() == f"sqlite:///{tmp_path.resolve() / 'var' / 'callcenter.db'}"
    assert s.prompts_path == tmp_path.resolve() / "var" / "prompts"
    home = tmp_path / "state"
    s = load_settings(database_url="sqlite:///var/callcenter.db", home=home, ivr_flows_dir="flows")
    assert s.resolved_database_url() == f"sqlite:///{home.resolve() / 'var' / 'callcenter.db'}"
    assert s.flows_path == home.resolve() / "flows"
    absolute = load_settings(database_url="sqlite:////srv/cc.db", home=home)
    assert absolute.resolved_database_url() == "sqlite:////srv/cc.db"
    assert load_settings(database_url="sqlite:///:memory:").resolved_database_url() == "sqlite:///:memory:"


def test_the_settings_file_can_be_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = tmp_path / "callcenter.toml"
    own.write_text('company_name = "测试证券"\nscripts_dir = "/srv/cc/scripts"\n', encoding="utf-8")
    assert load_settings().company_name == "示例证券"  # the shipped config/callcenter.toml
    monkeypatch.setenv("CALLCENTER_CONFIG", str(own))
    s = load_settings()
    assert s.company_name == "测试证券"
    assert s.scripts_path == Path("/srv/cc/scripts")
