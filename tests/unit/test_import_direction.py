"""Import direction, read from the source with ``ast`` (nothing is imported, so no import side effects):

* the domain (``callcenter/domain/``) imports only the standard library and the domain itself;
* no use case — ``callcenter/services/`` and the feature folders (dialer, ivr, care, scripts, scheduling) — nor
  an adapter (adapters, telephony, store) imports the composition root (``callcenter.bootstrap``,
  ``callcenter.runtime``) or the web layer (``callcenter.web``). The composition root's side — the
  command line (``commands/``, one module a command group), the parts (``parts/``), ``bench/`` and ``demo/`` — may.

Every import counts: top level, inside functions and under ``TYPE_CHECKING``. The violations that exist today are
listed in ``ALLOWED`` (issue 9: the ``App``/``extras`` service locator); a new one fails, and so does an entry
that is no longer needed, so the list only shrinks.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "callcenter"

INNER_AREAS = ("services", "dialer", "ivr", "care", "scripts", "scheduling", "adapters", "telephony", "store",
               "recordings",
               "domain")
FORBIDDEN = ("callcenter.bootstrap", "callcenter.runtime", "callcenter.web")

# module -> forbidden module it imports today, with the reason it is still there.
ALLOWED: dict[tuple[str, str], str] = {
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> Iterator[tuple[str, int]]:
    """Every module an import statement in ``path`` names (``from a import b`` names ``a`` and ``a.b``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, node.lineno
            for alias in node.names:
                yield f"{target}.{alias.name}", node.lineno


def area_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def inner_modules() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py"))
            if area_of(module_name(p)) in INNER_AREAS and "migrations" not in p.parts]


def violations() -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for path in inner_modules():
        for target, line in imported_modules(path):
            for forbidden in FORBIDDEN:
                if within(target, forbidden):
                    found.setdefault((module_name(path), forbidden), line)
    return found


def test_the_scan_sees_the_package() -> None:
    names = {module_name(p) for p in inner_modules()}
    assert {"callcenter.domain.custody", "callcenter.services.transfers", "callcenter.dialer.pacing",
            "callcenter.care.dispatch", "callcenter.ivr.interpreter"} <= names
    assert not any(n.startswith("callcenter.commands") for n in names)  # entry points may wire the engine

def test_the_scan_finds_imports_inside_functions_and_relative_ones(tmp_path: Path) -> None:
    probe = PACKAGE / "services" / "_import_probe.py"
    probe.write_text("def f():\n    from ..bootstrap import App\n    import callcenter.web.app\n", encoding="utf-8")
    try:
        found = dict(imported_modules(probe))
        assert "callcenter.bootstrap" in found and "callcenter.web.app" in found
        assert ("callcenter.services._import_probe", "callcenter.bootstrap") in violations()
    finally:
        probe.unlink()


def test_domain_imports_only_the_standard_library_and_the_domain() -> None:
    stdlib = set(sys.stdlib_module_names)
    bad = []
    for path in sorted((PACKAGE / "domain").rglob("*.py")):
        for target, line in imported_modules(path):
            top = target.split(".")[0]
            if not (top in stdlib or within(target, "callcenter.domain")):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: imports {target}")
    assert not bad, "the domain is pure rules (stdlib only):\n" + "\n".join(bad)


def test_no_use_case_or_adapter_imports_the_composition_root_or_the_web_layer() -> None:
    found = violations()
    new = [f"{module} imports {target} (line {line})" for (module, target), line in sorted(found.items())
           if (module, target) not in ALLOWED]
    assert not new, ("use cases and adapters get what they need as parameters; they never import the "
                     "composition root or the web layer:\n" + "\n".join(new))
    gone = [f"{module} -> {target}" for module, target in sorted(ALLOWED) if (module, target) not in found]
    assert not gone, "no longer imported; remove from ALLOWED:\n" + "\n".join(gone)


def test_one_command_line_package() -> None:
    """Commands live in ``callcenter/commands/`` only (no per-feature ``cli.py``)."""
    strays = [str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("cli*.py")
              if (p.stem == "cli" or p.stem.startswith("cli_")) and p.parent != PACKAGE]
    assert not strays, strays
