"""The one YAML-with-lines loader (callcenter/yamlines.py) behind the IVR flow checker and the talk-script checker."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter import yamlines
from callcenter.services.ivr.flow import parse_flow
from callcenter.services.scripts.loader import parse_script

TEXT = """\
flow: demo
nodes:
  menu:
    say: [a, b]
    options:
      1: first
      '*': star
      1: again
  note: |
    line one
    line two
"""


def test_lines_of_mappings_keys_values_and_sequences() -> None:
    data = yamlines.load(TEXT)
    assert isinstance(data, yamlines.LineDict) and data.line == 1
    assert data.line_of("nodes") == 2 and data.line_of("missing") == 1 and data.line_of("missing", 7) == 7
    menu = data["nodes"]["menu"]
    assert menu.line == 4 and menu["say"] == ["a", "b"] and menu["say"].line == 4
    options = menu["options"]
    assert options == {"1": "first", "*": "star"}  # integer keys as strings; a repeated key keeps its first value
    assert options.duplicates == [("1", 8)] and options.line_of("*") == 7
    assert data["nodes"].value_lines["note"] == 10  # a block scalar's text starts on the next line


def test_a_syntax_error_carries_its_line() -> None:
    with pytest.raises(yamlines.YamlSyntaxError) as err:
        yamlines.load("a: 1\nb: [2, 3\nc: 4\n")
    assert err.value.line == 3 and err.value.detail


def test_both_checkers_report_yaml_errors_with_file_and_line() -> None:
    bad = "flow: x\nnodes:\n  a: {say: [w\n"
    _, flow_problems = parse_flow(bad, "flows/x.yaml")
    _, script_problems = parse_script(bad, "scripts/x.yaml")
    assert [(p.file, p.line) for p in flow_problems] == [("flows/x.yaml", 4)]
    assert [(p.path, p.line) for p in script_problems] == [("scripts/x.yaml", 4)]


def test_no_second_line_aware_loader() -> None:
    package = Path(yamlines.__file__).resolve().parent
    owners = [p.relative_to(package).as_posix() for p in package.rglob("*.py") if "SafeLoader" in p.read_text("utf-8")]
    assert owners == ["yamlines.py"]
