"""YAML with line numbers: the one loader of the IVR flow checker (``services/ivr/flow.py``) and the talk-script
checker (``services/scripts/loader.py``), so both report problems with the file and line they come from.

``load(text)`` is ``yaml.safe_load`` whose mappings are ``LineDict`` (the line of the mapping, of each key,
of the first text line of each value, and every key given twice) and whose sequences are ``LineList`` (their
line). Integer keys become strings (menu keys ``1:``); a key given twice keeps its first value and is listed
in ``duplicates`` for the checker to report. A syntax error raises ``YamlSyntaxError`` with its line.
"""

from __future__ import annotations

from typing import Any

import yaml


class LineDict(dict[Any, Any]):  # a plain dict that also carries line numbers
    """A YAML mapping that knows the line of itself, of each key and of the first text line of each value."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.key_lines: dict[Any, int] = {}
        self.value_lines: dict[Any, int] = {}
        self.duplicates: list[tuple[Any, int]] = []

    def line_of(self, key: Any, default: int | None = None) -> int:
        """The line of ``key`` (else ``default``, else the mapping's own line)."""
        return self.key_lines.get(key, self.line if default is None else default)


class LineList(list[Any]):  # a plain list that also carries its line number
    line: int = 0


class YamlSyntaxError(ValueError):
    def __init__(self, line: int, detail: str, full: str) -> None:
        super().__init__(full)
        self.line = line  # 1-based
        self.detail = detail  # what is wrong, without the position
        self.full = full  # PyYAML's whole message


class _Loader(yaml.SafeLoader):
    pass


def _first_text_line(node: yaml.Node) -> int:
    # a block scalar ("|" or ">") starts on the line after its indicator
    extra = 1 if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">") else 0
    return node.start_mark.line + 1 + extra


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, int) and not isinstance(key, bool):
            key = str(key)
        if key in out:
            out.duplicates.append((key, key_node.start_mark.line + 1))
            continue
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
        out.value_lines[key] = _first_text_line(value_node)
    return out


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


def load(text: str) -> Any:
    """Parse YAML text (safe tags only) with line numbers; ``YamlSyntaxError`` when it is not YAML."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise YamlSyntaxError(line, str(getattr(exc, "problem", None) or exc), str(exc)) from None
